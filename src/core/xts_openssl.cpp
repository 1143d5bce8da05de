// AES-256-XTS through OpenSSL (xts_openssl.h).
#include "xts_openssl.h"

#include "error.h"
#include "secure_memory.h"

#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <malloc.h>

#include <map>
#include <mutex>
#include <string>

namespace cmk {
namespace xts_openssl {

namespace {

constexpr const char* kAlgorithm = "AES-256-XTS";
constexpr size_t kKeyBytes = XtsCipher::kKeyBytes;
constexpr size_t kTweakBytes = XtsCipher::kTweakBytes;

bool names_contain(const char* names, const char* name) {
    // algorithm_names is a colon-separated list ("AES-256-XTS:1.3.111...").
    std::string list = std::string(":") + names + ":";
    return list.find(std::string(":") + name + ":") != std::string::npos;
}

ProviderCipher* resolve(const char* algorithm) {
    EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, algorithm, nullptr);
    if (!cipher) return nullptr;
    const OSSL_PROVIDER* prov = EVP_CIPHER_get0_provider(cipher);
    int no_cache = 0;
    const OSSL_ALGORITHM* algs = prov ? OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache) : nullptr;
    const OSSL_DISPATCH* dispatch = nullptr;
    for (const OSSL_ALGORITHM* a = algs; a && a->algorithm_names; a++)
        if (names_contain(a->algorithm_names, algorithm)) {
            dispatch = a->implementation;
            break;
        }
    auto* f = new ProviderCipher;
    for (const OSSL_DISPATCH* d = dispatch; d && d->function_id != 0; d++) {
        switch (d->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX: f->newctx = OSSL_FUNC_cipher_newctx(d); break;
        case OSSL_FUNC_CIPHER_FREECTX: f->freectx = OSSL_FUNC_cipher_freectx(d); break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT: f->encrypt_init = OSSL_FUNC_cipher_encrypt_init(d); break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT: f->decrypt_init = OSSL_FUNC_cipher_decrypt_init(d); break;
        case OSSL_FUNC_CIPHER_CIPHER: f->run = OSSL_FUNC_cipher_cipher(d); break;
        default: break;
        }
    }
    if (algs) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
    f->provctx = prov ? OSSL_PROVIDER_get0_provider_ctx(prov) : nullptr;
    if (!f->newctx || !f->freectx || !f->encrypt_init || !f->decrypt_init || !f->run) {
        EVP_CIPHER_free(cipher);
        delete f;
        return nullptr;
    }
    f->cipher = cipher;  // held for the process: keeps the provider loaded
    return f;
}

// OpenSSL allocates a provider's cipher context with its CRYPTO_malloc,
// which is glibc's malloc unless the program replaced OpenSSL's memory
// functions: then the context's size is malloc_usable_size.
bool contexts_from_malloc() {
    CRYPTO_malloc_fn m = nullptr;
    CRYPTO_realloc_fn r = nullptr;
    CRYPTO_free_fn f = nullptr;
    CRYPTO_get_mem_functions(&m, &r, &f);
    return m == CRYPTO_malloc;
}

}  // namespace

const ProviderCipher* provider_cipher(const char* algorithm) {
    static std::mutex mutex;
    // Resolved once for the process and never freed; a map that is never
    // destroyed keeps them reachable (a static map's destructor at exit
    // would not free them either, and LeakSanitizer would call them leaks).
    static auto* resolved = new std::map<std::string, ProviderCipher*>;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = resolved->find(algorithm);
    if (it == resolved->end()) it = resolved->emplace(algorithm, contexts_from_malloc() ? resolve(algorithm) : nullptr).first;
    return it->second;
}

void* provider_context(const ProviderCipher& f, const uint8_t* key, size_t key_len, bool enc) {
    void* ctx = f.newctx(f.provctx);
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    // The key schedule is inside the context (one allocation): its pages
    // are locked and left out of core dumps before the key goes in.
    if (!secure_memory::protect(ctx, malloc_usable_size(ctx))) {
        f.freectx(ctx);
        throw Error(ErrorKind::Internal, "cannot protect a cipher context: " + secure_memory::error(), {},
                    "Raise the memory lock limit of the server (ulimit -l, systemd LimitMEMLOCK=).");
    }
    int ok = enc ? f.encrypt_init(ctx, key, key_len, nullptr, 0, nullptr)
                 : f.decrypt_init(ctx, key, key_len, nullptr, 0, nullptr);
    secure_memory::wipe_stack_below();
    if (ok != 1) {
        f.freectx(ctx);
        throw_openssl_error("cannot set up " + std::string(EVP_CIPHER_get0_name(f.cipher)));
    }
    return ctx;
}

namespace {

const ProviderCipher* provider_functions() { return provider_cipher(kAlgorithm); }

}  // namespace

struct Context {
    const ProviderCipher* prov = nullptr;  // non-null: provider path
    void* prov_enc = nullptr;
    void* prov_dec = nullptr;
    EVP_CIPHER_CTX* evp_enc = nullptr;        // EVP path
    EVP_CIPHER_CTX* evp_dec = nullptr;
};

namespace {

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
    const ProviderCipher* f = use_provider ? provider_functions() : nullptr;
    if (use_provider && !f)
        throw Error(ErrorKind::Internal, "OpenSSL's provider functions for AES-256-XTS are not available");
    Context* c = new Context;
    try {
        if (f) {
            c->prov_enc = provider_context(*f, key, kKeyBytes, true);
            c->prov_dec = provider_context(*f, key, kKeyBytes, false);
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
        const ProviderCipher& f = *c->prov;
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
