// The Azure Key Vault / Managed HSM key provider: the KEK is an RSA key in
// the vault; wrap and unwrap run inside it (Key Vault REST "Keys - Wrap Key"
// and "Keys - Unwrap Key"), and cmk only ever sees the wrapped DEK.
//
//   check_key  GET  {vault}/keys/{name}/{version}?api-version=..  (newest version without one)
//   wrap       GET as above, then POST {vault}/keys/{name}/{version}/wrapkey
//   unwrap     POST {vault}/keys/{name}/{WrappedDek::kek_version}/unwrapkey
//
// Authentication follows azure-security-keyvault's challenge flow (see
// challenge.h) with a TokenCredential chosen by ProviderSettings::auth.
// Requests go through the retry pipeline (pipeline.h), one time budget per
// operation. Every failure is an Error whose message names the cause, the
// HTTP status, the service's error code and the x-ms-request-id, and never
// holds a secret, a token, an assertion or key material.
#pragma once
#include "core_guard.h"

#include "azure/credentials.h"
#include "key_provider.h"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace cmk::azure {

// The Key Vault operations cmk uses, with the key permission each needs.
enum class KeyVaultOp { Get, WrapKey, UnwrapKey };
const char* key_vault_op_name(KeyVaultOp op);  // "get", "wrapKey", "unwrapKey"

// Parses a KeyBundle (JSON Web Key + attributes, REST "Keys - Get Key"
// response) into KeyProperties; `base` is the key URL without version, and
// the version is taken from key.kid. Throws Error(Protocol) when a required
// field is missing or malformed.
KeyProperties parse_key_bundle(std::string_view body, const std::string& base);

// The string value of the member `name` of the JSON object in body, copied
// into locked memory; *redacted is body with that value's characters
// replaced by kSecretPlaceholder, for the JSON parser, whose buffers are
// ordinary heap (the unwrap answer's value is the DEK). nullopt if the
// object has no such member, has it twice, or it is not a plain string (an
// escape would need a parser's buffers; Key Vault's base64url needs none),
// or the scan cannot follow the text: the parser then says what is wrong.
constexpr char kSecretPlaceholder = 'A';
std::optional<SecureString> take_string_member(const SecureString& body, const char* name, SecureString* redacted);

// Checks that the key can wrap and unwrap now: kty RSA or RSA-HSM, 2048, 3072
// or 4096 bits, enabled, nbf <= now < exp, key_ops allowing wrapKey and
// unwrapKey. Throws Error(KeyUnavailable) naming the first unmet condition.
void check_key_usable(const KeyProperties& key, int64_t now_unix);

// The Error of a failed Key Vault request (status other than 2xx).
[[noreturn]] void throw_key_vault_error(const HttpResponse& response, int attempts, KeyVaultOp op, const std::string& key_id,
                                        const std::string& who);

// Replaces every occurrence of each secret (8 characters or more) by "[REDACTED]".
std::string redact(std::string text, const std::vector<std::string>& secrets);

class KeyVaultKeyProvider : public KeyProvider {
public:
    // Throws Error(Config) for an unusable URL, algorithm or credential setup.
    KeyVaultKeyProvider(const KeyUrl& url, const ProviderSettings& settings);
    // For tests: a given credential and pipeline.
    KeyVaultKeyProvider(const KeyUrl& url, const ProviderSettings& settings, std::shared_ptr<TokenCredential> credential,
                        std::shared_ptr<Pipeline> pipeline);

    std::string name() const override { return "azure-key-vault"; }
    KeyProperties check_key() override;
    WrappedDek wrap(const SecureBytes& dek) override;
    SecureBytes unwrap(const WrappedDek& wrapped) override;

    const TokenCredential& credential() const { return *credential_; }

private:
    struct Authority {
        std::string tenant;
        std::string scope;
    };

    KeyProperties get_key(const std::string& version, const Budget& budget, std::string* request_id = nullptr);
    // check_key_usable, naming the GET request whose answer showed the problem.
    void check_usable(const KeyProperties& key, const std::string& request_id) const;
    // Sends one Key Vault request with the challenge flow; returns the final
    // 2xx response or throws the mapped Error.
    HttpResponse send(const std::string& method, const std::string& path, const SecureString& body, KeyVaultOp op,
                      const std::string& key_id, const Budget& budget);
    std::string url_for(const std::string& path) const;
    [[noreturn]] void rethrow_redacted(const Error& e) const;

    KeyUrl url_;
    ProviderSettings settings_;
    std::shared_ptr<Pipeline> pipeline_;
    std::shared_ptr<TokenCredential> credential_;
    std::string vault_host_;  // without port, lower case
    std::mutex mutex_;
    std::optional<Authority> authority_;  // learnt from the vault's challenge
};

std::unique_ptr<KeyProvider> make_key_vault_key_provider(const KeyUrl& url, const ProviderSettings& settings);

}  // namespace cmk::azure
