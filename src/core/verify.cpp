// The coverage report of a data directory: scan and count per file class
// (verify.h).
#include "verify.h"

#include "data_page.h"
#include "error.h"
#include "key_store.h"
#include "keyring.h"
#include "page_checksum.h"
#include "verify_keys.h"
#include "verify_paths.h"
#include "wal_page.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cmk {

const char* verify_class_name(VerifyClass c) {
    switch (c) {
    case VerifyClass::DataPages: return "data_pages";
    case VerifyClass::Wal: return "wal";
    case VerifyClass::PgsqlTmp: return "pgsql_tmp";
    case VerifyClass::ReplslotSpill: return "replslot_spill";
    case VerifyClass::TwoPhase: return "twophase";
    case VerifyClass::PgssQueryTexts: return "pgss_query_texts";
    case VerifyClass::PgssDump: return "pgss_dump";
    case VerifyClass::NotifyQueue: return "notify_queue";
    }
    return "?";
}

const char* verify_class_unit(VerifyClass c) {
    return c == VerifyClass::DataPages || c == VerifyClass::Wal ? "page" : "file";
}

bool verify_class_is_marked(VerifyClass c) {
    return c == VerifyClass::DataPages || c == VerifyClass::Wal || c == VerifyClass::TwoPhase ||
           c == VerifyClass::PgssDump;
}

uint64_t verify_plaintext_units(const VerifyReport& report) {
    uint64_t n = 0;
    for (VerifyClass c : kAllVerifyClasses)
        if (verify_class_is_marked(c)) n += report.totals(c).units.plaintext;
    return n;
}

int verify_exit_status(const VerifyReport& report) {
    if (report.problem_count > 0) return kVerifyExitCheckFailed;
    if (verify_plaintext_units(report) > 0) return kVerifyExitPlaintext;
    return kVerifyExitOk;
}

namespace {

constexpr size_t kPage = 8192;
constexpr size_t kChunkPages = 64;

[[noreturn]] void io_error(const std::string& what, const std::string& path, int e) {
    throw Error(ErrorKind::Io, what + " \"" + path + "\": " + std::strerror(e));
}

struct Entry {
    std::string name;
    bool dir = false, file = false;
    uint64_t size = 0;
};

class Scanner {
public:
    Scanner(VerifyReport& report, const VerifyOptions& options) : r_(report), o_(options) {}

    void run();

private:
    VerifyReport& r_;
    const VerifyOptions& o_;
    std::map<std::string, size_t> relation_index_;  // relation path -> index in r_.files
    std::vector<uint8_t> buf_ = std::vector<uint8_t>(kChunkPages * kPage);

    std::string full(const std::string& rel) const { return rel.empty() ? r_.datadir : r_.datadir + "/" + rel; }
    static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

    void poll() {
        if (o_.interrupted && o_.interrupted()) throw Error(ErrorKind::Internal, "verify was interrupted");
    }

    void problem(VerifyClass cls, const std::string& path, int64_t block, const std::string& what) {
        r_.problem_count++;
        if (r_.problems.size() < o_.max_problems) r_.problems.push_back(VerifyProblem{cls, path, block, what});
    }

    // Sorted entries of a directory (symbolic links followed); a directory
    // that does not exist has none.
    std::vector<Entry> list(const std::string& rel) {
        std::vector<Entry> out;
        std::string path = full(rel);
        DIR* d = ::opendir(path.c_str());
        if (!d) {
            if (errno == ENOENT || errno == ENOTDIR) return out;
            io_error("cannot open directory", path, errno);
        }
        errno = 0;
        while (struct dirent* de = ::readdir(d)) {
            std::string name = de->d_name;
            if (name == "." || name == "..") continue;
            struct stat st;
            if (::stat((path + "/" + name).c_str(), &st) != 0) {
                if (errno == ENOENT) continue;  // removed meanwhile, or a dangling link
                int e = errno;
                ::closedir(d);
                io_error("cannot stat", path + "/" + name, e);
            }
            out.push_back(Entry{name, S_ISDIR(st.st_mode), S_ISREG(st.st_mode), static_cast<uint64_t>(st.st_size)});
        }
        ::closedir(d);
        std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
        return out;
    }

    VerifyFile& file_entry(VerifyClass cls, const std::string& path) {
        r_.files.push_back(VerifyFile{cls, path, 0, 0, {}});
        return r_.files.back();
    }

    size_t relation_entry(const std::string& path) {
        auto it = relation_index_.find(path);
        if (it != relation_index_.end()) return it->second;
        file_entry(VerifyClass::DataPages, path);
        relation_index_[path] = r_.files.size() - 1;
        return r_.files.size() - 1;
    }

    // Opens a file for reading and stats it; -1 if it does not exist (a
    // running server's files come and go), an Error for any other failure.
    int open_if_exists(const std::string& path, struct stat* st) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) return -1;
            io_error("cannot open", path, errno);
        }
        if (::fstat(fd, st) != 0) {
            int e = errno;
            ::close(fd);
            io_error("cannot stat", path, e);
        }
        return fd;
    }

    // Reads the file page by page: fn(page, index) for every whole page.
    // Returns false if the file vanished before it could be opened.
    template <typename Fn>
    bool each_page(const std::string& rel, uint64_t* bytes, uint64_t* pages_at_open, Fn fn) {
        std::string path = full(rel);
        struct stat st;
        int fd = open_if_exists(path, &st);
        if (fd < 0) return false;
        *pages_at_open = static_cast<uint64_t>(st.st_size) / kPage;
#ifdef POSIX_FADV_SEQUENTIAL
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
        uint64_t off = 0, index = 0;
        for (;;) {
            poll();
            size_t got = 0;
            while (got < buf_.size()) {
                ssize_t n = ::pread(fd, buf_.data() + got, buf_.size() - got, static_cast<off_t>(off + got));
                if (n < 0) {
                    if (errno == EINTR) continue;
                    int e = errno;
                    ::close(fd);
                    io_error("cannot read", path, e);
                }
                if (n == 0) break;
                got += static_cast<size_t>(n);
            }
            size_t whole = got / kPage;
            for (size_t i = 0; i < whole; i++) fn(buf_.data() + i * kPage, index++);
            off += got;
            if (got < buf_.size()) {
                if (got % kPage != 0 && !o_.running_server)
                    r_.notes.push_back(rel + ": " + std::to_string(got % kPage) +
                                       " bytes at the end are not a whole page (not counted)");
                break;
            }
        }
        ::close(fd);
        *bytes = off;
        return true;
    }

    uint64_t stride(uint64_t pages) const {
        if (o_.sample == 0) return 1;
        return std::max<uint64_t>(1, (pages + o_.sample - 1) / o_.sample);
    }

    void relation_segment(const std::string& dir, const std::string& name, const RelationFileName& rel) {
        std::string path = join(dir, name);
        uint64_t bytes = 0, pages_at_open = 0;
        UnitCounts counts;
        VerifyClassTotals& totals = r_.totals(VerifyClass::DataPages);
        uint64_t first_block = static_cast<uint64_t>(rel.segment) * r_.control.relseg_size;
        uint64_t step = 1;
        bool found = each_page(path, &bytes, &pages_at_open, [&](const uint8_t* page, uint64_t index) {
            if (index == 0) step = stride(pages_at_open);
            switch (data_page_kind(page)) {
            case DataPageKind::New: counts.empty++; return;
            case DataPageKind::Plaintext: counts.plaintext++; return;
            case DataPageKind::Encrypted: break;
            }
            counts.encrypted++;
            totals.generations[data_page_generation(page)]++;
            if (!o_.keys) return;
            uint32_t blkno = static_cast<uint32_t>(first_block + index);
            if (r_.control.data_checksums) {
                r_.checks.checksums_verified++;
                uint16_t stored = read_data_page_header(page).checksum;
                uint16_t computed = pg_checksum_page(page, blkno);
                if (stored != computed)
                    problem(VerifyClass::DataPages, path, static_cast<int64_t>(index),
                            "checksum mismatch: stored " + std::to_string(stored) + ", computed " +
                                std::to_string(computed) + " over the ciphertext (block " + std::to_string(blkno) + ")");
            }
            if (index % step != 0) return;
            r_.checks.data_pages_decrypted++;
            std::string what = check_encrypted_data_page(*o_.keys, page, rel.relfilenode, blkno);
            if (!what.empty())
                problem(VerifyClass::DataPages, path, static_cast<int64_t>(index), what + " (block " + std::to_string(blkno) + ")");
        });
        if (!found) return;
        VerifyFile& f = r_.files[relation_entry(join(dir, rel.relation))];
        f.files++;
        f.bytes += bytes;
        f.units.add(counts);
    }

    void relation_dir(const std::string& dir) {
        for (const Entry& e : list(dir)) {
            if (!e.file) continue;
            if (auto rel = parse_relation_file_name(e.name)) relation_segment(dir, e.name, *rel);
        }
    }

    void wal_segment(const std::string& path) {
        uint64_t bytes = 0, pages_at_open = 0, step = 1;
        UnitCounts counts;
        VerifyClassTotals& totals = r_.totals(VerifyClass::Wal);
        bool found = each_page(path, &bytes, &pages_at_open, [&](const uint8_t* page, uint64_t index) {
            if (index == 0) step = stride(pages_at_open);
            uint32_t generation = wal_page_generation(page);
            if (generation == 0) {
                (wal_page_is_plaintext_wal(page) ? counts.plaintext : counts.empty)++;
                return;
            }
            counts.encrypted++;
            totals.generations[generation]++;
            if (!o_.keys || index % step != 0) return;
            bool checked = false;
            std::string what = check_encrypted_wal_page(*o_.keys, page, &checked);
            if (checked) r_.checks.wal_pages_decrypted++;
            if (!what.empty()) problem(VerifyClass::Wal, path, static_cast<int64_t>(index), what);
        });
        if (!found) return;
        VerifyFile& f = file_entry(VerifyClass::Wal, path);
        f.files = 1;
        f.bytes = bytes;
        f.units = counts;
    }

    void unmarked_file(VerifyClass cls, const std::string& path, uint64_t size) {
        VerifyFile& f = file_entry(cls, path);
        f.files = 1;
        f.bytes = size;
        (size == 0 ? f.units.empty : f.units.unmarked)++;
    }

    void unmarked_tree(VerifyClass cls, const std::string& dir) {
        for (const Entry& e : list(dir)) {
            if (e.dir) unmarked_tree(cls, join(dir, e.name));
            else if (e.file) unmarked_file(cls, join(dir, e.name), e.size);
        }
    }

    // A file whose plaintext starts with a little-endian magic.
    void magic_file(VerifyClass cls, const std::string& path, uint32_t magic) {
        std::string p = full(path);
        struct stat st;
        int fd = open_if_exists(p, &st);
        if (fd < 0) return;
        std::vector<uint8_t> unit(std::min<uint64_t>(static_cast<uint64_t>(st.st_size), kPage));
        size_t got = 0;
        while (got < unit.size()) {
            ssize_t n = ::pread(fd, unit.data() + got, unit.size() - got, static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                int e = errno;
                ::close(fd);
                io_error("cannot read", p, e);
            }
            if (n == 0) break;
            got += static_cast<size_t>(n);
        }
        ::close(fd);
        unit.resize(got);

        VerifyFile& f = file_entry(cls, path);
        f.files = 1;
        f.bytes = static_cast<uint64_t>(st.st_size);
        if (st.st_size == 0) {
            f.units.empty++;
            return;
        }
        uint8_t le[4] = {static_cast<uint8_t>(magic), static_cast<uint8_t>(magic >> 8), static_cast<uint8_t>(magic >> 16),
                         static_cast<uint8_t>(magic >> 24)};
        if (unit.size() >= 4 && std::memcmp(unit.data(), le, 4) == 0) {
            f.units.plaintext++;
            return;
        }
        f.units.encrypted++;
        if (!o_.keys) return;
        r_.checks.files_decrypted++;
        if (temp_file_generation_with_magic(*o_.keys, path, unit.data(), unit.size(), magic) == 0)
            problem(cls, path, -1, "does not decrypt to its format's magic with any key generation of the keyring");
    }

    void database_dirs(const std::string& dir) {
        for (const Entry& e : list(dir)) {
            if (!e.dir) continue;
            if (e.name == "pgsql_tmp") unmarked_tree(VerifyClass::PgsqlTmp, join(dir, e.name));
            else relation_dir(join(dir, e.name));
        }
    }
};

void Scanner::run() {
    relation_dir("global");
    database_dirs("base");
    for (const Entry& ts : list("pg_tblspc")) {
        if (!ts.dir) continue;
        for (const Entry& v : list(join("pg_tblspc", ts.name)))
            if (v.dir && is_tablespace_version_dir(v.name)) database_dirs("pg_tblspc/" + ts.name + "/" + v.name);
    }
    for (const Entry& e : list("pg_wal"))
        if (e.file && is_wal_segment_file_name(e.name)) wal_segment("pg_wal/" + e.name);
    for (const Entry& slot : list("pg_replslot")) {
        if (!slot.dir) continue;
        for (const Entry& e : list("pg_replslot/" + slot.name))
            if (e.file && is_spill_file_name(e.name))
                unmarked_file(VerifyClass::ReplslotSpill, "pg_replslot/" + slot.name + "/" + e.name, e.size);
    }
    for (const Entry& e : list("pg_twophase"))
        if (e.file && is_twophase_file_name(e.name)) magic_file(VerifyClass::TwoPhase, "pg_twophase/" + e.name, kTwoPhaseMagic);
    for (const Entry& e : list("pg_stat_tmp"))
        if (e.file && e.name == "pgss_query_texts.stat") unmarked_file(VerifyClass::PgssQueryTexts, "pg_stat_tmp/" + e.name, e.size);
    for (const Entry& e : list("pg_notify"))
        if (e.file && is_slru_segment_name(e.name)) unmarked_file(VerifyClass::NotifyQueue, "pg_notify/" + e.name, e.size);
    for (const Entry& e : list("pg_stat"))
        if (e.file && (e.name == "pg_stat_statements.stat" || e.name == "pg_stat_statements.stat.tmp"))
            magic_file(VerifyClass::PgssDump, "pg_stat/" + e.name, kPgssDumpMagic);

    std::stable_sort(r_.files.begin(), r_.files.end(), [](const VerifyFile& a, const VerifyFile& b) {
        return a.cls != b.cls ? a.cls < b.cls : a.path < b.path;
    });
    for (const VerifyFile& f : r_.files) {
        VerifyClassTotals& t = r_.totals(f.cls);
        t.files += f.files;
        t.bytes += f.bytes;
        t.units.add(f.units);
    }
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

VerifyReport verify_data_directory(const std::string& datadir, const VerifyOptions& options) {
    VerifyReport r;
    r.datadir = datadir;
    while (r.datadir.size() > 1 && r.datadir.back() == '/') r.datadir.pop_back();

    auto version = read_file_if_exists(r.datadir + "/PG_VERSION");
    if (!version)
        throw Error(ErrorKind::Config, "\"" + r.datadir + "\" is not a PostgreSQL data directory (it has no PG_VERSION)",
                    {}, "Name a data directory or a pg_basebackup directory (plain format).");
    std::string v = trim(std::string(version->begin(), version->end()));
    if (v != "15")
        throw Error(ErrorKind::Config, "\"" + r.datadir + "\" is a PostgreSQL " + v + " data directory, not 15");

    r.control = read_control_info(r.datadir);
    if (!r.control.found)
        r.notes.push_back(r.control.problem + ": data checksums assumed off, " + std::to_string(r.control.relseg_size) +
                          " blocks per relation segment");
    else if (r.control.blcksz != kPage)
        throw Error(ErrorKind::Config, "the cluster uses " + std::to_string(r.control.blcksz) + "-byte pages; cmk supports 8192");

    if (auto ring = read_file_if_exists(keyring_path(r.datadir))) {
        r.keyring_present = true;
        try {
            r.keyring_current_generation = decode_keyring(*ring).current_generation;
        } catch (const Error& e) {
            r.keyring_problem = e.what();
        }
    }
    struct stat st;
    r.postmaster_pid = !options.running_server && ::stat((r.datadir + "/postmaster.pid").c_str(), &st) == 0;
    r.keys_checked = options.keys != nullptr;

    Scanner(r, options).run();
    return r;
}

}  // namespace cmk
