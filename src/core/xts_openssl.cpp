#include "xts_openssl.h"

#include "error.h"

#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <string>

namespace cmk {
namespace xts_openssl {

namespace {

constexpr const char* kAlgorithm = "AES-256-XTS";
constexpr size_t kKeyBytes = XtsCipher::kKeyBytes;
constexpr size_t kTweakBytes = XtsCipher::kTweakBytes;

// The cipher functions of the provider that implements AES-256-XTS for EVP
// (the default provider, or the FIPS provider when OpenSSL is configured so).
struct ProviderFunctions {
    EVP_CIPHER* cipher = nullptr;  // held for the process: keeps the provider loaded
    void* provctx = nullptr;
    OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
    OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
    OSSL_FUNC_cipher_encrypt_init_fn* encrypt_init = nullptr;
    OSSL_FUNC_cipher_decrypt_init_fn* decrypt_init = nullptr;
    OSSL_FUNC_cipher_cipher_fn* run = nullptr;
};

bool names_contain(const char* names, const char* name) {
    // algorithm_names is a colon-separated list ("AES-256-XTS:1.3.111...").
    std::string list = std::string(":") + names + ":";
    return list.find(std::string(":") + name + ":") != std::string::npos;
}

// Looked up once per process; nullptr if anything is missing.
const ProviderFunctions* provider_functions() {
    static const ProviderFunctions* resolved = []() -> const ProviderFunctions* {
        EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, kAlgorithm, nullptr);
        if (!cipher) return nullptr;
        const OSSL_PROVIDER* prov = EVP_CIPHER_get0_provider(cipher);
        int no_cache = 0;
        const OSSL_ALGORITHM* algs = prov ? OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache) : nullptr;
        const OSSL_DISPATCH* dispatch = nullptr;
        for (const OSSL_ALGORITHM* a = algs; a && a->algorithm_names; a++)
            if (names_contain(a->algorithm_names, kAlgorithm)) {
                dispatch = a->implementation;
                break;
            }
        static ProviderFunctions f;
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

}  // namespace

struct Context {
    const ProviderFunctions* prov = nullptr;  // non-null: provider path
    void* prov_enc = nullptr;
    void* prov_dec = nullptr;
    EVP_CIPHER_CTX* evp_enc = nullptr;        // EVP path
    EVP_CIPHER_CTX* evp_dec = nullptr;
};

namespace {

void* make_provider_ctx(const ProviderFunctions& f, const uint8_t* key, bool enc) {
    void* ctx = f.newctx(f.provctx);
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    int ok = enc ? f.encrypt_init(ctx, key, kKeyBytes, nullptr, 0, nullptr)
                 : f.decrypt_init(ctx, key, kKeyBytes, nullptr, 0, nullptr);
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

}  // namespace

bool provider_available() { return provider_functions() != nullptr; }

Context* create(const uint8_t key[XtsCipher::kKeyBytes], bool use_provider) {
    const ProviderFunctions* f = use_provider ? provider_functions() : nullptr;
    if (use_provider && !f)
        throw Error(ErrorKind::Internal, "OpenSSL's provider functions for AES-256-XTS are not available");
    Context* c = new Context;
    try {
        if (f) {
            c->prov_enc = make_provider_ctx(*f, key, true);
            c->prov_dec = make_provider_ctx(*f, key, false);
            c->prov = f;
        } else {
            c->evp_enc = make_evp_ctx(key, 1);
            c->evp_dec = make_evp_ctx(key, 0);
        }
    } catch (...) {
        if (f) {
            if (c->prov_enc) f->freectx(c->prov_enc);
            if (c->prov_dec) f->freectx(c->prov_dec);
        }
        EVP_CIPHER_CTX_free(c->evp_enc);
        EVP_CIPHER_CTX_free(c->evp_dec);
        delete c;
        throw;
    }
    return c;
}

void destroy(Context* c) noexcept {
    if (!c) return;
    // Both free and cleanse the key schedules.
    if (c->prov) {
        c->prov->freectx(c->prov_enc);
        c->prov->freectx(c->prov_dec);
    }
    EVP_CIPHER_CTX_free(c->evp_enc);
    EVP_CIPHER_CTX_free(c->evp_dec);
    delete c;
}

bool crypt(Context* c, bool enc, const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[XtsCipher::kTweakBytes]) noexcept {
    if (c->prov) {
        const ProviderFunctions& f = *c->prov;
        void* ctx = enc ? c->prov_enc : c->prov_dec;
        // Setting only the IV keeps the key schedule (a NULL key is "keep").
        int ok = enc ? f.encrypt_init(ctx, nullptr, 0, tweak, kTweakBytes, nullptr)
                     : f.decrypt_init(ctx, nullptr, 0, tweak, kTweakBytes, nullptr);
        if (ok != 1) return false;
        size_t outl = 0;
        if (f.run(ctx, out, &outl, len, in, len) != 1) return false;
        return outl == len;
    }
    EVP_CIPHER_CTX* ctx = enc ? c->evp_enc : c->evp_dec;
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, tweak, enc ? 1 : 0) != 1) return false;
    if (EVP_CipherUpdate(ctx, out, &outl, in, static_cast<int>(len)) != 1) return false;
    return static_cast<size_t>(outl) == len;
}

}  // namespace xts_openssl
}  // namespace cmk
