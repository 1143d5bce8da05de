// ClientSecretCredential, ClientCertificateCredential and
// WorkloadIdentityCredential: OAuth 2.0 client-credentials grants against
// Microsoft Entra ID's v2.0 token endpoint (POST /{tenant}/oauth2/v2.0/token,
// form body; Microsoft identity platform "OAuth 2.0 client credentials flow",
// first case with a shared secret, second case with a certificate or a
// federated credential as client_assertion).
#include "azure/credentials.h"

#include "azure/encoding.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace cmk::azure {

namespace {

const char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::string join_scopes(const std::vector<std::string>& scopes) {
    std::string s;
    for (const auto& x : scopes) s += (s.empty() ? "" : " ") + x;
    return s;
}

void log_new_token(const Pipeline& p, const std::string& cred, const std::string& scope, const std::string& tenant,
                   const AccessToken& t) {
    using namespace std::chrono;
    auto now = SystemClock::now();
    long long valid = duration_cast<seconds>(t.expires_on - now).count();
    long long refresh = duration_cast<seconds>(t.refresh_after - now).count();
    p.log("cmk: " + cred + ": acquired an access token for " + scope + (tenant.empty() ? "" : " in tenant " + tenant) +
          ", valid for " + std::to_string(valid) + " s, to be refreshed in " + std::to_string(refresh) + " s");
}

// The client credentials grant with a JWT client assertion (a certificate's
// signature, or a federated token); the assertion and the body are wiped.
AccessToken request_with_assertion(const CredentialOptions& options, const std::string& tenant,
                                   const std::string& client_id, const std::string& scope, std::string& assertion,
                                   const Budget& budget, const std::string& who, const std::string& describe) {
    std::string body = "grant_type=client_credentials&client_id=" + url_encode(client_id) + "&scope=" + url_encode(scope) +
                       "&client_assertion_type=" + url_encode(kJwtBearer) + "&client_assertion=" + url_encode(assertion);
    wipe(assertion);
    AccessToken tok = request_entra_token(*options.pipeline, options.authority_host, tenant, body, budget, who, describe);
    wipe(body);
    return tok;
}

}  // namespace

CredentialOptions CredentialOptions::from_environment(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline) {
    CredentialOptions o;
    o.pipeline = std::move(pipeline);
    o.authority_host = authority_host_from(env.get("AZURE_AUTHORITY_HOST"));
    o.additionally_allowed_tenants = split_tenant_list(env.get("AZURE_ADDITIONALLY_ALLOWED_TENANTS"));
    return o;
}

// ---- ClientSecretCredential ----

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
    std::string tenant = resolve_tenant(tenant_id_, context.tenant_id, options_.additionally_allowed_tenants, name());
    std::string scope = join_scopes(context.scopes);
    bool fetched = false;
    AccessToken t = cache_.get(
        tenant + "|" + scope, context.force_refresh,
        [&] {
            std::string body = "grant_type=client_credentials&client_id=" + url_encode(client_id_) +
                               "&scope=" + url_encode(scope) + "&client_secret=" + url_encode(client_secret_);
            AccessToken tok = request_entra_token(*options_.pipeline, options_.authority_host, tenant, body, context.budget,
                                                  name(), describe());
            wipe(body);
            return tok;
        },
        &fetched);
    if (fetched) log_new_token(*options_.pipeline, name(), scope, tenant, t);
    return t;
}

// ---- ClientCertificateCredential ----

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
    std::string tenant = resolve_tenant(tenant_id_, context.tenant_id, options_.additionally_allowed_tenants, name());
    std::string scope = join_scopes(context.scopes);
    bool fetched = false;
    AccessToken t = cache_.get(
        tenant + "|" + scope, context.force_refresh,
        [&] {
            // The assertion's audience is the token endpoint itself.
            std::string assertion = signer_.make_assertion(token_endpoint(options_.authority_host, tenant), client_id_,
                                                           static_cast<int64_t>(std::time(nullptr)));
            return request_with_assertion(options_, tenant, client_id_, scope, assertion, context.budget, name(),
                                          describe());
        },
        &fetched);
    if (fetched) log_new_token(*options_.pipeline, name(), scope, tenant, t);
    return t;
}

// ---- WorkloadIdentityCredential ----

WorkloadIdentityCredential::WorkloadIdentityCredential(std::string tenant_id, std::string client_id, std::string token_file,
                                                       CredentialOptions options)
    : tenant_id_(std::move(tenant_id)),
      client_id_(std::move(client_id)),
      token_file_(std::move(token_file)),
      options_(std::move(options)) {}

std::string WorkloadIdentityCredential::describe() const {
    return "workload identity " + client_id_ + " in tenant " + tenant_id_;
}

void WorkloadIdentityCredential::collect_sensitive(std::vector<std::string>& out) const {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!last_assertion_.empty()) out.push_back(last_assertion_);
    }
    cache_.collect(out);
}

AccessToken WorkloadIdentityCredential::get_token(const TokenRequestContext& context) {
    std::string tenant = resolve_tenant(tenant_id_, context.tenant_id, options_.additionally_allowed_tenants, name());
    std::string scope = join_scopes(context.scopes);
    bool fetched = false;
    AccessToken t = cache_.get(
        tenant + "|" + scope, context.force_refresh,
        [&] {
            // The kubelet rotates the projected token: read it for every request.
            std::ifstream in(token_file_, std::ios::binary);
            if (!in) {
                int e = errno;
                throw Error(ErrorKind::Config, name() + ": cannot read the federated token file \"" + token_file_ +
                                                   "\" (AZURE_FEDERATED_TOKEN_FILE): " + std::strerror(e));
            }
            std::stringstream ss;
            ss << in.rdbuf();
            std::string assertion = ss.str();
            while (!assertion.empty() && (assertion.back() == '\n' || assertion.back() == '\r' || assertion.back() == ' '))
                assertion.pop_back();
            if (assertion.empty())
                throw Error(ErrorKind::Config, name() + ": the federated token file \"" + token_file_ + "\" is empty");
            {
                std::lock_guard<std::mutex> lock(mutex_);
                wipe(last_assertion_);
                last_assertion_ = assertion;
            }
            return request_with_assertion(options_, tenant, client_id_, scope, assertion, context.budget, name(),
                                          describe());
        },
        &fetched);
    if (fetched) log_new_token(*options_.pipeline, name(), scope, tenant, t);
    return t;
}

}  // namespace cmk::azure
