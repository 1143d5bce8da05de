// ClientSecretCredential (client_secret_credential.h): POST
// /{tenant}/oauth2/v2.0/token with grant_type=client_credentials and the
// client secret in the form body.
#include "azure/client_secret_credential.h"

#include "azure/encoding.h"

namespace cmk::azure {

ClientSecretCredential::ClientSecretCredential(std::string tenant_id, std::string client_id, std::string client_secret,
                                               CredentialOptions options)
    : tenant_id_(std::move(tenant_id)),
      client_id_(std::move(client_id)),
      client_secret_(std::move(client_secret)),
      options_(std::move(options)) {}

ClientSecretCredential::~ClientSecretCredential() { wipe(client_secret_); }

std::string ClientSecretCredential::describe() const {
    return "application " + client_id_ + " in tenant " + tenant_id_;
}

void ClientSecretCredential::collect_sensitive(std::vector<std::string>& out) const {
    out.push_back(client_secret_);
    cache_.collect(out);
}

AccessToken ClientSecretCredential::get_token(const TokenRequestContext& context) {
    return cached_entra_token(cache_, options_, tenant_id_, name(), context, [&](const std::string& tenant, const std::string& scope) {
        std::string body = "grant_type=client_credentials&client_id=" + url_encode(client_id_) + "&scope=" + url_encode(scope) +
                           "&client_secret=" + url_encode(client_secret_);
        AccessToken tok =
            request_entra_token(*options_.pipeline, options_.authority_host, tenant, body, context.budget, name(), describe());
        wipe(body);
        return tok;
    });
}

}  // namespace cmk::azure
