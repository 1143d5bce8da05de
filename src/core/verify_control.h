// What pg_cmk verify needs from global/pg_control (PostgreSQL 15,
// PG_CONTROL_VERSION 1300, ControlFileData in native byte order): whether
// data checksums are on, the block size and the blocks per relation
// segment (to number the blocks of <relfilenode>.<N> files), and the last
// checkpoint's redo point (where crash recovery would start).
#pragma once
#include "core_guard.h"

#include <cstdint>
#include <string>

namespace cmk {

constexpr uint32_t kPgControlVersion = 1300;
constexpr size_t kPgControlVersionOffset = 8;          // pg_control_version
constexpr size_t kPgControlCheckpointRedo = 40;          // checkPointCopy.redo
constexpr size_t kPgControlBlcksz = 216;                // blcksz
constexpr size_t kPgControlRelsegSize = 220;            // relseg_size
constexpr size_t kPgControlChecksumVersionOffset = 252; // data_checksum_version
constexpr size_t kPgControlMinBytes = 256;

struct ControlInfo {
    bool found = false;           // global/pg_control read and of version 1300
    bool data_checksums = false;
    uint32_t blcksz = 8192;
    uint32_t relseg_size = 131072;
    uint64_t checkpoint_redo = 0; // WAL before it is not needed by this server's recovery
    std::string problem;          // why it was not used, if not found
};

ControlInfo read_control_info(const std::string& datadir);
// The same from the file's bytes (for tests).
ControlInfo parse_control_info(const uint8_t* bytes, size_t len);

}  // namespace cmk
