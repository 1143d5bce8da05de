// What Key Vault answers about a key, parsed: the KeyBundle of "Keys - Get
// Key" (JSON Web Key + attributes) into KeyProperties, the parts of a key
// identifier (kid), and the secret "value" of a key-operation result taken
// out of the body without passing through a JSON parser's heap buffers.
#pragma once
#include "core_guard.h"

#include "key_provider.h"
#include "secure_bytes.h"

#include <optional>
#include <string>
#include <string_view>

namespace cmk::azure {

// Parses a KeyBundle (JSON Web Key + attributes, REST "Keys - Get Key"
// response) into KeyProperties; `base` is the key URL without version, and
// the version is taken from key.kid. Throws Error(Protocol) when a required
// field is missing or malformed.
KeyProperties parse_key_bundle(std::string_view body, const std::string& base);

// The version and the name in a key identifier https://host/keys/<name>/<version>
// ("" when it has none).
std::string version_of_kid(const std::string& kid);
std::string name_of_kid(const std::string& kid);

// The string value of the member `name` of the JSON object in body, copied
// into locked memory; *redacted is body with that value's characters
// replaced by kSecretPlaceholder, for the JSON parser, whose buffers are
// ordinary heap (the unwrap answer's value is the DEK). nullopt if the
// object has no such member, has it twice, or it is not a plain string (an
// escape would need a parser's buffers; Key Vault's base64url needs none),
// or the scan cannot follow the text: the parser then says what is wrong.
constexpr char kSecretPlaceholder = 'A';
std::optional<SecureString> take_string_member(const SecureString& body, const char* name, SecureString* redacted);

}  // namespace cmk::azure
