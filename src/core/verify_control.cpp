// Reading global/pg_control for pg_cmk verify (verify_control.h).
#include "verify_control.h"

#include "keyring.h"

#include <cstring>

namespace cmk {

namespace {

uint32_t load32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }

}  // namespace

ControlInfo parse_control_info(const uint8_t* bytes, size_t len) {
    ControlInfo info;
    if (len < kPgControlMinBytes) {
        info.problem = "global/pg_control is too short";
        return info;
    }
    uint32_t version = load32(bytes + kPgControlVersionOffset);
    if (version != kPgControlVersion) {
        info.problem = "global/pg_control has version " + std::to_string(version) + ", not PostgreSQL 15's " +
                       std::to_string(kPgControlVersion);
        return info;
    }
    info.found = true;
    info.blcksz = load32(bytes + kPgControlBlcksz);
    info.relseg_size = load32(bytes + kPgControlRelsegSize);
    info.data_checksums = load32(bytes + kPgControlChecksumVersionOffset) != 0;
    std::memcpy(&info.checkpoint_redo, bytes + kPgControlCheckpointRedo, sizeof info.checkpoint_redo);
    return info;
}

ControlInfo read_control_info(const std::string& datadir) {
    auto file = read_file_if_exists(datadir + "/global/pg_control");
    if (!file) {
        ControlInfo info;
        info.problem = "there is no global/pg_control";
        return info;
    }
    return parse_control_info(file->data(), file->size());
}

}  // namespace cmk
