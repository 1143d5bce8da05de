// AES-256-XTS through libgcrypt (one of XtsCipher's backends, xts_cipher.h).
// libgcrypt 1.9+ has a VAES/AVX2 XTS (Debian 12 ships 1.10): about 1.1 µs
// per 8 kB page where OpenSSL 3.0's AES-NI XTS takes 1.7 µs on the same
// CPU, and setting the tweak costs no more than a copy.
#pragma once
#include "core_guard.h"
#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>

namespace cmk {
namespace xts_libgcrypt {

struct Context;

// libgcrypt is at least 1.9 and gave OpenSSL's answers on the load-time
// self-check (whole pages and ciphertext stealing).
bool available();
Context* create(const uint8_t key[XtsCipher::kKeyBytes]);  // throws cmk::Error
void destroy(Context* ctx) noexcept;
bool crypt(Context* ctx, bool encrypt, const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[XtsCipher::kTweakBytes]) noexcept;

}  // namespace xts_libgcrypt
}  // namespace cmk
