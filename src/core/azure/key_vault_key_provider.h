// The Azure Key Vault / Managed HSM key provider: the KEK is an RSA key in
// the vault; wrap and unwrap run inside it (Key Vault REST "Keys - Wrap Key"
// and "Keys - Unwrap Key"), and cmk only ever sees the wrapped DEK.
//
//   check_key  GET  {vault}/keys/{name}/{version}?api-version=..  (newest version without one)
//   wrap       GET as above, then POST {vault}/keys/{name}/{version}/wrapkey
//   unwrap     POST {vault}/keys/{name}/{WrappedDek::kek_version}/unwrapkey
//
// The provider puts together what the files beside it do, one concern each:
//   key_bundle.h           parsing the key bundle and key-operation results
//   key_usability.h        whether a key can be used now
//   key_vault_error.h      HTTP status and service error -> Error
//   redaction.h            no secret or token in any message
//   challenge_transport.h  the challenge flow (challenge.h) with a
//                          TokenCredential chosen by ProviderSettings::auth
//                          (credentials.h), over the retry pipeline
//                          (pipeline.h), one time budget per operation.
// Every failure is an Error whose message names the cause, the HTTP status,
// the service's error code and the x-ms-request-id, and never holds a
// secret, a token, an assertion or key material.
#pragma once
#include "core_guard.h"

#include "azure/challenge_transport.h"
#include "azure/credentials.h"
#include "azure/key_vault_error.h"
#include "key_provider.h"

#include <memory>
#include <string>

namespace cmk::azure {

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
    KeyProperties get_key(const std::string& version, const Budget& budget, std::string* request_id = nullptr);
    // check_key_usable, naming the GET request whose answer showed the problem.
    void check_usable(const KeyProperties& key, const std::string& request_id) const;
    [[noreturn]] void rethrow_redacted(const Error& e) const;

    KeyUrl url_;
    ProviderSettings settings_;
    std::shared_ptr<Pipeline> pipeline_;
    std::shared_ptr<TokenCredential> credential_;
    std::unique_ptr<ChallengeTransport> transport_;
};

std::unique_ptr<KeyProvider> make_key_vault_key_provider(const KeyUrl& url, const ProviderSettings& settings);

}  // namespace cmk::azure
