// Helpers shared by the core's unit tests (test/unit/test_core_*.cpp):
// hex, temporary directories, RSA/EC keys made with OpenSSL EVP, and an
// HMAC-SHA256 / HKDF-SHA256 written here from RFC 2104 / RFC 5869 on top of
// OpenSSL's HMAC, so that tests can check the core against an independent
// computation. Everything lives in namespace core_test (inline), so these
// helpers never collide with the other test files linked into unit_tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <utility>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

namespace core_test {

using ByteVec = std::vector<uint8_t>;

inline ByteVec from_hex(const std::string& hex) {
    if (hex.size() % 2) throw std::invalid_argument("odd hex length");
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        throw std::invalid_argument(std::string("bad hex digit ") + c);
    };
    ByteVec out(hex.size() / 2);
    for (size_t i = 0; i < out.size(); i++) out[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    return out;
}

template <typename Container>
inline std::string to_hex(const Container& c) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (auto b : c) {
        out += digits[static_cast<uint8_t>(b) >> 4];
        out += digits[static_cast<uint8_t>(b) & 15];
    }
    return out;
}

template <typename A, typename B>
inline bool same_bytes(const A& a, const B& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// Runs fn, which must throw cmk::Error; returns it (fails the test otherwise).
inline cmk::Error expect_error(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const cmk::Error& e) {
        return e;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw a non-cmk exception: " << e.what();
        return cmk::Error(cmk::ErrorKind::Internal, std::string("non-cmk exception: ") + e.what());
    }
    ADD_FAILURE() << "did not throw";
    return cmk::Error(cmk::ErrorKind::Internal, "<did not throw>");
}

inline const char* kind_name(cmk::ErrorKind k) { return cmk::error_kind_name(k); }
// For EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::X)): failures print names.
inline std::string kind_str(cmk::ErrorKind k) { return cmk::error_kind_name(k); }

// A directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cmk-core-test-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (!::mkdtemp(buf.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        path_ = buf.data();
    }
    ~TempDir() {
        std::error_code ec;
        // Make everything readable again (tests chmod files to 000).
        for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
            ::chmod(it->path().c_str(), 0700);
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// The names in a directory, without "." and "..", sorted; empty if it
// cannot be opened.
inline std::vector<std::string> dir_entries(const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

inline bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

inline void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline void write_bytes(const std::string& path, const ByteVec& b) {
    write_text(path, std::string(b.begin(), b.end()));
}

inline ByteVec read_bytes(const std::string& path) {
    std::string s = read_text(path);
    return ByteVec(s.begin(), s.end());
}

// ---- keys -----------------------------------------------------------------

inline std::string pem_of(EVP_PKEY* key, bool traditional = false) {
    BIO* bio = BIO_new(BIO_s_mem());
    int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio, key, nullptr, nullptr, 0, nullptr, nullptr)
                         : PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    if (ok != 1) {
        BIO_free(bio);
        throw std::runtime_error("PEM_write_bio_PrivateKey failed");
    }
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}

inline std::string public_pem_of(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (PEM_write_bio_PUBKEY(bio, key) != 1) {
        BIO_free(bio);
        throw std::runtime_error("PEM_write_bio_PUBKEY failed");
    }
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}

struct GeneratedKey {
    std::string pem;              // PKCS#8 "BEGIN PRIVATE KEY"
    std::string traditional_pem;  // "BEGIN RSA PRIVATE KEY" (RSA only)
    std::string public_pem;       // "BEGIN PUBLIC KEY"
};

inline GeneratedKey generate_rsa(unsigned bits) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
    EVP_PKEY* key = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, static_cast<int>(bits)) != 1 ||
        EVP_PKEY_generate(ctx, &key) != 1) {
        EVP_PKEY_CTX_free(ctx);
        throw std::runtime_error("RSA key generation failed");
    }
    EVP_PKEY_CTX_free(ctx);
    GeneratedKey g{pem_of(key), pem_of(key, true), public_pem_of(key)};
    EVP_PKEY_free(key);
    return g;
}

inline GeneratedKey generate_ec_p256() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (!key) throw std::runtime_error("EC key generation failed");
    GeneratedKey g{pem_of(key), {}, public_pem_of(key)};
    EVP_PKEY_free(key);
    return g;
}

// RSA key generation is slow (4096 bits: seconds), so every key is made once
// per process and shared by all tests. Index distinguishes distinct keys of
// the same size.
inline const GeneratedKey& rsa_key(unsigned bits, int index = 0) {
    static std::map<std::pair<unsigned, int>, GeneratedKey>* cache = new std::map<std::pair<unsigned, int>, GeneratedKey>();
    auto k = std::make_pair(bits, index);
    auto it = cache->find(k);
    if (it == cache->end()) it = cache->emplace(k, generate_rsa(bits)).first;
    return it->second;
}

// ---- independent HMAC-SHA256 / HKDF-SHA256 --------------------------------

inline ByteVec hmac_sha256(const ByteVec& key, const ByteVec& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), md, &len))
        throw std::runtime_error("HMAC failed");
    return ByteVec(md, md + len);
}

// RFC 5869 section 2.2 and 2.3, written out.
inline ByteVec reference_hkdf_sha256(const ByteVec& ikm, const ByteVec& salt, const ByteVec& info, size_t len) {
    ByteVec s = salt.empty() ? ByteVec(32, 0) : salt;
    ByteVec prk = hmac_sha256(s, ikm);
    ByteVec okm, t;
    for (uint8_t i = 1; okm.size() < len; i++) {
        ByteVec in = t;
        in.insert(in.end(), info.begin(), info.end());
        in.push_back(i);
        t = hmac_sha256(prk, in);
        okm.insert(okm.end(), t.begin(), t.end());
    }
    okm.resize(len);
    return okm;
}

inline ByteVec bytes_of(const std::string& s) { return ByteVec(s.begin(), s.end()); }

}  // namespace core_test
