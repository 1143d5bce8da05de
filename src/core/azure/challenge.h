// Key Vault's authentication challenge, as azure-security-keyvault's
// KeyVaultChallengeBasedAuthenticationPolicy handles it: a request without a
// (valid) token gets 401 with
//   WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
//                            resource="https://vault.azure.net"
// (older services send authorization_uri, newer ones may send scope instead of
// resource). The tenant is the first path segment of the authorization URI;
// the token scope is resource + "/.default", or scope as given.
// Before any token is sent, the resource's host must be the vault's host or a
// parent domain of it (vault.azure.net for myvault.vault.azure.net): a server
// that names some other resource is asking for a token it must not get.
#pragma once
#include "core_guard.h"

#include <map>
#include <string>
#include <vector>

namespace cmk::azure {

struct AuthChallenge {
    std::string scheme;                         // as sent, e.g. "Bearer"
    std::map<std::string, std::string> params;  // parameter names in lower case
};

// RFC 9110 section 11.6.1: one or more challenges, comma-separated, each a
// scheme followed by auth-params (token=token or token="quoted string").
std::vector<AuthChallenge> parse_www_authenticate(const std::string& header);

struct KeyVaultChallenge {
    std::string tenant;
    std::string scope;          // e.g. https://vault.azure.net/.default
    std::string resource_host;  // the host of the scope, lower case
};

// Throws Error(Protocol) when the challenge lacks what the flow needs, and
// Error(Config) when its resource does not belong to the vault's domain.
KeyVaultChallenge parse_key_vault_challenge(const std::string& header, const std::string& vault_host);

// True when `host` ends with "." + domain (case-insensitive, ports ignored), as
// the Azure SDKs verify a challenge's resource; the domain itself is not within.
bool host_within_domain(const std::string& host, const std::string& domain);

// First path segment of an authorization URI, or "" when there is none.
std::string tenant_from_authority(const std::string& uri);

}  // namespace cmk::azure
