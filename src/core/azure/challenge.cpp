// Parsing Key Vault's WWW-Authenticate challenge and checking its resource
// against the vault's host (challenge.h).
#include "azure/challenge.h"

#include "error.h"
#include "http/http_client.h"
#include "text.h"

#include <cctype>

namespace cmk::azure {

namespace {

bool is_token_char(char c) {
    return !(c == ' ' || c == '\t' || c == ',' || c == '=' || c == '"');
}

std::string strip_port(const std::string& host) {
    if (!host.empty() && host[0] == '[') {
        auto close = host.find(']');
        return close == std::string::npos ? host : host.substr(1, close - 1);
    }
    auto colon = host.rfind(':');
    if (colon != std::string::npos && host.find(':') == colon) return host.substr(0, colon);
    return host;
}

}  // namespace

std::vector<AuthChallenge> parse_www_authenticate(const std::string& header) {
    std::vector<AuthChallenge> out;
    size_t i = 0, n = header.size();
    auto skip_ws = [&] {
        while (i < n && (header[i] == ' ' || header[i] == '\t')) i++;
    };
    while (i < n) {
        // Skip separators between challenges and parameters.
        while (i < n && (header[i] == ' ' || header[i] == '\t' || header[i] == ',')) i++;
        if (i >= n) break;
        size_t start = i;
        while (i < n && is_token_char(header[i])) i++;
        std::string token = header.substr(start, i - start);
        if (token.empty()) {  // stray character: skip it
            i++;
            continue;
        }
        skip_ws();
        if (i < n && header[i] == '=' && !out.empty()) {
            // An auth-param of the current challenge.
            i++;
            skip_ws();
            std::string value;
            if (i < n && header[i] == '"') {
                i++;
                while (i < n && header[i] != '"') {
                    if (header[i] == '\\' && i + 1 < n) i++;
                    value += header[i++];
                }
                if (i < n) i++;  // closing quote
            } else {
                size_t vs = i;
                while (i < n && header[i] != ',' && header[i] != ' ' && header[i] != '\t') i++;
                value = header.substr(vs, i - vs);
            }
            out.back().params[ascii_lower(token)] = value;
        } else {
            // A new challenge: "scheme" (possibly followed by a token68, ignored).
            out.push_back(AuthChallenge{token, {}});
            if (i < n && header[i] == '=') {
                while (i < n && header[i] == '=') i++;
            }
        }
    }
    return out;
}

bool host_within_domain(const std::string& host, const std::string& domain) {
    std::string h = ascii_lower(strip_port(host)), d = ascii_lower(strip_port(domain));
    while (!h.empty() && h.back() == '.') h.pop_back();
    while (!d.empty() && d.back() == '.') d.pop_back();
    if (d.empty() || h.empty()) return false;
    // As the Azure SDKs check it: the vault's host ends with "." + the
    // resource's host (a vault is never the domain itself).
    return h.size() > d.size() && h.compare(h.size() - d.size(), d.size(), d) == 0 && h[h.size() - d.size() - 1] == '.';
}

std::string tenant_from_authority(const std::string& uri) {
    auto sep = uri.find("://");
    if (sep == std::string::npos) return {};
    auto slash = uri.find('/', sep + 3);
    if (slash == std::string::npos) return {};
    std::string path = uri.substr(slash + 1);
    auto end = path.find_first_of("/?#");
    return path.substr(0, end);
}

KeyVaultChallenge parse_key_vault_challenge(const std::string& header, const std::string& vault_host) {
    const AuthChallenge* bearer = nullptr;
    auto challenges = parse_www_authenticate(header);
    for (const auto& c : challenges)
        if (ascii_lower(c.scheme) == "bearer") {
            bearer = &c;
            break;
        }
    if (!bearer)
        throw Error(ErrorKind::Protocol, "Key Vault's authentication challenge has no Bearer scheme",
                    "WWW-Authenticate: " + header.substr(0, 300));
    auto param = [&](const char* name) {
        auto it = bearer->params.find(name);
        return it == bearer->params.end() ? std::string() : it->second;
    };
    KeyVaultChallenge out;
    std::string resource = param("resource");
    if (!resource.empty()) {
        while (!resource.empty() && resource.back() == '/') resource.pop_back();
        out.scope = resource + "/.default";
    } else {
        out.scope = param("scope");
    }
    if (out.scope.empty())
        throw Error(ErrorKind::Protocol, "Key Vault's authentication challenge names neither a resource nor a scope",
                    "WWW-Authenticate: " + header.substr(0, 300));
    std::string authorization = param("authorization");
    if (authorization.empty()) authorization = param("authorization_uri");
    out.tenant = tenant_from_authority(authorization);
    if (out.tenant.empty())
        throw Error(ErrorKind::Protocol, "Key Vault's authentication challenge has no valid authorization URI",
                    "authorization=\"" + authorization.substr(0, 200) + "\"");
    try {
        out.resource_host = split_url(out.scope).host;
    } catch (const Error&) {
        throw Error(ErrorKind::Protocol, "Key Vault's authentication challenge names an invalid scope \"" + out.scope.substr(0, 200) + "\"");
    }
    if (!host_within_domain(vault_host, out.resource_host))
        throw Error(ErrorKind::Config,
                    "refusing to authenticate to " + strip_port(vault_host) + ": its challenge asks for a token for \"" +
                        out.resource_host + "\", which is not the vault's domain",
                    "A token for one resource must not be sent to a server of another domain.",
                    "Check that cmk.key_url names the Key Vault or Managed HSM itself "
                    "(https://<vault>.vault.azure.net/keys/<name>).");
    return out;
}

}  // namespace cmk::azure
