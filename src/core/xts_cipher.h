// AES-256-XTS with a key set up once: encrypt/decrypt only set the tweak and
// run the cipher, so the per-page cost is the cipher itself (no key schedule,
// no allocation). One object per key per process; not thread-safe.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <cstdint>

namespace cmk {

namespace xts_libgcrypt { struct Context; }
namespace xts_openssl { struct Context; }

class XtsCipher {
public:
    static constexpr size_t kKeyBytes = 64;  // two AES-256 keys
    static constexpr size_t kTweakBytes = 16;

    // The library that runs the cipher; all give the same bytes (IEEE 1619).
    //   kLibgcrypt  libgcrypt's VAES/AVX2 XTS (xts_libgcrypt.h), the fastest
    //               here; used when it passed its load-time self-check;
    //   kOpenSsl    OpenSSL's XTS through its provider functions
    //               (xts_openssl.h);
    //   kOpenSslEvp OpenSSL's XTS through plain EVP calls.
    // kBest takes the first of these that is available.
    enum class Backend { kBest, kLibgcrypt, kOpenSsl, kOpenSslEvp };

    explicit XtsCipher(const uint8_t key[kKeyBytes], Backend backend = Backend::kBest);
    ~XtsCipher();
    XtsCipher(const XtsCipher&) = delete;
    XtsCipher& operator=(const XtsCipher&) = delete;

    // len >= 16; in and out may be the same buffer. Return false only if
    // the library refuses (it does not for valid lengths).
    bool encrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept;
    bool decrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept;

    Backend backend() const { return backend_; }
    // Whether the key schedules are in locked memory that core dumps leave
    // out (secure_memory.h): true but for the plain EVP backend, whose
    // contexts OpenSSL allocates where cmk cannot find them.
    bool key_memory_protected() const { return backend_ != Backend::kOpenSslEvp; }
    static bool available(Backend backend);
    static const char* backend_name(Backend backend);

private:
    Backend backend_;
    xts_libgcrypt::Context* gcrypt_ = nullptr;
    xts_openssl::Context* openssl_ = nullptr;
};

}  // namespace cmk
