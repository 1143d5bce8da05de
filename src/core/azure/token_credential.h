// The TokenCredential interface every credential implements, shaped as
// azure-identity's (one class per way of signing in, each its own file; see
// credentials.h), with what they share: the access token and its refresh
// rule, the token answer's parsing, the per-credential cache, and the
// tenant a credential may sign in to.
#pragma once
#include "core_guard.h"

#include "azure/pipeline.h"
#include "error.h"

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace cmk::azure {

using SystemClock = std::chrono::system_clock;

struct AccessToken {
    std::string token;
    SystemClock::time_point expires_on{};
    SystemClock::time_point refresh_after{};  // when the cache fetches a new one
};

struct TokenRequestContext {
    std::vector<std::string> scopes;  // e.g. {"https://vault.azure.net/.default"}
    std::string tenant_id;            // the vault's tenant (from its challenge); "" = the credential's own
    bool force_refresh = false;       // the cached token was just rejected
    Budget budget;                    // the retry budget of the operation asking
};

// Thrown by a credential that is not configured in this environment (its
// variables are unset, IMDS does not answer). DefaultAzureCredential moves on
// to the next credential; any other Error stops it.
class CredentialUnavailable : public Error {
public:
    explicit CredentialUnavailable(const std::string& message) : Error(ErrorKind::Config, message) {}
};

class TokenCredential {
public:
    virtual ~TokenCredential() = default;
    // The class name, as the Azure SDKs print it (ClientSecretCredential, ...).
    virtual std::string name() const = 0;
    virtual AccessToken get_token(const TokenRequestContext& context) = 0;
    // Who signs in, for messages: "application <client id> in tenant <tenant>".
    virtual std::string describe() const = 0;
    // Secrets and tokens this credential holds, so that the provider can make
    // sure none of them ever appears in a message.
    virtual void collect_sensitive(std::vector<std::string>& out) const = 0;
};

// The token lifetime rule: a token is used until 5 minutes before it expires
// (the Azure SDKs' refresh offset), or, for a token that lives less than 10
// minutes, until half its lifetime has passed, so that short-lived tokens are
// still reused.
AccessToken make_access_token(std::string token, std::chrono::seconds expires_in, SystemClock::time_point now);

// Parses a token endpoint's JSON answer: access_token, and expires_in
// (number or numeric string, seconds) or expires_on (number or numeric
// string, unix seconds), as Entra ID, IMDS and the App Service identity
// endpoint send them. Throws Error(Protocol) naming the missing field; never
// puts the body into the message.
AccessToken parse_token_response(std::string_view body, SystemClock::time_point now);

// One cache per credential, keyed by tenant and scopes.
class TokenCache {
public:
    // Returns a fresh cached token, or calls `fetch`, stores and returns its
    // result; `fetched` tells which happened.
    AccessToken get(const std::string& key, bool force_refresh, const std::function<AccessToken()>& fetch,
                    bool* fetched = nullptr);
    void collect(std::vector<std::string>& out) const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, AccessToken> entries_;
};

// azure-identity's TenantIdResolver: the tenant a credential configured for
// `configured` may sign in to when a vault asks for `requested`. Allowed
// when equal, when `requested` is empty, or when listed in
// AZURE_ADDITIONALLY_ALLOWED_TENANTS ("*" = any); otherwise throws
// Error(KeyUnavailable) naming both tenants.
std::string resolve_tenant(const std::string& configured, const std::string& requested,
                           const std::vector<std::string>& additionally_allowed, const std::string& credential_name);

// Splits AZURE_ADDITIONALLY_ALLOWED_TENANTS (';' or ',' separated).
std::vector<std::string> split_tenant_list(const std::string& text);

}  // namespace cmk::azure
