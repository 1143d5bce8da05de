// EnvironmentCredential: as azure-identity's, the credential the AZURE_*
// variables describe: a client secret when AZURE_TENANT_ID, AZURE_CLIENT_ID
// and AZURE_CLIENT_SECRET are set, else a client certificate when
// AZURE_CLIENT_CERTIFICATE_PATH is; otherwise not configured.
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/pipeline.h"
#include "azure/token_credential.h"

#include <memory>
#include <string>
#include <vector>

namespace cmk::azure {

class EnvironmentCredential : public TokenCredential {
public:
    EnvironmentCredential(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline);
    std::string name() const override { return "EnvironmentCredential"; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;
    // The credential it stands for (ClientSecretCredential, ...), or null.
    const TokenCredential* selected() const { return inner_.get(); }

private:
    std::unique_ptr<TokenCredential> inner_;
    std::string unavailable_reason_;
};

}  // namespace cmk::azure
