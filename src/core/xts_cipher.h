// AES-256-XTS with a key set up once: encrypt/decrypt only set the tweak and
// run the cipher, so the per-page cost is the cipher itself (no key schedule,
// no allocation). One object per key per process; not thread-safe.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <cstdint>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace cmk {

struct XtsProviderFunctions;

class XtsCipher {
public:
    static constexpr size_t kKeyBytes = 64;  // two AES-256 keys
    static constexpr size_t kTweakBytes = 16;

    // How the per-call tweak reaches OpenSSL. kProvider calls the cipher
    // implementation that EVP fetched through its provider interface
    // (OSSL_PROVIDER_query_operation): the same code, without the EVP
    // layer's per-call work (OpenSSL 3.0's EVP_CipherInit_ex asks the
    // provider for the IV length through OSSL_PARAM on every call, 7% of a
    // page). kEvp is the plain EVP path, used when the provider's functions
    // cannot be found. kBest picks kProvider when available.
    enum class Backend { kBest, kProvider, kEvp };

    explicit XtsCipher(const uint8_t key[kKeyBytes], Backend backend = Backend::kBest);
    ~XtsCipher();
    XtsCipher(const XtsCipher&) = delete;
    XtsCipher& operator=(const XtsCipher&) = delete;

    // len >= 16; in and out may be the same buffer. Return false only if
    // OpenSSL refuses (it does not for valid lengths).
    bool encrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept;
    bool decrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept;

    Backend backend() const { return prov_ ? Backend::kProvider : Backend::kEvp; }
    // Whether this process's OpenSSL offers the provider path.
    static bool provider_available();

private:
    const XtsProviderFunctions* prov_ = nullptr;  // non-null: provider backend
    void* prov_enc_ = nullptr;                    // provider cipher contexts
    void* prov_dec_ = nullptr;
    EVP_CIPHER_CTX* enc_ = nullptr;               // EVP backend
    EVP_CIPHER_CTX* dec_ = nullptr;
};

}  // namespace cmk
