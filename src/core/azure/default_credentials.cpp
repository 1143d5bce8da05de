// EnvironmentCredential, ChainedTokenCredential, DefaultAzureCredential and
// the choice among them by ProviderSettings::auth.
#include "azure/credentials.h"

namespace cmk::azure {

namespace {

std::string missing_list(const AzureEnvironment& env, std::initializer_list<const char*> names) {
    std::string out;
    for (const char* n : names)
        if (!env.has(n)) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
}

[[noreturn]] void throw_missing(const std::string& auth, const std::string& missing, const std::string& hint) {
    throw Error(ErrorKind::Config, "cmk.auth = '" + auth + "' needs " + missing + " in the server's environment", {}, hint);
}

std::unique_ptr<TokenCredential> make_client_certificate(const AzureEnvironment& env, const CredentialOptions& options) {
    return std::make_unique<ClientCertificateCredential>(
        env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
        CertificateSigner::from_pem_file(env.get("AZURE_CLIENT_CERTIFICATE_PATH"), env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD")),
        options);
}

std::unique_ptr<TokenCredential> make_workload_identity(const AzureEnvironment& env, const CredentialOptions& options) {
    return std::make_unique<WorkloadIdentityCredential>(env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
                                                        env.get("AZURE_FEDERATED_TOKEN_FILE"), options);
}

const char kEnvHint[] =
    "Set them where the server's environment comes from (the systemd unit's Environment= or EnvironmentFile=, or "
    "/etc/postgresql/<version>/<cluster>/environment), never in postgresql.conf.";

}  // namespace

// ---- EnvironmentCredential ----
// As azure-identity's: a client secret when AZURE_TENANT_ID, AZURE_CLIENT_ID
// and AZURE_CLIENT_SECRET are set, else a client certificate when
// AZURE_CLIENT_CERTIFICATE_PATH is; otherwise not configured.

EnvironmentCredential::EnvironmentCredential(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline) {
    bool ids = env.has("AZURE_TENANT_ID") && env.has("AZURE_CLIENT_ID");
    if (ids && env.has("AZURE_CLIENT_SECRET")) {
        inner_ = std::make_unique<ClientSecretCredential>(env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
                                                          env.get("AZURE_CLIENT_SECRET"),
                                                          CredentialOptions::from_environment(env, pipeline));
    } else if (ids && env.has("AZURE_CLIENT_CERTIFICATE_PATH")) {
        inner_ = make_client_certificate(env, CredentialOptions::from_environment(env, pipeline));
    } else {
        std::string missing = missing_list(env, {"AZURE_TENANT_ID", "AZURE_CLIENT_ID"});
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

// ---- ChainedTokenCredential ----

ChainedTokenCredential::ChainedTokenCredential(std::string name, std::vector<std::shared_ptr<TokenCredential>> sources,
                                               Pipeline* log_to)
    : name_(std::move(name)), sources_(std::move(sources)), log_to_(log_to) {}

const TokenCredential* ChainedTokenCredential::selected() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return selected_ >= 0 ? sources_[static_cast<size_t>(selected_)].get() : nullptr;
}

std::string ChainedTokenCredential::describe() const {
    const TokenCredential* s = selected();
    return s ? s->describe() : name_ + " (no credential selected yet)";
}

void ChainedTokenCredential::collect_sensitive(std::vector<std::string>& out) const {
    for (const auto& s : sources_) s->collect_sensitive(out);
}

AccessToken ChainedTokenCredential::get_token(const TokenRequestContext& context) {
    int chosen;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        chosen = selected_;
    }
    if (chosen >= 0) return sources_[static_cast<size_t>(chosen)]->get_token(context);

    std::string reasons;
    for (size_t i = 0; i < sources_.size(); i++) {
        try {
            AccessToken t = sources_[i]->get_token(context);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                selected_ = static_cast<int>(i);
            }
            if (log_to_)
                log_to_->log("cmk: " + name_ + ": signed in with " + sources_[i]->name() + " as " + sources_[i]->describe());
            return t;
        } catch (const CredentialUnavailable& e) {
            reasons += std::string(reasons.empty() ? "" : "; ") + e.what();
        }
    }
    throw CredentialUnavailable(
        name_ + " found no credential configured in the server's environment: " + reasons);
}

std::shared_ptr<ChainedTokenCredential> make_default_azure_credential(const AzureEnvironment& env,
                                                                      std::shared_ptr<Pipeline> pipeline) {
    std::vector<std::shared_ptr<TokenCredential>> sources;
    // 1. EnvironmentCredential. A credential whose variables are set but
    // unusable (an unreadable certificate file) is an error, not "unavailable".
    sources.push_back(std::make_shared<EnvironmentCredential>(env, pipeline));
    // 2. WorkloadIdentityCredential.
    std::string missing = missing_list(env, {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"});
    if (missing.empty())
        sources.push_back(make_workload_identity(env, CredentialOptions::from_environment(env, pipeline)));
    else
        sources.push_back(std::make_shared<UnavailableCredential>("WorkloadIdentityCredential",
                                                                  "environment variables are not fully configured (" + missing +
                                                                      " unset)"));
    // 3. ManagedIdentityCredential (AZURE_CLIENT_ID selects a user-assigned identity), probing IMDS.
    sources.push_back(std::make_shared<ManagedIdentityCredential>(env, env.get("AZURE_CLIENT_ID"), pipeline, true));
    return std::make_shared<ChainedTokenCredential>("DefaultAzureCredential", std::move(sources), pipeline.get());
}

std::shared_ptr<TokenCredential> make_credential(const std::string& auth, const AzureEnvironment& env,
                                                 std::shared_ptr<Pipeline> pipeline) {
    if (auth.empty() || auth == "default") return make_default_azure_credential(env, pipeline);
    if (auth == "client-secret") {
        std::string missing = missing_list(env, {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"});
        if (!missing.empty()) throw_missing(auth, missing, kEnvHint);
        return std::make_shared<ClientSecretCredential>(env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
                                                        env.get("AZURE_CLIENT_SECRET"),
                                                        CredentialOptions::from_environment(env, pipeline));
    }
    if (auth == "client-certificate") {
        std::string missing = missing_list(env, {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"});
        if (!missing.empty()) throw_missing(auth, missing, kEnvHint);
        return make_client_certificate(env, CredentialOptions::from_environment(env, pipeline));
    }
    if (auth == "workload-identity") {
        std::string missing = missing_list(env, {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"});
        if (!missing.empty())
            throw_missing(auth, missing,
                          "Azure Workload Identity's webhook sets them in pods whose service account is labelled "
                          "azure.workload.identity/use: \"true\".");
        return make_workload_identity(env, CredentialOptions::from_environment(env, pipeline));
    }
    if (auth == "managed-identity")
        return std::make_shared<ManagedIdentityCredential>(env, env.get("AZURE_CLIENT_ID"), pipeline, false);
    throw Error(ErrorKind::Config, "cmk.auth = '" + auth + "' is not a known sign-in method", {},
                "Use default, client-secret, client-certificate, managed-identity or workload-identity.");
}

}  // namespace cmk::azure
