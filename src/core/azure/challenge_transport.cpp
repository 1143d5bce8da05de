// The challenge transport of the Key Vault provider (challenge_transport.h).
#include "azure/challenge_transport.h"

#include "azure/challenge.h"
#include "azure/encoding.h"
#include "error.h"

namespace cmk::azure {

ChallengeTransport::ChallengeTransport(std::string vault_url, std::string vault_host, std::string api_version,
                                       std::shared_ptr<TokenCredential> credential, std::shared_ptr<Pipeline> pipeline)
    : vault_url_(std::move(vault_url)),
      vault_host_(std::move(vault_host)),
      api_version_(std::move(api_version)),
      credential_(std::move(credential)),
      pipeline_(std::move(pipeline)) {}

HttpResponse ChallengeTransport::send(const std::string& method, const std::string& path, const SecureString& body,
                                      KeyVaultOp op, const std::string& key_id, const Budget& budget) {
    bool force_refresh = false;
    bool answered_challenge = false;
    for (;;) {
        std::optional<Authority> authority;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            authority = authority_;
        }
        HttpRequest req;
        req.method = method;
        req.url = vault_url_ + path + "?api-version=" + api_version_;
        req.timeout_ms = pipeline_->request_timeout_ms();
        req.headers.add("Accept", "application/json");
        bool with_token = authority.has_value();
        if (with_token) {
            TokenRequestContext ctx;
            ctx.scopes = {authority->scope};
            ctx.tenant_id = authority->tenant;
            ctx.force_refresh = force_refresh;
            ctx.budget = budget;
            AccessToken token = credential_->get_token(ctx);
            req.headers.add("Authorization", "Bearer " + token.token);
            wipe(token.token);
            if (method != "GET") {
                req.headers.add("Content-Type", "application/json");
                req.body = body;
            }
        } else if (method != "GET") {
            // Until the vault has told us its tenant and resource, the request
            // goes without a token and without its body (which may hold a DEK),
            // as azure-security-keyvault's challenge policy does for the first
            // request; the 401 challenge answers it.
            req.headers.add("Content-Type", "application/json");
        }

        PipelineResult r;
        try {
            r = pipeline_->send(req, budget);
        } catch (const Error& e) {
            wipe(req.body);
            req.headers.set("Authorization", "");
            if (e.kind() == ErrorKind::Transient)
                throw Error(ErrorKind::Transient, "Key Vault is unreachable for " +
                                                      std::string(key_vault_op_name(op)) + " on " + key_id + ": " + e.what(),
                            e.detail(), "Check the network path (DNS, firewall, private endpoint, https_proxy) to the vault.");
            throw;
        }
        wipe(req.body);
        req.headers.set("Authorization", "");
        HttpResponse& resp = r.response;

        if (resp.status == 401) {
            auto header = resp.headers.get("WWW-Authenticate");
            if (!header || answered_challenge) {
                if (!header && !with_token)
                    throw Error(ErrorKind::Protocol, "Key Vault answered 401 without an authentication challenge (request id " +
                                                         resp.headers.get_or("x-ms-request-id", "none") + ")");
                throw_key_vault_error(resp, r.attempts, op, key_id, credential_->describe());
            }
            KeyVaultChallenge ch;
            try {
                ch = parse_key_vault_challenge(*header, vault_host_);
            } catch (const Error& e) {
                throw Error(e.kind(), std::string(e.what()) + " (HTTP 401, request id " +
                                          resp.headers.get_or("x-ms-request-id", "none") + ")",
                            e.detail(), e.hint());
            }
            {
                std::lock_guard<std::mutex> lock(mutex_);
                authority_ = Authority{ch.tenant, ch.scope};
            }
            // A token we sent was refused: get a new one rather than the cached one.
            force_refresh = with_token;
            answered_challenge = true;
            continue;
        }
        if (!with_token && method != "GET" && resp.status / 100 == 2)
            throw Error(ErrorKind::Protocol, "Key Vault accepted an unauthenticated " + std::string(key_vault_op_name(op)) +
                                                 " request; expected an authentication challenge (request id " +
                                                 resp.headers.get_or("x-ms-request-id", "none") + ")");
        if (resp.status / 100 != 2) throw_key_vault_error(resp, r.attempts, op, key_id, credential_->describe());
        return std::move(resp);
    }
}

}  // namespace cmk::azure
