// pg_cmk verify and cmk_verify(): a coverage report of what cmk encrypts in
// a data directory (stopped, a backup, or a running server's), per file
// class (verify_paths.h), counted in units:
//   data_pages        8 kB relation pages: encrypted (pd_flags bits 8..15
//                     set), new (all zeros: empty) or plaintext
//   wal               8 kB WAL pages: encrypted (xlp_info generation set),
//                     plaintext WAL page, or empty (zeros, not a WAL page)
//   twophase, pgss_dump  files: plaintext if they start with their format's
//                     magic, else encrypted (a 0-byte file is empty)
//   pgsql_tmp, replslot_spill, pgss_query_texts, notify_queue  files
//                     without any mark:
//                     counted as unmarked (they are encrypted when a server
//                     with cmk wrote them; nothing in their bytes says so)
// Counting marks needs no key. With keys (VerifyOptions::keys) a sample of
// each file's encrypted pages is decrypted and checked (verify_keys.h), and
// with data checksums on every encrypted page's checksum is checked over
// the stored ciphertext.
#pragma once
#include "core_guard.h"

#include "verify_control.h"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace cmk {

class VerifyKeys;

enum class VerifyClass { DataPages = 0, Wal, PgsqlTmp, ReplslotSpill, TwoPhase, PgssQueryTexts, PgssDump, NotifyQueue };
constexpr size_t kVerifyClasses = 8;
constexpr std::array<VerifyClass, kVerifyClasses> kAllVerifyClasses = {
    VerifyClass::DataPages, VerifyClass::Wal,      VerifyClass::PgsqlTmp, VerifyClass::ReplslotSpill,
    VerifyClass::TwoPhase,  VerifyClass::PgssQueryTexts, VerifyClass::PgssDump, VerifyClass::NotifyQueue};

const char* verify_class_name(VerifyClass c);  // data_pages, wal, pgsql_tmp, ...
const char* verify_class_unit(VerifyClass c);  // "page" or "file"
// True where a plaintext unit is a finding (everything but the unmarked classes).
bool verify_class_is_marked(VerifyClass c);

struct UnitCounts {
    uint64_t encrypted = 0, plaintext = 0, empty = 0, unmarked = 0;
    void add(const UnitCounts& o) {
        encrypted += o.encrypted; plaintext += o.plaintext; empty += o.empty; unmarked += o.unmarked;
    }
};

// One relation fork (its segments together, path without ".N"), one WAL
// segment or one other file; path relative to the data directory.
struct VerifyFile {
    VerifyClass cls = VerifyClass::DataPages;
    std::string path;
    uint64_t files = 0, bytes = 0;
    UnitCounts units;
};

struct VerifyClassTotals {
    uint64_t files = 0, bytes = 0;
    UnitCounts units;
    std::map<uint32_t, uint64_t> generations;  // encrypted units per key generation (pages only)
};

struct VerifyProblem {
    VerifyClass cls = VerifyClass::DataPages;
    std::string path;   // the file (a relation segment file with its .N)
    int64_t block = -1; // page number within the file, -1 for the whole file
    std::string what;
};

struct VerifyKeyChecks {
    uint64_t data_pages_decrypted = 0;
    uint64_t checksums_verified = 0;
    uint64_t wal_pages_decrypted = 0;
    uint64_t files_decrypted = 0;
};

struct VerifyOptions {
    const VerifyKeys* keys = nullptr;  // --check-keys
    uint32_t sample = 64;              // encrypted pages decrypted per file with keys; 0 = every page
    bool running_server = false;       // files may appear, grow and vanish while scanning
    std::function<bool()> interrupted; // polled between chunks; true stops the scan (Error)
    size_t max_problems = 1000;        // kept in the report (all are counted)
};

struct VerifyReport {
    std::string datadir;
    ControlInfo control;
    bool keyring_present = false;
    uint32_t keyring_current_generation = 0;
    std::string keyring_problem;     // keyring present but not decodable
    bool keys_checked = false;
    bool postmaster_pid = false;     // postmaster.pid present (a server may be running)
    std::array<VerifyClassTotals, kVerifyClasses> classes;
    std::vector<VerifyFile> files;   // by class, then path
    VerifyKeyChecks checks;
    std::vector<VerifyProblem> problems;
    uint64_t problem_count = 0;
    std::vector<std::string> notes;  // e.g. files whose size is not a whole number of pages

    const VerifyClassTotals& totals(VerifyClass c) const { return classes[static_cast<size_t>(c)]; }
    VerifyClassTotals& totals(VerifyClass c) { return classes[static_cast<size_t>(c)]; }
};

// Throws Error (Config: not a PostgreSQL 15 data directory; Io: a file or
// directory that exists could not be read).
VerifyReport verify_data_directory(const std::string& datadir, const VerifyOptions& options);

constexpr int kVerifyExitOk = 0;
constexpr int kVerifyExitPlaintext = 3;    // something that should be encrypted is not
constexpr int kVerifyExitCheckFailed = 4;  // --check-keys: something marked encrypted does not decrypt right

// Units that should be encrypted and are not (plaintext data and WAL pages,
// plaintext two-phase and pg_stat_statements dump files).
uint64_t verify_plaintext_units(const VerifyReport& report);
// 4 if any problem was found, else 3 if verify_plaintext_units > 0, else 0.
int verify_exit_status(const VerifyReport& report);

}  // namespace cmk
