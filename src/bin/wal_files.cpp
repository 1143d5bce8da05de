// pg_cmk wal encrypt/decrypt: every page of every WAL segment in a directory,
// with the keys of a data directory's keyring (wal_files.h).
#include "wal_files.h"

#include "error.h"
#include "key_derivation.h"
#include "wal_page.h"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <memory>
#include <unistd.h>
#include <vector>

namespace cmk {

namespace {

using Ciphers = std::map<uint32_t, std::unique_ptr<XtsCipher>>;

Ciphers wal_ciphers(const OpenedKeys& keys) {
    Ciphers out;
    for (const auto& g : keys.generations) {
        DerivedKeys d = derive_keys(g.dek.data(), g.dek.size());
        out[g.generation] = std::make_unique<XtsCipher>(d.wal.data());
    }
    return out;
}

[[noreturn]] void io_error(const std::string& what, const std::string& path) {
    int e = errno;
    throw Error(ErrorKind::Io, what + " \"" + path + "\": " + std::strerror(e));
}

std::vector<std::string> segments_in(const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (!d) io_error("cannot open directory", dir);
    std::vector<std::string> names;
    while (struct dirent* de = readdir(d))
        if (is_wal_segment_name(de->d_name)) names.push_back(de->d_name);
    closedir(d);
    return names;
}

// Runs fn over each page of src, writing the result to dst (may be src).
template <typename Fn>
void rewrite_pages(const std::string& src, const std::string& dst, WalDirStats& stats, Fn fn) {
    int in = ::open(src.c_str(), src == dst ? O_RDWR : O_RDONLY);
    if (in < 0) io_error("cannot open", src);
    int out = in;
    if (dst != src) {
        out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0) { ::close(in); io_error("cannot create", dst); }
    }
    std::vector<uint8_t> page(kWalPageBytes);
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(in, page.data(), page.size(), off);
        if (n < 0) io_error("cannot read", src);
        if (n == 0) break;
        bool changed = false;
        if (static_cast<size_t>(n) == kWalPageBytes) changed = fn(page.data(), static_cast<uint64_t>(off));
        if (changed || dst != src) {
            if (::pwrite(out, page.data(), static_cast<size_t>(n), off) != n) io_error("cannot write", dst);
        }
        off += n;
    }
    if (::fsync(out) != 0) io_error("cannot fsync", dst);
    if (out != in) ::close(out);
    ::close(in);
    stats.files++;
}

// The WAL position of byte 0 of a segment file: its name gives the segment
// number, its size the segment size. UINT64_MAX if they do not say.
uint64_t segment_start(const std::string& path, const std::string& name) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || st.st_size < (1 << 20) || (st.st_size & (st.st_size - 1)) != 0)
        return UINT64_MAX;
    uint64_t seg_size = static_cast<uint64_t>(st.st_size);
    uint64_t log = std::stoull(name.substr(8, 8), nullptr, 16);
    uint64_t seg = std::stoull(name.substr(16, 8), nullptr, 16);
    return (log * (0x100000000ull / seg_size) + seg) * seg_size;
}

}  // namespace

bool is_wal_segment_name(const std::string& name) {
    std::string base = name;
    if (base.size() > 8 && base.compare(base.size() - 8, 8, ".partial") == 0) base.resize(base.size() - 8);
    if (base.size() != 24) return false;
    for (char c : base)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

WalDirStats encrypt_wal_dir(const OpenedKeys& keys, const std::string& dir) {
    Ciphers ciphers = wal_ciphers(keys);
    uint32_t gen = keys.keyring.current_generation;
    XtsCipher& cipher = *ciphers.at(gen);
    WalDirStats stats;
    for (const auto& name : segments_in(dir)) {
        std::string path = dir + "/" + name;
        rewrite_pages(path, path, stats, [&](uint8_t* page, uint64_t) {
            if (wal_page_generation(page) != 0) { stats.pages_already++; return false; }
            if (!wal_page_is_plaintext_wal(page)) { stats.pages_other++; return false; }
            if (!wal_page_encrypt(cipher, gen, page, page)) throw Error(ErrorKind::Crypto, "cannot encrypt a page of " + path);
            stats.pages_changed++;
            return true;
        });
    }
    return stats;
}

WalDirStats decrypt_wal_dir(const OpenedKeys& keys, const std::string& dir, const std::string& out_dir,
                            uint64_t redo_before) {
    Ciphers ciphers = wal_ciphers(keys);
    WalDirStats stats;
    for (const auto& name : segments_in(dir)) {
        std::string path = dir + "/" + name;
        std::string dst = out_dir.empty() ? path : out_dir + "/" + name;
        uint64_t start = segment_start(path, name);
        rewrite_pages(path, dst, stats, [&](uint8_t* page, uint64_t off) {
            uint32_t gen = wal_page_generation(page);
            if (gen == 0) {
                (wal_page_is_plaintext_wal(page) ? stats.pages_already : stats.pages_other)++;
                return false;
            }
            // A page of a recycled segment's earlier life (not where its
            // header says): nothing reads it, its generation may be retired.
            uint64_t addr;
            std::memcpy(&addr, page + 8, sizeof addr);
            if (start != UINT64_MAX && addr != start + off) {
                stats.pages_stale++;
                return false;
            }
            auto it = ciphers.find(gen);
            if (it == ciphers.end() && redo_before != 0 && addr + kWalPageBytes <= redo_before) {
                stats.pages_unneeded++;
                return false;
            }
            if (it == ciphers.end())
                throw Error(ErrorKind::KeyringCorrupt, path + " has a page of key generation " + std::to_string(gen) +
                                                           ", which the keyring does not hold");
            if (!wal_page_decrypt(*it->second, page)) throw Error(ErrorKind::Crypto, "cannot decrypt a page of " + path);
            stats.pages_changed++;
            return true;
        });
    }
    return stats;
}

}  // namespace cmk
