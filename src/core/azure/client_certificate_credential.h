// ClientCertificateCredential: an application signs in to Microsoft Entra ID
// with a certificate (AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_CERTIFICATE_PATH: PEM with the certificate and its RSA key,
// AZURE_CLIENT_CERTIFICATE_PASSWORD), sending a signed JWT client assertion
// (client_assertion.h) instead of a secret.
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/client_assertion.h"
#include "azure/token_credential.h"
#include "azure/token_request.h"

#include <memory>
#include <string>
#include <vector>

namespace cmk::azure {

class ClientCertificateCredential : public TokenCredential {
public:
    ClientCertificateCredential(std::string tenant_id, std::string client_id, CertificateSigner signer,
                                CredentialOptions options);
    std::string name() const override { return "ClientCertificateCredential"; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;

private:
    std::string tenant_id_, client_id_;
    CertificateSigner signer_;
    CredentialOptions options_;
    TokenCache cache_;
};

// One from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH
// and AZURE_CLIENT_CERTIFICATE_PASSWORD (throws Error(Config) for an
// unreadable certificate).
std::unique_ptr<ClientCertificateCredential> make_client_certificate_credential(const AzureEnvironment& env,
                                                                                std::shared_ptr<Pipeline> pipeline);

}  // namespace cmk::azure
