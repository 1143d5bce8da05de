// The local key provider (development, tests, and the embedded default): the
// KEK is an RSA private key in a PEM file, wrapping with RSA-OAEP-256 as Key
// Vault does. The "version" of such a key is the fingerprint of its public
// key, so the keyring can tell a replaced file from the key that wrapped it.
#pragma once
#include "core_guard.h"

#include "key_provider.h"

namespace cmk {

std::unique_ptr<KeyProvider> make_file_key_provider(const KeyUrl& url, const ProviderSettings& settings);

// SHA-256 over the DER SubjectPublicKeyInfo, first 16 bytes as hex.
std::string public_key_fingerprint_of_pem_file(const std::string& path);

}  // namespace cmk
