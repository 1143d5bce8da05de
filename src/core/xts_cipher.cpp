#include "xts_cipher.h"

#include "error.h"

#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <cstring>
#include <string>

namespace cmk {

// The cipher functions of the provider that implements AES-256-XTS for EVP
// (the default provider, or the FIPS provider when OpenSSL is configured so).
struct XtsProviderFunctions {
    EVP_CIPHER* cipher = nullptr;  // held for the process: keeps the provider loaded
    void* provctx = nullptr;
    OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
    OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
    OSSL_FUNC_cipher_encrypt_init_fn* encrypt_init = nullptr;
    OSSL_FUNC_cipher_decrypt_init_fn* decrypt_init = nullptr;
    OSSL_FUNC_cipher_cipher_fn* run = nullptr;
};

namespace {

constexpr const char* kAlgorithm = "AES-256-XTS";

bool names_contain(const char* names, const char* name) {
    // algorithm_names is a colon-separated list ("AES-256-XTS:1.3.111...").
    std::string list = std::string(":") + names + ":";
    return list.find(std::string(":") + name + ":") != std::string::npos;
}

// Looks the functions up once per process; nullptr if anything is missing
// (the caller then uses EVP).
const XtsProviderFunctions* provider_functions() {
    static const XtsProviderFunctions* resolved = []() -> const XtsProviderFunctions* {
        EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, kAlgorithm, nullptr);
        if (!cipher) return nullptr;
        const OSSL_PROVIDER* prov = EVP_CIPHER_get0_provider(cipher);
        int no_cache = 0;
        const OSSL_ALGORITHM* algs =
            prov ? OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache) : nullptr;
        const OSSL_DISPATCH* dispatch = nullptr;
        for (const OSSL_ALGORITHM* a = algs; a && a->algorithm_names; a++)
            if (names_contain(a->algorithm_names, kAlgorithm)) {
                dispatch = a->implementation;
                break;
            }
        static XtsProviderFunctions f;
        for (const OSSL_DISPATCH* d = dispatch; d && d->function_id != 0; d++) {
            switch (d->function_id) {
            case OSSL_FUNC_CIPHER_NEWCTX: f.newctx = OSSL_FUNC_cipher_newctx(d); break;
            case OSSL_FUNC_CIPHER_FREECTX: f.freectx = OSSL_FUNC_cipher_freectx(d); break;
            case OSSL_FUNC_CIPHER_ENCRYPT_INIT: f.encrypt_init = OSSL_FUNC_cipher_encrypt_init(d); break;
            case OSSL_FUNC_CIPHER_DECRYPT_INIT: f.decrypt_init = OSSL_FUNC_cipher_decrypt_init(d); break;
            case OSSL_FUNC_CIPHER_CIPHER: f.run = OSSL_FUNC_cipher_cipher(d); break;
            default: break;
            }
        }
        if (algs) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
        f.provctx = prov ? OSSL_PROVIDER_get0_provider_ctx(prov) : nullptr;
        if (!f.newctx || !f.freectx || !f.encrypt_init || !f.decrypt_init || !f.run) {
            EVP_CIPHER_free(cipher);
            return nullptr;
        }
        f.cipher = cipher;
        return &f;
    }();
    return resolved;
}

// A provider context with the key schedule set up for one direction.
void* make_provider_ctx(const XtsProviderFunctions& f, const uint8_t* key, bool enc) {
    void* ctx = f.newctx(f.provctx);
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    int ok = enc ? f.encrypt_init(ctx, key, XtsCipher::kKeyBytes, nullptr, 0, nullptr)
                 : f.decrypt_init(ctx, key, XtsCipher::kKeyBytes, nullptr, 0, nullptr);
    if (ok != 1) {
        f.freectx(ctx);
        throw_openssl_error("cannot set up AES-256-XTS");
    }
    return ctx;
}

EVP_CIPHER_CTX* make_evp_ctx(const uint8_t* key, int enc) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    // The key schedule runs here, once; later calls pass only the tweak.
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_xts(), nullptr, key, nullptr, enc) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        throw_openssl_error("cannot set up AES-256-XTS");
    }
    return ctx;
}

bool run_evp(EVP_CIPHER_CTX* ctx, int enc, const uint8_t* in, uint8_t* out, size_t len, const uint8_t* tweak) {
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, tweak, enc) != 1) return false;
    if (EVP_CipherUpdate(ctx, out, &outl, in, static_cast<int>(len)) != 1) return false;
    return static_cast<size_t>(outl) == len;
}

bool run_provider(const XtsProviderFunctions& f, void* ctx, bool enc, const uint8_t* in, uint8_t* out, size_t len,
                  const uint8_t* tweak) {
    // Setting only the IV keeps the key schedule (a NULL key is "keep").
    int ok = enc ? f.encrypt_init(ctx, nullptr, 0, tweak, XtsCipher::kTweakBytes, nullptr)
                 : f.decrypt_init(ctx, nullptr, 0, tweak, XtsCipher::kTweakBytes, nullptr);
    if (ok != 1) return false;
    size_t outl = 0;
    if (f.run(ctx, out, &outl, len, in, len) != 1) return false;
    return outl == len;
}

}  // namespace

bool XtsCipher::provider_available() { return provider_functions() != nullptr; }

XtsCipher::XtsCipher(const uint8_t key[kKeyBytes], Backend backend) {
    const XtsProviderFunctions* f = backend == Backend::kEvp ? nullptr : provider_functions();
    if (backend == Backend::kProvider && !f)
        throw Error(ErrorKind::Internal, "OpenSSL's provider functions for AES-256-XTS are not available");
    if (f) {
        prov_enc_ = make_provider_ctx(*f, key, true);
        try {
            prov_dec_ = make_provider_ctx(*f, key, false);
        } catch (...) {
            f->freectx(prov_enc_);
            throw;
        }
        prov_ = f;
        return;
    }
    enc_ = make_evp_ctx(key, 1);
    try {
        dec_ = make_evp_ctx(key, 0);
    } catch (...) {
        EVP_CIPHER_CTX_free(enc_);
        throw;
    }
}

XtsCipher::~XtsCipher() {
    // Both free and cleanse the key schedules.
    if (prov_) {
        prov_->freectx(prov_enc_);
        prov_->freectx(prov_dec_);
    }
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
}

bool XtsCipher::encrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept {
    return prov_ ? run_provider(*prov_, prov_enc_, true, in, out, len, tweak) : run_evp(enc_, 1, in, out, len, tweak);
}

bool XtsCipher::decrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept {
    return prov_ ? run_provider(*prov_, prov_dec_, false, in, out, len, tweak) : run_evp(dec_, 0, in, out, len, tweak);
}

}  // namespace cmk
