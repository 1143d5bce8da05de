// What wraps and unwraps the DEK: one interface, one class per kind of key
// (a local PEM file for development, Azure Key Vault / Managed HSM).
// The KEK never leaves its provider: the core hands it a DEK to wrap and a
// wrapped DEK to unwrap, nothing else.
#pragma once
#include "core_guard.h"

#include "key_url.h"
#include "secure_bytes.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cmk {

// A DEK as wrapped by one version of one KEK.
struct WrappedDek {
    std::string kek_base;     // key URL without version
    std::string kek_version;  // Key Vault version, or the public-key fingerprint of a file KEK
    std::string algorithm;    // RSA-OAEP-256 or RSA-OAEP
    Bytes wrapped;
};

// The KEK's properties as the provider sees them (Key Vault: GET key).
struct KeyProperties {
    std::string base;
    std::string version;
    std::string key_type;          // RSA, RSA-HSM
    int key_size_bits = 0;
    bool enabled = true;
    std::optional<int64_t> not_before;  // unix seconds
    std::optional<int64_t> expires;     // unix seconds
    std::vector<std::string> key_ops;
    // Key Vault's deletion recovery level and retention (attributes.recoveryLevel,
    // recoverableDays); none for a file key.
    std::optional<std::string> recovery_level;
    std::optional<int> recoverable_days;
};

struct ProviderSettings {
    std::string wrap_algorithm = "RSA-OAEP-256";  // or RSA-OAEP
    std::string api_version = "7.4";              // Key Vault REST api-version
    std::string auth = "default";                 // default (environment chain), client-secret,
                                                  // client-certificate, managed-identity, workload-identity
    std::string ca_file;                          // extra CA bundle for TLS verification
    int request_timeout_ms = 10000;               // one HTTP request
    int retry_total_ms = 60000;                   // all retries of one operation together
    // The AZURE_* and IDENTITY_* variables the Azure credentials read
    // (azure/azure_environment.h), as the caller took them: the server from
    // its locked copy, pg_cmk from its environment. Never read by getenv.
    std::map<std::string, SecureString> environment;
    // The server owner's key policy, cmk.allowed_key_urls (key_url.h); empty:
    // the vault, or the directory, of the key that wraps the keyring.
    std::string allowed_key_urls;
    // cmk.require_purge_protection = off (key_safety.h).
    bool allow_purgeable_key = false;
    // Operational messages (retries, token refresh); never secrets or keys.
    std::function<void(const std::string&)> log;
};

class KeyProvider {
public:
    virtual ~KeyProvider() = default;
    virtual std::string name() const = 0;  // "file", "azure-key-vault"
    // Reads the key and checks that it can wrap and unwrap now; throws
    // Error(KeyUnavailable) naming the unmet condition.
    virtual KeyProperties check_key() = 0;
    // Wraps with the configured version (the newest one if none is named).
    virtual WrappedDek wrap(const SecureBytes& dek) = 0;
    // Unwraps with the version recorded in `wrapped`.
    virtual SecureBytes unwrap(const WrappedDek& wrapped) = 0;
};

std::unique_ptr<KeyProvider> make_key_provider(const KeyUrl& url, const ProviderSettings& settings);

}  // namespace cmk
