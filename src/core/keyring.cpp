// The keyring file: encode, decode, authenticate, read, replace atomically
// (keyring.h).
#include "keyring.h"

#include "error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace cmk {

namespace {

const char kMagic[8] = {'C', 'M', 'K', 'R', 'I', 'N', 'G', '\n'};
constexpr size_t kMacBytes = 32;

const char* kCorruptHint =
    "Restore pg_cmk/keyring from a backup of this data directory. cmk never creates a new keyring over encrypted data.";

[[noreturn]] void corrupt(const std::string& what) {
    throw Error(ErrorKind::KeyringCorrupt, "keyring is corrupt: " + what, {}, kCorruptHint);
}

class Writer {
public:
    void u8(uint8_t v) { out.push_back(v); }
    void u16(uint16_t v) { u8(v >> 8); u8(v & 0xff); }
    void u32(uint32_t v) { u16(v >> 16); u16(v & 0xffff); }
    void u64(uint64_t v) { u32(static_cast<uint32_t>(v >> 32)); u32(static_cast<uint32_t>(v)); }
    void raw(const void* p, size_t n) { out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); }
    void str8(const std::string& s) {
        if (s.size() > 0xff) throw Error(ErrorKind::Internal, "keyring field too long");
        u8(static_cast<uint8_t>(s.size()));
        raw(s.data(), s.size());
    }
    void bytes16(const void* p, size_t n) {
        if (n > 0xffff) throw Error(ErrorKind::Internal, "keyring field too long");
        u16(static_cast<uint16_t>(n));
        raw(p, n);
    }
    Bytes out;
};

class Reader {
public:
    Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
    void need(size_t k, const char* what) {
        if (n_ - pos_ < k) corrupt(std::string("truncated in ") + what);
    }
    uint8_t u8(const char* what) { need(1, what); return p_[pos_++]; }
    uint16_t u16(const char* what) { uint16_t hi = u8(what); return static_cast<uint16_t>(hi << 8 | u8(what)); }
    uint32_t u32(const char* what) { uint32_t hi = u16(what); return hi << 16 | u16(what); }
    uint64_t u64(const char* what) { uint64_t hi = u32(what); return hi << 32 | u32(what); }
    const uint8_t* raw(size_t k, const char* what) { need(k, what); const uint8_t* r = p_ + pos_; pos_ += k; return r; }
    std::string str(size_t k, const char* what) { const uint8_t* r = raw(k, what); return std::string(reinterpret_cast<const char*>(r), k); }
    size_t pos() const { return pos_; }

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
};

std::array<uint8_t, kMacBytes> hmac(const uint8_t* data, size_t len, const SecureBytes& key) {
    std::array<uint8_t, kMacBytes> mac{};
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, len, mac.data(), &maclen) || maclen != kMacBytes)
        throw_openssl_error("HMAC-SHA256 failed");
    return mac;
}

}  // namespace

const KeyringEntry& Keyring::entry(uint32_t generation) const {
    for (const auto& e : entries)
        if (e.generation == generation) return e;
    corrupt("no entry for key generation " + std::to_string(generation));
}

Bytes encode_keyring(const Keyring& keyring, const SecureBytes& mac_key) {
    Writer w;
    w.raw(kMagic, sizeof kMagic);
    w.u16(kKeyringFormatVersion);
    w.u16(0);
    w.u32(keyring.current_generation);
    w.u32(static_cast<uint32_t>(keyring.entries.size()));
    w.u32(keyring.installed_timeline);
    w.u64(keyring.installed_lsn);
    for (const auto& e : keyring.entries) {
        w.u32(e.generation);
        w.u64(e.created_at);
        w.str8(e.wrapped.algorithm);
        w.bytes16(e.wrapped.kek_base.data(), e.wrapped.kek_base.size());
        w.bytes16(e.wrapped.kek_version.data(), e.wrapped.kek_version.size());
        w.bytes16(e.wrapped.wrapped.data(), e.wrapped.wrapped.size());
        w.raw(e.check_value.data(), e.check_value.size());
        w.u64(e.current_from_lsn);
    }
    auto mac = hmac(w.out.data(), w.out.size(), mac_key);
    w.raw(mac.data(), mac.size());
    return w.out;
}

Keyring decode_keyring(const Bytes& file) {
    if (file.size() < sizeof kMagic + 12 + kMacBytes)
        corrupt("file is too short (" + std::to_string(file.size()) + " bytes)");
    if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0) corrupt("bad magic: this is not a cmk keyring");
    Reader r(file.data(), file.size() - kMacBytes);
    r.raw(sizeof kMagic, "magic");
    uint16_t version = r.u16("header");
    if (version < kKeyringOldestFormatVersion || version > kKeyringFormatVersion)
        throw Error(ErrorKind::KeyringCorrupt,
                    "keyring has format version " + std::to_string(version) + ", this cmk reads versions " +
                        std::to_string(kKeyringOldestFormatVersion) + " to " + std::to_string(kKeyringFormatVersion),
                    {}, "Run the cmk release that wrote this keyring, or restore a keyring from a backup.");
    uint16_t flags = r.u16("header");
    if (flags != 0) corrupt("unknown flags " + std::to_string(flags));
    Keyring k;
    k.current_generation = r.u32("header");
    uint32_t count = r.u32("header");
    if (count == 0 || count > kMaxGenerations) corrupt("entry count " + std::to_string(count) + " out of range");
    if (version >= 2) {
        k.installed_timeline = r.u32("header");
        k.installed_lsn = r.u64("header");
    }
    for (uint32_t i = 0; i < count; i++) {
        KeyringEntry e;
        e.generation = r.u32("entry");
        if (e.generation == 0 || e.generation > kMaxGenerations) corrupt("generation " + std::to_string(e.generation) + " out of range");
        for (const auto& other : k.entries)
            if (other.generation == e.generation) corrupt("generation " + std::to_string(e.generation) + " appears twice");
        e.created_at = r.u64("entry");
        e.wrapped.algorithm = r.str(r.u8("entry"), "entry");
        e.wrapped.kek_base = r.str(r.u16("entry"), "entry");
        e.wrapped.kek_version = r.str(r.u16("entry"), "entry");
        size_t wlen = r.u16("entry");
        const uint8_t* wp = r.raw(wlen, "entry");
        e.wrapped.wrapped.assign(wp, wp + wlen);
        std::memcpy(e.check_value.data(), r.raw(kKcvBytes, "entry"), kKcvBytes);
        if (version >= 2) e.current_from_lsn = r.u64("entry");
        if (e.wrapped.kek_base.empty() || e.wrapped.wrapped.empty()) corrupt("entry " + std::to_string(i) + " is empty");
        k.entries.push_back(std::move(e));
    }
    if (r.pos() != file.size() - kMacBytes) corrupt("unexpected bytes after the last entry");
    k.entry(k.current_generation);  // the current generation must be present
    return k;
}

void verify_keyring_mac(const Bytes& file, const SecureBytes& mac_key) {
    if (file.size() < kMacBytes) corrupt("file is too short");
    auto mac = hmac(file.data(), file.size() - kMacBytes, mac_key);
    if (CRYPTO_memcmp(mac.data(), file.data() + file.size() - kMacBytes, kMacBytes) != 0)
        corrupt("its authentication code does not match (the file was altered)");
}

std::optional<Bytes> read_file_if_exists(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::nullopt;
        int e = errno;
        throw Error(ErrorKind::Io, "cannot open \"" + path + "\": " + std::strerror(e));
    }
    Bytes out;
    uint8_t buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            throw Error(ErrorKind::Io, "cannot read \"" + path + "\": " + std::strerror(e));
        }
        if (n == 0) break;
        out.insert(out.end(), buf, buf + n);
        if (out.size() > (16u << 20)) {
            ::close(fd);
            throw Error(ErrorKind::KeyringCorrupt, "\"" + path + "\" is implausibly large");
        }
    }
    ::close(fd);
    return out;
}

void write_file_atomically(const std::string& path, const Bytes& contents, unsigned mode) {
    std::string tmp = path + ".tmp";
    auto fail = [&](const std::string& what) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorKind::Io, what + " \"" + tmp + "\": " + std::strerror(e));
    };
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) fail("cannot create");
    size_t done = 0;
    while (done < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            ::close(fd);
            fail("cannot write");
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) { ::close(fd); fail("cannot fsync"); }
    if (::close(fd) != 0) fail("cannot close");
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename into place");
    auto slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0) ::close(dfd);
        throw Error(ErrorKind::Io, "cannot fsync directory \"" + dir + "\": " + std::strerror(e));
    }
    ::close(dfd);
}

}  // namespace cmk
