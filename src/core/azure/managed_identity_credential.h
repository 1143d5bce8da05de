// ManagedIdentityCredential: an Azure VM, App Service or Container App signs
// in as its managed identity, through the identity endpoint
// (IDENTITY_ENDPOINT + IDENTITY_HEADER) or else the Instance Metadata Service
// (169.254.169.254, or AZURE_POD_IDENTITY_AUTHORITY_HOST); AZURE_CLIENT_ID
// selects a user-assigned identity.
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/pipeline.h"
#include "azure/token_credential.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace cmk::azure {

class ManagedIdentityCredential : public TokenCredential {
public:
    // `probe`: inside DefaultAzureCredential, a first IMDS request that cannot
    // connect means "not on Azure" (CredentialUnavailable) instead of an error,
    // and is not retried, as azure-identity's IMDS probe.
    ManagedIdentityCredential(const AzureEnvironment& env, std::string client_id, std::shared_ptr<Pipeline> pipeline,
                              bool probe = false);
    std::string name() const override { return "ManagedIdentityCredential"; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;
    bool uses_identity_endpoint() const { return app_service_; }
    const std::string& endpoint() const { return endpoint_; }

private:
    AccessToken fetch(const std::string& resource, const Budget& budget);
    std::string client_id_;
    std::shared_ptr<Pipeline> pipeline_;
    bool app_service_ = false;
    std::string endpoint_;         // IDENTITY_ENDPOINT or <IMDS>/metadata/identity/oauth2/token
    std::string identity_header_;  // IDENTITY_HEADER (a secret)
    bool probe_;
    std::atomic<bool> first_request_succeeded_{false};
    TokenCache cache_;
};

}  // namespace cmk::azure
