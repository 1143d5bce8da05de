// ClientSecretCredential: an application signs in to Microsoft Entra ID with
// a client secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET),
// the OAuth 2.0 client credentials grant's first case.
#pragma once
#include "core_guard.h"

#include "azure/token_credential.h"
#include "azure/token_request.h"

#include <string>
#include <vector>

namespace cmk::azure {

class ClientSecretCredential : public TokenCredential {
public:
    ClientSecretCredential(std::string tenant_id, std::string client_id, std::string client_secret, CredentialOptions options);
    ~ClientSecretCredential() override;
    std::string name() const override { return "ClientSecretCredential"; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;

private:
    std::string tenant_id_, client_id_, client_secret_;
    CredentialOptions options_;
    TokenCache cache_;
};

}  // namespace cmk::azure
