// The challenge transport of the Key Vault provider: sends one Key Vault
// request the way azure-security-keyvault's challenge-based authentication
// policy does. The first request goes without a token and without its body
// (which may hold a DEK); the vault's 401 challenge names its tenant and
// resource (challenge.h), which are kept for later requests; a token the
// vault refuses is fetched anew once. Returns the 2xx answer or throws the
// mapped Error (key_vault_error.h).
#pragma once
#include "core_guard.h"

#include "azure/key_vault_error.h"
#include "azure/pipeline.h"
#include "azure/token_credential.h"
#include "secure_bytes.h"

#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace cmk::azure {

class ChallengeTransport {
public:
    // vault_url: scheme://host[:port] of the vault; vault_host: its host
    // name without port, lower case (what the challenge's resource must match).
    ChallengeTransport(std::string vault_url, std::string vault_host, std::string api_version,
                       std::shared_ptr<TokenCredential> credential, std::shared_ptr<Pipeline> pipeline);

    // One request to {vault_url}{path}?api-version=..; `op` and `key_id` name
    // it in errors.
    HttpResponse send(const std::string& method, const std::string& path, const SecureString& body, KeyVaultOp op,
                      const std::string& key_id, const Budget& budget);

private:
    struct Authority {
        std::string tenant;
        std::string scope;
    };

    std::string vault_url_, vault_host_, api_version_;
    std::shared_ptr<TokenCredential> credential_;
    std::shared_ptr<Pipeline> pipeline_;
    std::mutex mutex_;
    std::optional<Authority> authority_;  // learnt from the vault's challenge
};

}  // namespace cmk::azure
