// The credentials, one class per way of signing in, as in azure-identity:
//
//   ClientSecretCredential       AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
//   ClientCertificateCredential  AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_PATH
//                                (PEM: certificate + RSA key), AZURE_CLIENT_CERTIFICATE_PASSWORD
//   WorkloadIdentityCredential   AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE
//   ManagedIdentityCredential    IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service, Container
//                                Apps), else IMDS at 169.254.169.254 or
//                                AZURE_POD_IDENTITY_AUTHORITY_HOST; AZURE_CLIENT_ID selects a
//                                user-assigned identity
//   EnvironmentCredential        client secret if set, else client certificate
//   DefaultAzureCredential       Environment -> WorkloadIdentity -> ManagedIdentity
//
// AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com) and
// AZURE_ADDITIONALLY_ALLOWED_TENANTS apply to the Entra ID credentials.
// Each credential caches its tokens per tenant and scope (token_credential.h).
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/client_assertion.h"
#include "azure/token_credential.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace cmk::azure {

struct CredentialOptions {
    std::shared_ptr<Pipeline> pipeline;
    std::string authority_host = "https://login.microsoftonline.com";
    std::vector<std::string> additionally_allowed_tenants;

    static CredentialOptions from_environment(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline);
};

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

// A credential that could not be set up; every get_token throws
// CredentialUnavailable with the reason. Used inside the default chain.
class UnavailableCredential : public TokenCredential {
public:
    UnavailableCredential(std::string name, std::string reason) : name_(std::move(name)), reason_(std::move(reason)) {}
    std::string name() const override { return name_; }
    AccessToken get_token(const TokenRequestContext&) override { throw CredentialUnavailable(name_ + ": " + reason_); }
    std::string describe() const override { return name_ + " (not configured)"; }
    void collect_sensitive(std::vector<std::string>&) const override {}

private:
    std::string name_, reason_;
};

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

// Tries its credentials in order: one that is not configured here
// (CredentialUnavailable) passes to the next; the first that answers is used
// from then on; any other failure (a rejected secret, a denied identity) is
// reported at once rather than hidden behind the next credential's
// "not configured", as azure-identity for .NET and Python do.
class ChainedTokenCredential : public TokenCredential {
public:
    ChainedTokenCredential(std::string name, std::vector<std::shared_ptr<TokenCredential>> sources, Pipeline* log_to = nullptr);
    std::string name() const override { return name_; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;
    // The credential that answered, or null before the first success.
    const TokenCredential* selected() const;

private:
    std::string name_;
    std::vector<std::shared_ptr<TokenCredential>> sources_;
    Pipeline* log_to_;
    mutable std::mutex mutex_;
    int selected_ = -1;
};

// Environment -> WorkloadIdentity -> ManagedIdentity (azure-identity's
// DefaultAzureCredential without the developer-tool credentials).
std::shared_ptr<ChainedTokenCredential> make_default_azure_credential(const AzureEnvironment& env,
                                                                      std::shared_ptr<Pipeline> pipeline);

// ProviderSettings::auth: "default", "client-secret", "client-certificate",
// "managed-identity", "workload-identity". Throws Error(Config) naming the
// missing variables of an explicitly chosen credential.
std::shared_ptr<TokenCredential> make_credential(const std::string& auth, const AzureEnvironment& env,
                                                 std::shared_ptr<Pipeline> pipeline);

}  // namespace cmk::azure
