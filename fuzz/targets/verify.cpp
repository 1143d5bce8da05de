// The verify scanner (verify.h, pg_cmk verify): a data directory with the
// fixture's keyring and pg_control, and one file made of the input (its
// first byte chooses which: a relation fork, a WAL segment, a two-phase
// file, ...). The scan, with and without --check-keys, reports or throws
// cmk::Error, never crashes; its counts add up. pg_control, file names and
// temp-file magic checks get the raw input too.
#include "fuzz_target.h"
#include "fuzz_fixture.h"

#include "error.h"
#include "verify.h"
#include "verify_control.h"
#include "verify_keys.h"
#include "verify_paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

namespace {

std::string make_datadir() {
    const char* base = std::getenv("TMPDIR");
    std::string dir = std::string(base && *base ? base : "/tmp") + "/cmk-fuzz-verify-" + std::to_string(::getpid());
    for (const char* sub : {"", "/global", "/base", "/base/1", "/pg_wal", "/pg_twophase", "/pg_stat", "/pg_stat_tmp",
                            "/pg_replslot", "/pg_replslot/s", "/pg_cmk", "/pg_tblspc"})
        ::mkdir((dir + sub).c_str(), 0700);
    auto write = [&](const std::string& rel, const void* p, size_t n) {
        int fd = ::open((dir + "/" + rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ::write(fd, p, n) != static_cast<ssize_t>(n)) std::abort();
        ::close(fd);
    };
    std::vector<uint8_t> control = cmk_fuzz::fixture_pg_control(true);
    write("global/pg_control", control.data(), control.size());
    cmk::Bytes keyring = cmk_fuzz::fixture_keyring_file();
    write("pg_cmk/keyring", keyring.data(), keyring.size());
    return dir;
}

}  // namespace

CMK_FUZZ_TARGET(verify) {
    static const std::string dir = make_datadir();
    static const cmk::OpenedKeys opened = cmk_fuzz::fixture_keys();
    static const cmk::VerifyKeys keys(opened);
    if (size == 0) return 0;

    // Raw helpers first.
    (void) cmk::parse_control_info(data, size);
    std::string text(reinterpret_cast<const char*>(data), std::min<size_t>(size, 256));
    (void) cmk::parse_relation_file_name(text);
    (void) cmk::is_wal_segment_file_name(text);
    (void) cmk::is_twophase_file_name(text);
    (void) cmk::is_spill_file_name(text);
    (void) cmk::temp_file_generation_with_magic(keys, "pg_twophase/0000ABCD", data, std::min<size_t>(size, 8192),
                                                cmk::kTwoPhaseMagic);
    if (size >= 8192) {
        bool checked = false;
        (void) cmk::check_encrypted_data_page(keys, data, cmk_fuzz::kFixtureRelfilenode, 0);
        (void) cmk::check_encrypted_wal_page(keys, data, &checked);
    }

    std::string rel = cmk_fuzz::fixture_file_for(data[0]);
    std::string path = dir + "/" + rel;
    size_t len = std::min<size_t>(size - 1, 4 * 8192 + 100);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (len > 0 && ::write(fd, data + 1, len) != static_cast<ssize_t>(len))) std::abort();
    ::close(fd);
    for (int with_keys = 0; with_keys < 2; with_keys++) {
        cmk::VerifyOptions options;
        options.keys = with_keys ? &keys : nullptr;
        options.sample = 0;
        try {
            cmk::VerifyReport r = cmk::verify_data_directory(dir, options);
            uint64_t units = 0, files = 0;
            for (const auto& f : r.files) {
                units += f.units.encrypted + f.units.plaintext + f.units.empty + f.units.unmarked;
                files += f.files;
            }
            CMK_FUZZ_CHECK(files >= 1);
            CMK_FUZZ_CHECK(r.problems.size() <= r.problem_count);
            int status = cmk::verify_exit_status(r);
            CMK_FUZZ_CHECK(status == 0 || status == 3 || status == 4);
            (void) units;
        } catch (const cmk::Error&) {
        }
    }
    ::unlink(path.c_str());
    return 0;
}
