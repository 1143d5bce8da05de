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

namespace cmk {
namespace xts_openssl {

struct Context;

bool provider_available();
// Key schedules for both directions; throws cmk::Error.
Context* create(const uint8_t key[XtsCipher::kKeyBytes], bool use_provider);
void destroy(Context* ctx) noexcept;
bool crypt(Context* ctx, bool encrypt, const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[XtsCipher::kTweakBytes]) noexcept;

}  // namespace xts_openssl
}  // namespace cmk
