// cmk_frontend.so: lets PostgreSQL's own front-end tools (pg_basebackup,
// pg_receivewal, pg_rewind, pg_waldump, pg_verifybackup) read and write the
// WAL of a cmk cluster with no manual step (DESIGN.md "Front-end tools").
// Loaded with LD_PRELOAD by `pg_cmk exec -- TOOL ...` or the cmk_TOOL
// names of pg_cmk, it interposes open, read, pread, write, close (and
// glibc's fortified variants) and, for WAL segment files only (chosen by
// name, as the server chooses them), decrypts every page read and
// encrypts every page written, with the core's one WAL page format
// (wal_page.cpp). Every other file goes straight to libc.
//
// The keys of a segment come from the keyring of the data directory or
// backup it belongs to (<dir>/../pg_cmk/keyring for <dir>/pg_wal/<seg>, or
// <dir>/pg_cmk/keyring), or from CMK_KEYRING (pg_receivewal's directory has
// none), unwrapped with the KEK the keyring names (file KEK, or Key Vault
// with the AZURE_* environment, CMK_AUTH, CMK_CA_FILE) once per process.
//
// pg_basebackup -X stream writes WAL (in a forked process) before the
// keyring of the backup has arrived: such writes are kept in memory (never
// on disk in plaintext), the file's descriptor stays open, and they are
// encrypted and written as soon as the keyring is there, at the latest when
// the process exits; a process that exits with WAL it could not encrypt
// exits with status 1, so the backup fails. Compressed WAL and tar-format
// WAL (which cmk cannot encrypt page by page) are refused at open.
//
// Failures set errno to EIO (EPERM for a refused open) with a message on
// stderr, so the tool reports the file and stops; nothing is written in
// plaintext instead.
#include "azure/azure_environment.h"
#include "error.h"
#include "key_derivation.h"
#include "key_store.h"
#include "wal_page.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace cmk;

struct Real {
    int (*open)(const char*, int, ...);
    int (*openat)(int, const char*, int, ...);
    ssize_t (*read)(int, void*, size_t);
    ssize_t (*pread)(int, void*, size_t, off_t);
    ssize_t (*write)(int, const void*, size_t);
    ssize_t (*pwrite)(int, const void*, size_t, off_t);
    int (*close)(int);
};

Real& real() {
    static Real r = [] {
        Real x;
        x.open = reinterpret_cast<decltype(x.open)>(dlsym(RTLD_NEXT, "open"));
        x.openat = reinterpret_cast<decltype(x.openat)>(dlsym(RTLD_NEXT, "openat"));
        x.read = reinterpret_cast<decltype(x.read)>(dlsym(RTLD_NEXT, "read"));
        x.pread = reinterpret_cast<decltype(x.pread)>(dlsym(RTLD_NEXT, "pread"));
        x.write = reinterpret_cast<decltype(x.write)>(dlsym(RTLD_NEXT, "write"));
        x.pwrite = reinterpret_cast<decltype(x.pwrite)>(dlsym(RTLD_NEXT, "pwrite"));
        x.close = reinterpret_cast<decltype(x.close)>(dlsym(RTLD_NEXT, "close"));
        return x;
    }();
    return r;
}

void say(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    std::string line = std::string("cmk_frontend: ") + buf + "\n";
    (void)!real().write(2, line.data(), line.size());
}

// The keys of one keyring, opened once per process.
struct Keys {
    uint32_t current = 0;
    std::map<uint32_t, std::unique_ptr<XtsCipher>> wal;
};

std::recursive_mutex mu;  // re-entered: the core reads the keyring through these functions
std::map<std::string, std::unique_ptr<Keys>> keys_by_keyring;

// Opens the keyring at path; nullptr if it is not there or not complete
// yet (a backup still being written); a keyring that exists whole but
// cannot be opened (KEK refused, tampered) is an error for the caller.
Keys* keys_at(const std::string& path, std::string* error) {
    auto it = keys_by_keyring.find(path);
    if (it != keys_by_keyring.end()) return it->second.get();
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return nullptr;
    try {
        ProviderSettings settings;
        settings.environment = azure::process_environment();  // the tool's own, as pg_cmk
        if (const char* a = std::getenv("CMK_AUTH")) settings.auth = a;
        if (const char* c = std::getenv("CMK_CA_FILE")) settings.ca_file = c;
        OpenedKeys opened = open_keyring_file(path, settings);
        auto k = std::make_unique<Keys>();
        k->current = opened.keyring.current_generation;
        for (const auto& g : opened.generations) {
            DerivedKeys d = derive_keys(g.dek.data(), g.dek.size());
            k->wal[g.generation] = std::make_unique<XtsCipher>(d.wal.data());
        }
        Keys* out = k.get();
        keys_by_keyring[path] = std::move(k);
        return out;
    } catch (const Error& e) {
        // A keyring being copied in fails to parse or authenticate: not yet.
        if (e.kind() == ErrorKind::KeyringCorrupt) {
            if (error) *error = e.what();
            return nullptr;
        }
        if (error) *error = e.what();
        throw;
    }
}

bool is_segment_name(const char* name) {
    size_t n = std::strlen(name);
    if (n == 24 + 8 && std::strcmp(name + 24, ".partial") == 0) n = 24;
    if (n != 24) return false;
    for (size_t i = 0; i < 24; i++)
        if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
    return true;
}

// WAL in a form cmk cannot encrypt page by page: refused when written.
bool is_unencryptable_wal(const char* name) {
    std::string s = name;
    for (const char* suffix : {".partial", ".tmp"})
        if (s.size() > std::strlen(suffix) && s.compare(s.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
            s.resize(s.size() - std::strlen(suffix));
    for (const char* ext : {".gz", ".lz4", ".zst"}) {
        size_t e = std::strlen(ext);
        if (s.size() == 24 + e && s.compare(24, std::string::npos, ext) == 0 && is_segment_name(s.substr(0, 24).c_str()))
            return true;
    }
    return s.rfind("pg_wal.tar", 0) == 0;
}

std::string dir_of(const std::string& path) {
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    char* abs = ::realpath(dir.c_str(), nullptr);
    if (!abs) return dir;
    std::string out = abs;
    std::free(abs);
    return out;
}

// Where the keyring of a segment is: CMK_KEYRING, else beside the WAL
// directory's data directory or backup.
std::vector<std::string> keyring_candidates(const std::string& seg_path) {
    if (const char* k = std::getenv("CMK_KEYRING"); k && *k) return {k};
    std::string dir = dir_of(seg_path);
    std::string parent = dir.substr(0, dir.rfind('/'));
    if (parent.empty()) parent = "/";
    return {parent + "/pg_cmk/keyring", dir + "/pg_cmk/keyring"};
}

struct PendingWrite {
    off_t offset;
    std::vector<uint8_t> bytes;
};

struct WalFile {
    std::string path;
    std::vector<std::string> keyrings;
    Keys* keys = nullptr;
    bool raw = false;            // the tool writes pages that are already ciphertext
    bool close_deferred = false;
    std::vector<PendingWrite> pending;
};

std::map<int, std::unique_ptr<WalFile>> wal_files;
size_t pending_bytes = 0;

size_t pending_limit() {
    const char* v = std::getenv("CMK_FRONTEND_PENDING_MB");
    long mb = v ? std::atol(v) : 1024;
    return static_cast<size_t>(mb > 0 ? mb : 1024) << 20;
}

// Finds the keys of a file; nullptr if its keyring is not there yet.
Keys* keys_of(WalFile& f) {
    if (f.keys) return f.keys;
    std::string error;
    for (const auto& k : f.keyrings) {
        if (Keys* keys = keys_at(k, &error)) return f.keys = keys;
    }
    return nullptr;
}

ssize_t fail(int err) {
    errno = err;
    return -1;
}

ssize_t pread_full(int fd, uint8_t* buf, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = real().pread(fd, buf + got, n - got, off + static_cast<off_t>(got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += static_cast<size_t>(r);
    }
    return static_cast<ssize_t>(got);
}

bool pwrite_full(int fd, const uint8_t* buf, size_t n, off_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = real().pwrite(fd, buf + done, n - done, off + static_cast<off_t>(done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        done += static_cast<size_t>(r);
    }
    return true;
}

bool decrypt_page(Keys& keys, uint8_t* page, const std::string& path) {
    uint32_t gen = wal_page_generation(page);
    if (gen == 0) return true;
    auto it = keys.wal.find(gen);
    if (it == keys.wal.end()) {
        say("%s has a WAL page of key generation %u, which its keyring does not hold", path.c_str(), gen);
        return false;
    }
    if (!wal_page_decrypt(*it->second, page)) {
        say("cannot decrypt a WAL page of %s", path.c_str());
        return false;
    }
    return true;
}

// Writes bytes at off as plaintext WAL, encrypting each page that carries a
// WAL page header. A part of a page is merged with the page on disk
// (decrypted) and the whole page written.
bool write_encrypted(int fd, WalFile& f, Keys& keys, const uint8_t* buf, size_t n, off_t off) {
    alignas(16) uint8_t page[kWalPageBytes];
    size_t done = 0;
    XtsCipher& cipher = *keys.wal.at(keys.current);
    while (done < n) {
        off_t pos = off + static_cast<off_t>(done);
        size_t in_page = static_cast<size_t>(pos % static_cast<off_t>(kWalPageBytes));
        off_t page_off = pos - static_cast<off_t>(in_page);
        size_t len = std::min(kWalPageBytes - in_page, n - done);
        const uint8_t* src = buf + done;
        bool covers_header = in_page < 4;
        if (covers_header && in_page == 0 && len >= 4 && wal_page_generation(src) != 0) f.raw = true;
        if (f.raw) {
            if (!pwrite_full(fd, buf + done, n - done, pos)) return false;
            return true;
        }
        if (in_page == 0 && len == kWalPageBytes) {
            std::memcpy(page, src, kWalPageBytes);
        } else {
            ssize_t got = pread_full(fd, page, kWalPageBytes, page_off);
            if (got < 0) return false;
            std::memset(page + got, 0, kWalPageBytes - static_cast<size_t>(got));
            if (wal_page_generation(page) != 0) {
                if (static_cast<size_t>(got) != kWalPageBytes) {
                    say("%s: a short encrypted WAL page at %lld", f.path.c_str(), static_cast<long long>(page_off));
                    errno = EIO;
                    return false;
                }
                if (!decrypt_page(keys, page, f.path)) {
                    errno = EIO;
                    return false;
                }
            }
            std::memcpy(page + in_page, src, len);
        }
        if (wal_page_is_plaintext_wal(page)) {
            if (!wal_page_encrypt(cipher, keys.current, page, page)) {
                say("cannot encrypt a WAL page of %s", f.path.c_str());
                errno = EIO;
                return false;
            }
            if (!pwrite_full(fd, page, kWalPageBytes, page_off)) return false;
        } else {
            // No WAL page header (zero padding, or a page whose header is
            // not written yet): what was asked, as given.
            if (!pwrite_full(fd, src, len, pos)) return false;
        }
        done += len;
    }
    return true;
}

// Writes what waited for the keyring; false if it is still missing.
bool flush_pending(int fd, WalFile& f) {
    if (f.pending.empty()) return true;
    Keys* keys = keys_of(f);
    if (!keys) return false;
    for (const auto& w : f.pending) {
        if (!write_encrypted(fd, f, *keys, w.bytes.data(), w.bytes.size(), w.offset)) {
            say("cannot write WAL to %s: %s", f.path.c_str(), std::strerror(errno));
            return false;
        }
        pending_bytes -= w.bytes.size();
    }
    f.pending.clear();
    (void)::fsync(fd);
    return true;
}

void flush_all_deferred() {
    for (auto it = wal_files.begin(); it != wal_files.end();) {
        WalFile& f = *it->second;
        if (f.close_deferred) {
            bool done = false;
            try { done = flush_pending(it->first, f); } catch (const std::exception&) { done = false; }
            if (done) {
                real().close(it->first);
                it = wal_files.erase(it);
                continue;
            }
        }
        ++it;
    }
}

bool want_write(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }

int after_open(int fd, const char* path, int flags) {
    if (fd < 0) return fd;
    const char* slash = std::strrchr(path, '/');
    const char* name = slash ? slash + 1 : path;
    if (!is_segment_name(name)) return fd;
    std::lock_guard<std::recursive_mutex> g(mu);
    // A descriptor number libc hands out again is a new file.
    wal_files.erase(fd);
    auto f = std::make_unique<WalFile>();
    f->path = path;
    f->keyrings = keyring_candidates(path);
    (void)flags;
    wal_files[fd] = std::move(f);
    flush_all_deferred();
    return fd;
}

int adjust_flags(const char* path, int flags, bool* refuse) {
    *refuse = false;
    if (!path) return flags;
    const char* slash = std::strrchr(path, '/');
    const char* name = slash ? slash + 1 : path;
    if (want_write(flags) && is_unencryptable_wal(name)) {
        say("refusing to write \"%s\": cmk encrypts WAL page by page and cannot encrypt compressed or tar-format WAL; "
            "use -X fetch, or the plain format without WAL compression", path);
        *refuse = true;
        return flags;
    }
    // A part-page write reads the page back: open write-only WAL read-write.
    if (is_segment_name(name) && (flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    return flags;
}

WalFile* wal_file(int fd) {
    if (wal_files.empty()) return nullptr;
    auto it = wal_files.find(fd);
    return it == wal_files.end() ? nullptr : it->second.get();
}

ssize_t do_pread(int fd, void* buf, size_t n, off_t off, bool* handled) {
    std::lock_guard<std::recursive_mutex> g(mu);
    WalFile* f = wal_file(fd);
    *handled = f != nullptr;
    if (!f) return 0;
    ssize_t got = pread_full(fd, static_cast<uint8_t*>(buf), n, off);
    if (got <= 0) return got;
    alignas(16) uint8_t page[kWalPageBytes];
    uint8_t* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < static_cast<size_t>(got)) {
        off_t pos = off + static_cast<off_t>(done);
        size_t in_page = static_cast<size_t>(pos % static_cast<off_t>(kWalPageBytes));
        off_t page_off = pos - static_cast<off_t>(in_page);
        size_t len = std::min(kWalPageBytes - in_page, static_cast<size_t>(got) - done);
        uint8_t* target;
        if (in_page == 0 && len == kWalPageBytes) {
            target = out + done;
        } else {
            if (pread_full(fd, page, kWalPageBytes, page_off) != static_cast<ssize_t>(kWalPageBytes)) {
                done += len;  // a short page at the end of the file: as stored
                continue;
            }
            target = page;
        }
        if (wal_page_generation(target) != 0) {
            Keys* keys = nullptr;
            try { keys = keys_of(*f); } catch (const std::exception& e) { say("%s", e.what()); return fail(EIO); }
            if (!keys) {
                say("%s is encrypted and its keyring is not found (looked for %s); set CMK_KEYRING", f->path.c_str(),
                    f->keyrings.front().c_str());
                return fail(EIO);
            }
            if (!decrypt_page(*keys, target, f->path)) return fail(EIO);
            if (target == page) std::memcpy(out + done, page + in_page, len);
        }
        done += len;
    }
    return got;
}

ssize_t do_pwrite(int fd, const void* buf, size_t n, off_t off, bool* handled) {
    std::lock_guard<std::recursive_mutex> g(mu);
    WalFile* f = wal_file(fd);
    *handled = f != nullptr;
    if (!f) return 0;
    try {
        Keys* keys = keys_of(*f);
        if (keys && flush_pending(fd, *f)) {
            if (!write_encrypted(fd, *f, *keys, static_cast<const uint8_t*>(buf), n, off)) {
                int e = errno;
                say("cannot write WAL to %s: %s", f->path.c_str(), std::strerror(e));
                return fail(e ? e : EIO);
            }
            return static_cast<ssize_t>(n);
        }
        const uint8_t* b = static_cast<const uint8_t*>(buf);
        bool zeros = n > 0 && b[0] == 0 && std::memcmp(b, b + 1, n - 1) == 0;
        if (zeros && f->pending.empty()) {
            // Zero padding of a new segment holds nothing: write it now.
            if (!pwrite_full(fd, b, n, off)) return -1;
            return static_cast<ssize_t>(n);
        }
        if (pending_bytes + n > pending_limit()) {
            say("%zu MB of WAL wait for the keyring of %s (looked for %s): over CMK_FRONTEND_PENDING_MB; set CMK_KEYRING "
                "or use -X fetch",
                pending_bytes >> 20, f->path.c_str(), f->keyrings.front().c_str());
            return fail(EIO);
        }
        f->pending.push_back({off, std::vector<uint8_t>(b, b + n)});
        pending_bytes += n;
        return static_cast<ssize_t>(n);
    } catch (const std::exception& e) {
        say("cannot open the keyring for %s: %s", f->path.c_str(), e.what());
        return fail(EIO);
    }
}

void at_exit() {
    std::lock_guard<std::recursive_mutex> g(mu);
    bool lost = false;
    for (auto& [fd, f] : wal_files) {
        bool ok = false;
        try { ok = flush_pending(fd, *f); } catch (const std::exception& e) { say("%s", e.what()); }
        if (!ok) {
            say("%zu bytes of WAL for %s were never written: its keyring (%s) did not appear", [&] {
                size_t s = 0;
                for (auto& w : f->pending) s += w.bytes.size();
                return s;
            }(), f->path.c_str(), f->keyrings.front().c_str());
            lost = true;
        }
        if (f->close_deferred) real().close(fd);
    }
    wal_files.clear();
    if (lost) _exit(1);
}

// Tools start the server themselves (pg_rewind runs postgres --single to
// finish crash recovery, or postgres -C restore_command). The server must
// never run with these functions in front of libc (cmk binds the server's
// own imports and refuses ones that are not libc's): a postgres started
// with this library re-executes itself without it. glibc passes argc,
// argv and envp to ELF constructors.
void strip_self_from_ld_preload() {
    const char* v = std::getenv("LD_PRELOAD");
    if (!v) return;
    std::string kept, item;
    std::string list = v;
    for (size_t i = 0; i <= list.size(); i++) {
        if (i == list.size() || list[i] == ':' || list[i] == ' ') {
            if (!item.empty() && item.find("cmk_frontend") == std::string::npos)
                kept += (kept.empty() ? "" : ":") + item;
            item.clear();
        } else {
            item += list[i];
        }
    }
    if (kept.empty()) ::unsetenv("LD_PRELOAD");
    else ::setenv("LD_PRELOAD", kept.c_str(), 1);
}

__attribute__((constructor)) void init(int, char** argv, char**) {
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char* base = std::strrchr(exe, '/');
        base = base ? base + 1 : exe;
        if (std::strcmp(base, "postgres") == 0 && argv) {
            strip_self_from_ld_preload();
            ::execv(exe, argv);
            say("cannot run %s without the front-end library: %s", exe, std::strerror(errno));
            _exit(1);
        }
    }
    std::atexit(at_exit);
}

int open_impl(const char* path, int flags, mode_t mode) {
    bool refuse;
    flags = adjust_flags(path, flags, &refuse);
    if (refuse) return static_cast<int>(fail(EPERM));
    int fd = real().open(path, flags, mode);
    return after_open(fd, path, flags);
}

int openat_impl(int dirfd, const char* path, int flags, mode_t mode) {
    bool refuse;
    flags = adjust_flags(path, flags, &refuse);
    if (refuse) return static_cast<int>(fail(EPERM));
    int fd = real().openat(dirfd, path, flags, mode);
    if (fd >= 0 && path && path[0] != '/' && dirfd != AT_FDCWD) {
        char link[64], dir[4096];
        std::snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = ::readlink(link, dir, sizeof dir - 1);
        if (n > 0) {
            dir[n] = '\0';
            return after_open(fd, (std::string(dir) + "/" + path).c_str(), flags);
        }
    }
    return after_open(fd, path, flags);
}

bool is_wal_fd(int fd) {
    std::lock_guard<std::recursive_mutex> g(mu);
    return wal_file(fd) != nullptr;
}

// read() and write() of a WAL file: the positioned call at the file's
// offset, which then moves past what it transferred.
template <typename Positioned>
ssize_t at_file_offset(int fd, Positioned positioned) {
    off_t off = ::lseek(fd, 0, SEEK_CUR);
    if (off < 0) return -1;
    ssize_t r = positioned(off);
    if (r > 0) ::lseek(fd, off + r, SEEK_SET);
    return r;
}

// open(2)'s third argument, passed only with O_CREAT or O_TMPFILE.
mode_t mode_argument(int flags, va_list ap) { return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0; }

}  // namespace

#define CMK_EXPORT extern "C" __attribute__((visibility("default")))

CMK_EXPORT int open(const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_argument(flags, ap);
    va_end(ap);
    return open_impl(path, flags, mode);
}
// On x86-64 the *64 names are the same calls: one definition, two symbols.
CMK_EXPORT int open64(const char* path, int flags, ...) __attribute__((alias("open")));
CMK_EXPORT int __open_2(const char* path, int flags) { return open_impl(path, flags, 0); }
CMK_EXPORT int __open64_2(const char* path, int flags) { return open_impl(path, flags, 0); }
CMK_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_argument(flags, ap);
    va_end(ap);
    return openat_impl(dirfd, path, flags, mode);
}
CMK_EXPORT int openat64(int dirfd, const char* path, int flags, ...) __attribute__((alias("openat")));
CMK_EXPORT int creat(const char* path, mode_t mode) { return open_impl(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
CMK_EXPORT int creat64(const char* path, mode_t mode) __attribute__((alias("creat")));

CMK_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) {
    bool handled;
    ssize_t r = do_pread(fd, buf, n, off, &handled);
    return handled ? r : real().pread(fd, buf, n, off);
}
CMK_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
CMK_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t) { return pread(fd, buf, n, off); }
CMK_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t n, off_t off, size_t) { return pread(fd, buf, n, off); }

CMK_EXPORT ssize_t read(int fd, void* buf, size_t n) {
    if (!is_wal_fd(fd)) return real().read(fd, buf, n);
    return at_file_offset(fd, [&](off_t off) {
        bool handled;
        return do_pread(fd, buf, n, off, &handled);
    });
}
CMK_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t) { return read(fd, buf, n); }

CMK_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
    bool handled;
    ssize_t r = do_pwrite(fd, buf, n, off, &handled);
    return handled ? r : real().pwrite(fd, buf, n, off);
}
CMK_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

CMK_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
    if (!is_wal_fd(fd)) return real().write(fd, buf, n);
    return at_file_offset(fd, [&](off_t off) {
        bool handled;
        return do_pwrite(fd, buf, n, off, &handled);
    });
}

CMK_EXPORT int close(int fd) {
    {
        std::lock_guard<std::recursive_mutex> g(mu);
        WalFile* f = wal_file(fd);
        if (f) {
            bool flushed = false;
            try { flushed = flush_pending(fd, *f); } catch (const std::exception& e) { say("%s", e.what()); }
            if (!flushed) {
                // Keep the descriptor (the file may be renamed meanwhile) until
                // the keyring is there; the tool sees a closed file.
                f->close_deferred = true;
                return 0;
            }
            wal_files.erase(fd);
        }
    }
    return real().close(fd);
}
