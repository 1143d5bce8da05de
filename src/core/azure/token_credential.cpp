#include "azure/token_credential.h"

#include "azure/encoding.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::optional<int64_t> as_seconds(const json& v) {
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float()) return static_cast<int64_t>(v.get<double>());
    if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        if (s.empty() || s.size() > 18) return std::nullopt;
        for (char c : s)
            if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
        return std::stoll(s);
    }
    return std::nullopt;
}

std::string first_line(const std::string& s, size_t max = 300) {
    auto end = s.find_first_of("\r\n");
    std::string out = s.substr(0, end);
    if (out.size() > max) out = out.substr(0, max) + "...";
    return out;
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

AccessToken make_access_token(std::string token, std::chrono::seconds expires_in, SystemClock::time_point now) {
    using namespace std::chrono;
    AccessToken t;
    t.token = std::move(token);
    if (expires_in.count() < 0) expires_in = seconds(0);
    t.expires_on = now + expires_in;
    seconds margin = minutes(5);
    if (expires_in < minutes(10)) margin = expires_in / 2;
    t.refresh_after = t.expires_on - margin;
    return t;
}

AccessToken parse_token_response(std::string_view body, SystemClock::time_point now) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw Error(ErrorKind::Protocol, "the token endpoint's answer is not a JSON object");
    auto at = j.find("access_token");
    if (at == j.end() || !at->is_string() || at->get_ref<const std::string&>().empty())
        throw Error(ErrorKind::Protocol, "the token endpoint's answer has no access_token");
    std::string token = at->get<std::string>();
    auto in = j.find("expires_in");
    if (in != j.end()) {
        if (auto s = as_seconds(*in)) return make_access_token(std::move(token), std::chrono::seconds(*s), now);
    }
    auto on = j.find("expires_on");
    if (on != j.end()) {
        if (auto s = as_seconds(*on)) {
            int64_t left = *s - static_cast<int64_t>(SystemClock::to_time_t(now));
            return make_access_token(std::move(token), std::chrono::seconds(left), now);
        }
    }
    wipe(token);
    throw Error(ErrorKind::Protocol, "the token endpoint's answer has neither a valid expires_in nor expires_on");
}

AccessToken TokenCache::get(const std::string& key, bool force_refresh, const std::function<AccessToken()>& fetch,
                            bool* fetched) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fetched) *fetched = false;
    auto it = entries_.find(key);
    if (it != entries_.end() && !force_refresh && SystemClock::now() < it->second.refresh_after) return it->second;
    AccessToken t = fetch();
    if (fetched) *fetched = true;
    if (it != entries_.end()) wipe(it->second.token);
    entries_[key] = t;
    return t;
}

void TokenCache::collect(std::vector<std::string>& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& e : entries_) out.push_back(e.second.token);
}

std::vector<std::string> split_tenant_list(const std::string& text) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text + ";") {
        if (c == ';' || c == ',') {
            size_t b = cur.find_first_not_of(" \t"), e = cur.find_last_not_of(" \t");
            if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
            cur.clear();
        } else {
            cur += c;
        }
    }
    return out;
}

std::string resolve_tenant(const std::string& configured, const std::string& requested,
                           const std::vector<std::string>& additionally_allowed, const std::string& credential_name) {
    if (requested.empty() || lower(requested) == lower(configured)) return configured;
    for (const auto& t : additionally_allowed)
        if (t == "*" || lower(t) == lower(requested)) return requested;
    throw Error(ErrorKind::KeyUnavailable,
                "the key vault belongs to tenant " + requested + ", but " + credential_name + " is configured for tenant " +
                    configured + " (AZURE_TENANT_ID)",
                "Key Vault accepts only tokens of its own tenant.",
                "Set AZURE_TENANT_ID to " + requested +
                    " (the application must exist in that tenant), or add it to AZURE_ADDITIONALLY_ALLOWED_TENANTS "
                    "for a multi-tenant application.");
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
