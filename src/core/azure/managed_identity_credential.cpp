// ManagedIdentityCredential (managed_identity_credential.h): the App
// Service / Container Apps identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01,
// header X-IDENTITY-HEADER), else the Instance Metadata Service
// (GET http://169.254.169.254/metadata/identity/oauth2/token,
// api-version 2018-02-01, header Metadata: true), whose address
// AZURE_POD_IDENTITY_AUTHORITY_HOST replaces as in the other SDKs.
// Both take the resource (the scope without "/.default") and, for a
// user-assigned identity, client_id. Managed identities always sign in to
// their own tenant: a vault's tenant is not passed on.
#include "azure/managed_identity_credential.h"

#include "azure/encoding.h"
#include "azure/token_request.h"
#include "text.h"

#include <nlohmann/json.hpp>

namespace cmk::azure {

namespace {

const char kImdsHost[] = "http://169.254.169.254";

std::string scope_to_resource(const std::vector<std::string>& scopes) {
    if (scopes.size() != 1)
        throw Error(ErrorKind::Internal, "ManagedIdentityCredential needs exactly one scope");
    std::string r = scopes[0];
    const std::string suffix = "/.default";
    if (r.size() >= suffix.size() && r.compare(r.size() - suffix.size(), suffix.size(), suffix) == 0)
        r = r.substr(0, r.size() - suffix.size());
    return r;
}

std::string service_message(std::string_view body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object()) return {};
    std::string m;
    if (j.contains("error_description") && j["error_description"].is_string()) m = j["error_description"].get<std::string>();
    else if (j.contains("error") && j["error"].is_object() && j["error"].contains("message") && j["error"]["message"].is_string())
        m = j["error"]["message"].get<std::string>();
    else if (j.contains("message") && j["message"].is_string())
        m = j["message"].get<std::string>();
    return first_line(m);
}

}  // namespace

ManagedIdentityCredential::ManagedIdentityCredential(const AzureEnvironment& env, std::string client_id,
                                                     std::shared_ptr<Pipeline> pipeline, bool probe)
    : client_id_(std::move(client_id)), pipeline_(std::move(pipeline)), probe_(probe) {
    std::string endpoint = env.get("IDENTITY_ENDPOINT");
    std::string header = env.get("IDENTITY_HEADER");
    if (!endpoint.empty() && !header.empty()) {
        app_service_ = true;
        try {
            split_url(endpoint);
        } catch (const Error&) {
            throw Error(ErrorKind::Config, "ManagedIdentityCredential: IDENTITY_ENDPOINT \"" + endpoint + "\" is not a URL");
        }
        endpoint_ = endpoint;
        identity_header_ = header;
    } else {
        std::string host = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        if (host.empty()) host = kImdsHost;
        while (!host.empty() && host.back() == '/') host.pop_back();
        try {
            split_url(host);
        } catch (const Error&) {
            throw Error(ErrorKind::Config,
                        "ManagedIdentityCredential: AZURE_POD_IDENTITY_AUTHORITY_HOST \"" + host + "\" is not a URL");
        }
        endpoint_ = host + "/metadata/identity/oauth2/token";
    }
}

std::string ManagedIdentityCredential::describe() const {
    std::string who = client_id_.empty() ? "the system-assigned managed identity" : "user-assigned managed identity " + client_id_;
    return who + (app_service_ ? " (identity endpoint)" : " (IMDS)");
}

void ManagedIdentityCredential::collect_sensitive(std::vector<std::string>& out) const {
    if (!identity_header_.empty()) out.push_back(identity_header_);
    cache_.collect(out);
}

AccessToken ManagedIdentityCredential::fetch(const std::string& resource, const Budget& budget) {
    HttpRequest req;
    req.method = "GET";
    req.timeout_ms = pipeline_->request_timeout_ms();
    std::string query;
    if (app_service_) {
        // App Service / Container Apps: "REST endpoint reference", api-version 2019-08-01.
        query = "api-version=2019-08-01&resource=" + url_encode(resource);
        if (!client_id_.empty()) query += "&client_id=" + url_encode(client_id_);
        req.headers.add("X-IDENTITY-HEADER", identity_header_);
    } else {
        // IMDS: "How to use managed identities for Azure resources on a VM to acquire an access token".
        query = "api-version=2018-02-01&resource=" + url_encode(resource);
        if (!client_id_.empty()) query += "&client_id=" + url_encode(client_id_);
        req.headers.add("Metadata", "true");
    }
    req.url = endpoint_ + (endpoint_.find('?') == std::string::npos ? "?" : "&") + query;
    req.headers.add("Accept", "application/json");

    bool probing = probe_ && !app_service_ && !first_request_succeeded_.load();
    if (probing) req.connect_timeout_ms = 1000;  // no IMDS answers quickly: not on Azure
    PipelineResult r;
    try {
        r = pipeline_->send(req, budget, probing ? 0 : -1);
    } catch (const Error& e) {
        if (probing && e.kind() == ErrorKind::Transient)
            throw CredentialUnavailable(name() + ": no instance metadata service answered at " + url_for_messages(endpoint_) +
                                        " (" + e.what() + ")");
        if (e.kind() == ErrorKind::Transient)
            throw Error(ErrorKind::Transient, name() + " could not reach " + (app_service_ ? "the identity endpoint" : "IMDS") +
                                                  ": " + e.what(),
                        e.detail());
        throw;
    }
    const HttpResponse& resp = r.response;
    if (resp.status == 200) {
        first_request_succeeded_ = true;
        AccessToken t = parse_token_answer(resp, name(), endpoint_);
        wipe(r.response.body);
        return t;
    }
    if (resp.status == 400 || resp.status == 404 || resp.status == 403) {
        // IMDS: 400 "Identity not found" when no (or no such user-assigned)
        // identity is assigned; the identity endpoint answers similarly.
        first_request_succeeded_ = true;
        std::string msg = service_message(resp.body);
        std::string request_id = resp.headers.get_or("x-ms-request-id", "none");
        throw Error(ErrorKind::KeyUnavailable,
                    name() + ": " + describe() + " is not available from " + url_for_messages(endpoint_) + " (HTTP " +
                        std::to_string(resp.status) + ", request id " + request_id + ")",
                    msg.empty() ? std::string() : "Service message: " + msg,
                    client_id_.empty()
                        ? "Assign a system-assigned managed identity to this VM or app, or set AZURE_CLIENT_ID to the client ID of a "
                          "user-assigned identity assigned to it."
                        : "Check that the user-assigned identity AZURE_CLIENT_ID=" + client_id_ + " is assigned to this VM or app.");
    }
    throw_token_error(resp, r.attempts, name(), describe(), endpoint_, app_service_ ? "the identity endpoint" : "IMDS");
}

AccessToken ManagedIdentityCredential::get_token(const TokenRequestContext& context) {
    std::string resource = scope_to_resource(context.scopes);
    bool fetched = false;
    AccessToken t = cache_.get(resource, context.force_refresh, [&] { return fetch(resource, context.budget); }, &fetched);
    if (fetched) {
        using namespace std::chrono;
        auto now = SystemClock::now();
        pipeline_->log("cmk: " + name() + ": acquired an access token for " + resource + " from " +
                       (app_service_ ? "the identity endpoint" : "IMDS") + ", valid for " +
                       std::to_string(duration_cast<seconds>(t.expires_on - now).count()) + " s, to be refreshed in " +
                       std::to_string(duration_cast<seconds>(t.refresh_after - now).count()) + " s");
    }
    return t;
}

}  // namespace cmk::azure
