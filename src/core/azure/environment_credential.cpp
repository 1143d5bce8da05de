// EnvironmentCredential (environment_credential.h).
#include "azure/environment_credential.h"

#include "azure/client_certificate_credential.h"
#include "azure/client_secret_credential.h"

namespace cmk::azure {

EnvironmentCredential::EnvironmentCredential(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline) {
    bool ids = env.has("AZURE_TENANT_ID") && env.has("AZURE_CLIENT_ID");
    if (ids && env.has("AZURE_CLIENT_SECRET")) {
        inner_ = std::make_unique<ClientSecretCredential>(env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
                                                          env.get("AZURE_CLIENT_SECRET"),
                                                          CredentialOptions::from_environment(env, pipeline));
    } else if (ids && env.has("AZURE_CLIENT_CERTIFICATE_PATH")) {
        inner_ = make_client_certificate_credential(env, pipeline);
    } else {
        std::string missing = env.missing({"AZURE_TENANT_ID", "AZURE_CLIENT_ID"});
        if (ids) missing = "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH";
        unavailable_reason_ = "environment variables are not fully configured (" + missing + " unset)";
    }
}

AccessToken EnvironmentCredential::get_token(const TokenRequestContext& context) {
    if (!inner_) throw CredentialUnavailable(name() + ": " + unavailable_reason_);
    return inner_->get_token(context);
}

std::string EnvironmentCredential::describe() const {
    return inner_ ? inner_->describe() : name() + " (not configured)";
}

void EnvironmentCredential::collect_sensitive(std::vector<std::string>& out) const {
    if (inner_) inner_->collect_sensitive(out);
}

}  // namespace cmk::azure
