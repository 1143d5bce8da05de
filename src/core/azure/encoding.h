// Small encodings the Azure REST protocols need: base64url without padding
// (RFC 7515 section 2, as Key Vault's JSON Web Key and key-operation bodies
// use it), form encoding (application/x-www-form-urlencoded, RFC 6749
// section 4.4 token requests), and time formatting for messages.
#pragma once
#include "core_guard.h"

#include "secure_bytes.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cmk::azure {

std::string base64url_encode(const uint8_t* data, size_t len);
// The same into locked memory, for key material (a DEK to wrap).
SecureString base64url_encode_secure(const uint8_t* data, size_t len);
inline std::string base64url_encode(const std::string& s) {
    return base64url_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
// Accepts base64url with or without padding (and, leniently, the standard
// alphabet's '+' and '/'); nullopt when the text is not base64.
std::optional<SecureBytes> base64url_decode(std::string_view text);

// Percent-encoding for form bodies and query strings: everything but
// unreserved characters (RFC 3986 section 2.3).
std::string url_encode(const std::string& s);

// RFC 4122 version 4 UUID from OpenSSL's random generator.
std::string random_uuid();

// 2024-05-01T12:00:00Z
std::string format_unix_time(int64_t unix_seconds);

// Overwrites a string's characters (a body that held a DEK or a token).
void wipe(std::string& s);
void wipe(SecureString& s);

}  // namespace cmk::azure
