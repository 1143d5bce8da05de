// The token-request code every credential shares (token_request.h).
#include "azure/token_request.h"

#include "azure/encoding.h"
#include "text.h"

#include <cctype>

#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

const char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::string join_scopes(const std::vector<std::string>& scopes) {
    std::string s;
    for (const auto& x : scopes) s += (s.empty() ? "" : " ") + x;
    return s;
}

// AADSTS codes an operator is likely to meet, with what to do about them.
// https://learn.microsoft.com/entra/identity-platform/reference-error-codes
struct AadstsAdvice {
    int code;
    const char* meaning;
    const char* hint;
};

const AadstsAdvice kAdvice[] = {
    {7000215, "invalid client secret", "Check AZURE_CLIENT_SECRET: use the secret's value, not its ID."},
    {7000222, "the client secret has expired", "Create a new client secret for the application and set AZURE_CLIENT_SECRET."},
    {700016, "the application (client) was not found in the tenant",
     "Check AZURE_CLIENT_ID and AZURE_TENANT_ID: the application must be registered in (or consented to by) that tenant."},
    {90002, "the tenant was not found", "Check AZURE_TENANT_ID (and AZURE_AUTHORITY_HOST for sovereign clouds)."},
    {900023, "the tenant identifier is invalid", "AZURE_TENANT_ID must be a tenant GUID or verified domain name."},
    {90023, "the tenant identifier is invalid", "AZURE_TENANT_ID must be a tenant GUID or verified domain name."},
    {700027, "the client assertion's signature does not match any certificate of the application",
     "Upload the certificate of AZURE_CLIENT_CERTIFICATE_PATH to the application's \"Certificates & secrets\"."},
    {700024, "the client assertion is not within its valid time range", "Check the server's clock."},
    {7000274, "the client assertion is invalid", "Check the certificate in AZURE_CLIENT_CERTIFICATE_PATH."},
    {70021, "no federated identity credential of the application matches the token",
     "Add a federated credential for this service account's issuer and subject to the application or managed identity."},
    {700211, "no federated identity credential matches the token's issuer",
     "Add a federated credential with this cluster's OIDC issuer to the application or managed identity."},
    {700212, "no federated identity credential matches the token's audience",
     "Federated credentials expect the audience api://AzureADTokenExchange."},
    {700213, "no federated identity credential matches the token's subject",
     "Add a federated credential for this service account's subject (system:serviceaccount:<namespace>:<name>)."},
    {7000112, "the application is disabled", "Enable the application's service principal in the tenant."},
    {500011, "the resource principal was not found in the tenant",
     "Key Vault is not available in this tenant; check AZURE_TENANT_ID and AZURE_AUTHORITY_HOST."},
    {70011, "the requested scope is invalid", "This is a cmk bug or a wrong vault URL; check cmk.key_url."},
    {50034, "the user account does not exist in the directory", "Check AZURE_CLIENT_ID."},
};

}  // namespace

CredentialOptions CredentialOptions::from_environment(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline) {
    CredentialOptions o;
    o.pipeline = std::move(pipeline);
    o.authority_host = authority_host_from(env.get("AZURE_AUTHORITY_HOST"));
    o.additionally_allowed_tenants = split_tenant_list(env.get("AZURE_ADDITIONALLY_ALLOWED_TENANTS"));
    return o;
}

AccessToken cached_entra_token(TokenCache& cache, const CredentialOptions& options, const std::string& configured_tenant,
                               const std::string& credential_name, const TokenRequestContext& context,
                               const std::function<AccessToken(const std::string& tenant, const std::string& scope)>& request) {
    std::string tenant = resolve_tenant(configured_tenant, context.tenant_id, options.additionally_allowed_tenants, credential_name);
    std::string scope = join_scopes(context.scopes);
    bool fetched = false;
    AccessToken t = cache.get(tenant + "|" + scope, context.force_refresh, [&] { return request(tenant, scope); }, &fetched);
    if (fetched) {
        using namespace std::chrono;
        auto now = SystemClock::now();
        long long valid = duration_cast<seconds>(t.expires_on - now).count();
        long long refresh = duration_cast<seconds>(t.refresh_after - now).count();
        options.pipeline->log("cmk: " + credential_name + ": acquired an access token for " + scope +
                              (tenant.empty() ? "" : " in tenant " + tenant) + ", valid for " + std::to_string(valid) +
                              " s, to be refreshed in " + std::to_string(refresh) + " s");
    }
    return t;
}

AccessToken request_with_assertion(const CredentialOptions& options, const std::string& tenant, const std::string& client_id,
                                   const std::string& scope, std::string& assertion, const Budget& budget,
                                   const std::string& credential_name, const std::string& who) {
    std::string body = "grant_type=client_credentials&client_id=" + url_encode(client_id) + "&scope=" + url_encode(scope) +
                       "&client_assertion_type=" + url_encode(kJwtBearer) + "&client_assertion=" + url_encode(assertion);
    wipe(assertion);
    AccessToken tok = request_entra_token(*options.pipeline, options.authority_host, tenant, body, budget, credential_name, who);
    wipe(body);
    return tok;
}

std::string token_endpoint(const std::string& authority_host, const std::string& tenant) {
    return authority_host + "/" + url_encode(tenant) + "/oauth2/v2.0/token";
}

std::string authority_host_from(const std::string& value) {
    std::string host = value.empty() ? "https://login.microsoftonline.com" : value;
    while (!host.empty() && host.back() == '/') host.pop_back();
    UrlParts p;
    try {
        p = split_url(host);
    } catch (const Error&) {
        throw Error(ErrorKind::Config, "AZURE_AUTHORITY_HOST \"" + value + "\" is not a URL",
                    {}, "Use https://login.microsoftonline.com or your cloud's authority host.");
    }
    if (p.scheme != "https" && !plain_http_allowed(p.host))
        throw Error(ErrorKind::Config, "AZURE_AUTHORITY_HOST must be an https:// URL, not \"" + value + "\"");
    return host;
}

void throw_token_error(const HttpResponse& response, int attempts, const std::string& credential_name,
                       const std::string& who, const std::string& endpoint, const std::string& service) {
    std::string request_id = response.headers.get_or("x-ms-request-id");
    json j = json::parse(response.body, nullptr, false);
    std::string oauth_error, description;
    int aadsts = 0;
    if (j.is_object()) {
        if (j.contains("error") && j["error"].is_string()) oauth_error = j["error"].get<std::string>();
        if (j.contains("error_description") && j["error_description"].is_string())
            description = j["error_description"].get<std::string>();
        if (j.contains("error_codes") && j["error_codes"].is_array() && !j["error_codes"].empty() &&
            j["error_codes"][0].is_number_integer())
            aadsts = j["error_codes"][0].get<int>();
        if (request_id.empty() && j.contains("trace_id") && j["trace_id"].is_string())
            request_id = j["trace_id"].get<std::string>();
        // IMDS and the identity endpoint use {"error": {"code", "message"}} at times.
        if (j.contains("error") && j["error"].is_object()) {
            const json& e = j["error"];
            if (e.contains("code") && e["code"].is_string()) oauth_error = e["code"].get<std::string>();
            if (e.contains("message") && e["message"].is_string()) description = e["message"].get<std::string>();
        }
    }
    if (aadsts == 0 && description.compare(0, 6, "AADSTS") == 0) {
        size_t i = 6;
        while (i < description.size() && std::isdigit(static_cast<unsigned char>(description[i]))) i++;
        if (i > 6 && i - 6 < 10) aadsts = std::stoi(description.substr(6, i - 6));
    }

    std::string facts = "HTTP " + std::to_string(response.status);
    if (!oauth_error.empty()) facts += ", error " + oauth_error;
    if (aadsts) facts += ", AADSTS" + std::to_string(aadsts);
    facts += ", request id " + (request_id.empty() ? std::string("none") : request_id);
    if (attempts > 1) facts += ", after " + std::to_string(attempts) + " attempts";
    std::string detail = description.empty() ? std::string() : "Service message: " + first_line(description);

    long s = response.status;
    if (s == 408 || s == 429 || s >= 500)
        throw Error(ErrorKind::Transient, credential_name + " could not get a token from " + url_for_messages(endpoint) +
                                              ": the service is " + (s == 429 ? "throttling requests" : "unavailable") +
                                              " (" + facts + ")",
                    detail);
    if (!j.is_object())
        throw Error(ErrorKind::Protocol, credential_name + " got an unexpected answer from " + url_for_messages(endpoint) +
                                             " (" + facts + ", body is not JSON)");
    for (const auto& a : kAdvice)
        if (a.code == aadsts)
            throw Error(ErrorKind::KeyUnavailable,
                        service + " refused the sign-in of " + who + " (" + credential_name + "): " + a.meaning + " (" +
                            facts + ")",
                        detail, a.hint);
    if (s == 404)
        throw Error(ErrorKind::Config, credential_name + ": the token endpoint " + url_for_messages(endpoint) +
                                           " does not exist (" + facts + ")",
                    detail, "Check AZURE_TENANT_ID and AZURE_AUTHORITY_HOST.");
    std::string what = oauth_error == "invalid_client"        ? "the client's credentials were rejected"
                       : oauth_error == "unauthorized_client" ? "the client is not authorized"
                       : oauth_error == "invalid_request"     ? "the request was refused"
                       : oauth_error == "invalid_scope"       ? "the scope was refused"
                                                              : "sign-in failed";
    throw Error(ErrorKind::KeyUnavailable,
                service + " refused the sign-in of " + who + " (" + credential_name + "): " + what + " (" + facts + ")",
                detail);
}

AccessToken request_entra_token(Pipeline& pipeline, const std::string& authority_host, const std::string& tenant,
                                const std::string& form_body, const Budget& budget, const std::string& credential_name,
                                const std::string& who) {
    HttpRequest req;
    req.method = "POST";
    req.url = token_endpoint(authority_host, tenant);
    req.headers.add("Content-Type", "application/x-www-form-urlencoded");
    req.headers.add("Accept", "application/json");
    req.body.assign(form_body.data(), form_body.size());
    req.timeout_ms = pipeline.request_timeout_ms();
    PipelineResult r;
    try {
        r = pipeline.send(req, budget);
    } catch (const Error& e) {
        wipe(req.body);
        if (e.kind() == ErrorKind::Transient)
            throw Error(ErrorKind::Transient, credential_name + " could not reach Microsoft Entra ID: " + e.what(), e.detail(),
                        "Check the network path (and https_proxy) to " + authority_host + ".");
        throw;
    }
    wipe(req.body);
    if (r.response.status != 200) throw_token_error(r.response, r.attempts, credential_name, who, req.url);
    AccessToken t = parse_token_answer(r.response, credential_name, req.url);
    wipe(r.response.body);
    return t;
}

AccessToken parse_token_answer(const HttpResponse& response, const std::string& credential_name, const std::string& endpoint) {
    try {
        return parse_token_response(response.body, SystemClock::now());
    } catch (const Error& e) {
        throw Error(e.kind(), credential_name + ": malformed answer from " + url_for_messages(endpoint) + ": " + e.what() +
                                  " (HTTP " + std::to_string(response.status) + ", request id " +
                                  response.headers.get_or("x-ms-request-id", "none") + ")");
    }
}

}  // namespace cmk::azure
