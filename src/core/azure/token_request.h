// The token-request code every credential shares: the Entra ID token
// endpoint's client-credentials grant (with a secret or a JWT client
// assertion), the Entra ID credentials' cache-then-request step, the error
// of a failed token request (Entra ID, IMDS, identity endpoint) with advice
// for the AADSTS codes an operator meets, and the credentials' options.
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/pipeline.h"
#include "azure/token_credential.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cmk::azure {

// AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com) and
// AZURE_ADDITIONALLY_ALLOWED_TENANTS apply to the Entra ID credentials.
struct CredentialOptions {
    std::shared_ptr<Pipeline> pipeline;
    std::string authority_host = "https://login.microsoftonline.com";
    std::vector<std::string> additionally_allowed_tenants;

    static CredentialOptions from_environment(const AzureEnvironment& env, std::shared_ptr<Pipeline> pipeline);
};

// What an Entra ID credential's get_token does around its own request: the
// tenant the vault asks for (resolve_tenant), the scopes joined, the cached
// token or request(tenant, scope)'s, logged when new.
AccessToken cached_entra_token(TokenCache& cache, const CredentialOptions& options, const std::string& configured_tenant,
                               const std::string& credential_name, const TokenRequestContext& context,
                               const std::function<AccessToken(const std::string& tenant, const std::string& scope)>& request);

// The client credentials grant with a JWT client assertion (a certificate's
// signature, or a federated token); the assertion is wiped.
AccessToken request_with_assertion(const CredentialOptions& options, const std::string& tenant, const std::string& client_id,
                                   const std::string& scope, std::string& assertion, const Budget& budget,
                                   const std::string& credential_name, const std::string& who);

// The error of a failed token request (Entra ID, IMDS, identity endpoint),
// with the status, the OAuth error, the AADSTS code with advice where it is a
// known one, and the request id. `attempts` > 1 says retries ran out.
// `service` names who answered ("Microsoft Entra ID", "IMDS", ...).
[[noreturn]] void throw_token_error(const HttpResponse& response, int attempts, const std::string& credential_name,
                                    const std::string& who, const std::string& endpoint,
                                    const std::string& service = "Microsoft Entra ID");

// parse_token_response, with the credential, endpoint, status and request id
// added to the message of a malformed answer.
AccessToken parse_token_answer(const HttpResponse& response, const std::string& credential_name, const std::string& endpoint);

// POSTs an OAuth 2.0 client-credentials form to
// <authority_host>/<tenant>/oauth2/v2.0/token and parses the answer.
AccessToken request_entra_token(Pipeline& pipeline, const std::string& authority_host, const std::string& tenant,
                                const std::string& form_body, const Budget& budget, const std::string& credential_name,
                                const std::string& who);

// <authority_host>/<tenant>/oauth2/v2.0/token
std::string token_endpoint(const std::string& authority_host, const std::string& tenant);

// AZURE_AUTHORITY_HOST or https://login.microsoftonline.com, without a
// trailing slash; must be https (plain http only for loopback test hosts).
std::string authority_host_from(const std::string& value);

}  // namespace cmk::azure
