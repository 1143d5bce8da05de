// AES-256-XTS through OpenSSL (one of XtsCipher's backends, xts_cipher.h).
// The provider path calls the cipher implementation that EVP fetched
// through OpenSSL's public provider interface (OSSL_PROVIDER_query_operation):
// the same code as EVP, without OpenSSL 3.0's per-call EVP_CipherInit_ex
// work (it asks the provider for the IV length through OSSL_PARAM on every
// call, 7% of a page). The EVP path is plain EVP, for when the provider's
// functions cannot be found.
#pragma once
#include "core_guard.h"
#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>

#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

namespace cmk {
namespace xts_openssl {

// The functions of the provider that implements a cipher for EVP (the
// default provider, or the FIPS provider when OpenSSL is configured so),
// called directly.
struct ProviderCipher {
    EVP_CIPHER* cipher = nullptr;
    void* provctx = nullptr;
    OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
    OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
    OSSL_FUNC_cipher_encrypt_init_fn* encrypt_init = nullptr;
    OSSL_FUNC_cipher_decrypt_init_fn* decrypt_init = nullptr;
    OSSL_FUNC_cipher_cipher_fn* run = nullptr;
};

// Looked up once per process and algorithm ("AES-256-XTS", "AES-256-ECB");
// nullptr if anything is missing.
const ProviderCipher* provider_cipher(const char* algorithm);
// A context with the key set, its memory locked and excluded from core
// dumps (secure_memory::protect); free with f.freectx, which wipes it.
// Throws cmk::Error.
void* provider_context(const ProviderCipher& f, const uint8_t* key, size_t key_len, bool encrypt);

struct Context;

bool provider_available();
// Key schedules for both directions; throws cmk::Error.
Context* create(const uint8_t key[XtsCipher::kKeyBytes], bool use_provider);
void destroy(Context* ctx) noexcept;
bool crypt(Context* ctx, bool encrypt, const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[XtsCipher::kTweakBytes]) noexcept;

}  // namespace xts_openssl
}  // namespace cmk
