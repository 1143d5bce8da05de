// AES-256-XTS with a key set up once: encrypt/decrypt only set the tweak and
// run the cipher, so the per-page cost is the cipher itself (no key schedule,
// no allocation). One object per key per process; not thread-safe.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <cstdint>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace cmk {

class XtsCipher {
public:
    static constexpr size_t kKeyBytes = 64;  // two AES-256 keys
    static constexpr size_t kTweakBytes = 16;

    explicit XtsCipher(const uint8_t key[kKeyBytes]);
    ~XtsCipher();
    XtsCipher(const XtsCipher&) = delete;
    XtsCipher& operator=(const XtsCipher&) = delete;

    // len >= 16; in and out may be the same buffer. Return false only if
    // OpenSSL refuses (it does not for valid lengths).
    bool encrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept;
    bool decrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept;

private:
    EVP_CIPHER_CTX* enc_;
    EVP_CIPHER_CTX* dec_;
};

}  // namespace cmk
