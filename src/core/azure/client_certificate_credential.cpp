// ClientCertificateCredential (client_certificate_credential.h): the client
// credentials grant with a client assertion signed by the certificate's key,
// whose audience is the token endpoint itself.
#include "azure/client_certificate_credential.h"

#include <ctime>

namespace cmk::azure {

ClientCertificateCredential::ClientCertificateCredential(std::string tenant_id, std::string client_id,
                                                         CertificateSigner signer, CredentialOptions options)
    : tenant_id_(std::move(tenant_id)),
      client_id_(std::move(client_id)),
      signer_(std::move(signer)),
      options_(std::move(options)) {}

std::string ClientCertificateCredential::describe() const {
    return "application " + client_id_ + " in tenant " + tenant_id_ + " (certificate " + signer_.x5t() + ")";
}

void ClientCertificateCredential::collect_sensitive(std::vector<std::string>& out) const { cache_.collect(out); }

AccessToken ClientCertificateCredential::get_token(const TokenRequestContext& context) {
    return cached_entra_token(cache_, options_, tenant_id_, name(), context, [&](const std::string& tenant, const std::string& scope) {
        std::string assertion = signer_.make_assertion(token_endpoint(options_.authority_host, tenant), client_id_,
                                                       static_cast<int64_t>(std::time(nullptr)));
        return request_with_assertion(options_, tenant, client_id_, scope, assertion, context.budget, name(), describe());
    });
}

std::unique_ptr<ClientCertificateCredential> make_client_certificate_credential(const AzureEnvironment& env,
                                                                                std::shared_ptr<Pipeline> pipeline) {
    return std::make_unique<ClientCertificateCredential>(
        env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
        CertificateSigner::from_pem_file(env.get("AZURE_CLIENT_CERTIFICATE_PATH"), env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD")),
        CredentialOptions::from_environment(env, std::move(pipeline)));
}

}  // namespace cmk::azure
