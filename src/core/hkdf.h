// HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF.
#pragma once
#include "core_guard.h"

#include "secure_bytes.h"

#include <string>

namespace cmk {

SecureBytes hkdf_sha256(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len,
                        const uint8_t* info, size_t info_len, size_t out_len);

}  // namespace cmk
