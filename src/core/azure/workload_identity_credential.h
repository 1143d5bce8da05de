// WorkloadIdentityCredential: a Kubernetes pod signs in to Microsoft Entra ID
// with the service-account token the kubelet projects
// (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE), sent as a
// federated client assertion.
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/token_credential.h"
#include "azure/token_request.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cmk::azure {

class WorkloadIdentityCredential : public TokenCredential {
public:
    WorkloadIdentityCredential(std::string tenant_id, std::string client_id, std::string token_file, CredentialOptions options);
    std::string name() const override { return "WorkloadIdentityCredential"; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;

private:
    std::string tenant_id_, client_id_, token_file_;
    CredentialOptions options_;
    TokenCache cache_;
    mutable std::mutex mutex_;
    std::string last_assertion_;  // the federated token last read (kept only for redaction)
};

// One from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE.
std::unique_ptr<WorkloadIdentityCredential> make_workload_identity_credential(const AzureEnvironment& env,
                                                                              std::shared_ptr<Pipeline> pipeline);

}  // namespace cmk::azure
