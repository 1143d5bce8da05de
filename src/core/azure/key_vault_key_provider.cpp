#include "azure/key_vault_key_provider.h"

#include "azure/challenge.h"
#include "azure/encoding.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool contains_ci(const std::string& hay, const std::string& needle) {
    return lower(hay).find(lower(needle)) != std::string::npos;
}

std::string first_line(const std::string& s, size_t max = 300) {
    std::string out = s.substr(0, s.find_first_of("\r\n"));
    if (out.size() > max) out = out.substr(0, max) + "...";
    return out;
}

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

const char kPermissionHint[] =
    "cmk needs the key permissions get, wrapKey and unwrapKey on this key: with access policies, "
    "az keyvault set-policy --name <vault> --key-permissions get wrapKey unwrapKey --spn <client id> "
    "(or --object-id for a managed identity); with Azure RBAC, the role \"Key Vault Crypto Service Encryption User\".";

// The version at the end of a key identifier https://host/keys/<name>/<version>.
std::string version_of_kid(const std::string& kid) {
    auto k = kid.find("/keys/");
    if (k == std::string::npos) return {};
    std::string rest = kid.substr(k + 6);
    auto slash = rest.find('/');
    if (slash == std::string::npos) return {};
    std::string v = rest.substr(slash + 1);
    auto end = v.find_first_of("/?#");
    return v.substr(0, end);
}

std::string name_of_kid(const std::string& kid) {
    auto k = kid.find("/keys/");
    if (k == std::string::npos) return {};
    std::string rest = kid.substr(k + 6);
    return rest.substr(0, rest.find('/'));
}

int modulus_bits(const SecureBytes& n) {
    size_t i = 0;
    while (i < n.size() && n[i] == 0) i++;
    if (i == n.size()) return 0;
    int top = 0;
    for (uint8_t b = n[i]; b; b >>= 1) top++;
    return static_cast<int>((n.size() - i - 1) * 8) + top;
}

struct ServiceError {
    std::string code, inner_code, message;
    bool json = false;
};

ServiceError parse_service_error(std::string_view body) {
    ServiceError e;
    json j = json::parse(body, nullptr, false);
    if (!j.is_object()) return e;
    e.json = true;
    auto err = j.find("error");
    if (err == j.end() || !err->is_object()) return e;
    if (err->contains("code") && (*err)["code"].is_string()) e.code = (*err)["code"].get<std::string>();
    if (err->contains("message") && (*err)["message"].is_string()) e.message = (*err)["message"].get<std::string>();
    // innererror may nest (innererror.innererror...): the innermost code is the most specific.
    const json* inner = err->contains("innererror") ? &(*err)["innererror"] : nullptr;
    while (inner && inner->is_object()) {
        if (inner->contains("code") && (*inner)["code"].is_string()) e.inner_code = (*inner)["code"].get<std::string>();
        inner = inner->contains("innererror") ? &(*inner)["innererror"] : nullptr;
    }
    return e;
}

// Error in a 2xx answer.
[[noreturn]] void throw_malformed(const std::string& what, const HttpResponse& r, const std::string& key_id) {
    throw Error(ErrorKind::Protocol,
                "malformed answer from Key Vault for " + key_id + ": " + what + " (HTTP " + std::to_string(r.status) +
                    ", request id " + r.headers.get_or("x-ms-request-id", "none") + ")");
}

json parse_json_answer(const HttpResponse& r, const std::string& key_id) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw_malformed("the body is not a JSON object", r, key_id);
    return j;
}

}  // namespace

// Where a JSON string starting at s[i] == '"' ends (the index after its
// closing quote); npos if it does not end. *escaped: it has a backslash.
static size_t end_of_string(const SecureString& s, size_t i, bool* escaped) {
    for (size_t k = i + 1; k < s.size(); k++) {
        if (s[k] == '\\') {
            *escaped = true;
            k++;
        } else if (s[k] == '"') {
            return k + 1;
        }
    }
    return std::string::npos;
}

std::optional<SecureString> take_string_member(const SecureString& body, const char* name, SecureString* redacted) {
    *redacted = body;
    size_t i = 0, n = body.size();
    auto ws = [&] {
        while (i < n && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
    };
    ws();
    if (i >= n || body[i] != '{') return std::nullopt;
    i++;
    std::optional<SecureString> found;
    for (;;) {
        ws();
        if (i >= n || body[i] != '"') return std::nullopt;
        bool key_escaped = false;
        size_t key_end = end_of_string(body, i, &key_escaped);
        if (key_end == std::string::npos) return std::nullopt;
        bool is_name = !key_escaped && body.compare(i + 1, key_end - i - 2, name) == 0;
        i = key_end;
        ws();
        if (i >= n || body[i] != ':') return std::nullopt;
        i++;
        ws();
        if (i >= n) return std::nullopt;
        size_t start = i;
        if (body[i] == '"') {
            bool escaped = false;
            size_t end = end_of_string(body, i, &escaped);
            if (end == std::string::npos) return std::nullopt;
            if (is_name) {
                if (escaped || found) return std::nullopt;  // an escape, or the member twice
                found = SecureString(body, start + 1, end - start - 2);
                for (size_t k = start + 1; k + 1 < end; k++) (*redacted)[k] = kSecretPlaceholder;
            }
            i = end;
        } else {
            // Any other value: skip to its end, minding strings and nesting.
            int depth = 0;
            while (i < n) {
                char c = body[i];
                if (c == '"') {
                    bool escaped = false;
                    i = end_of_string(body, i, &escaped);
                    if (i == std::string::npos) return std::nullopt;
                    continue;
                }
                if (c == '{' || c == '[') depth++;
                if (c == '}' || c == ']') {
                    if (depth == 0) break;
                    depth--;
                }
                if (c == ',' && depth == 0) break;
                i++;
            }
            if (is_name) return std::nullopt;  // not a string
        }
        ws();
        if (i < n && body[i] == ',') {
            i++;
            continue;
        }
        if (i < n && body[i] == '}') return found;
        return std::nullopt;
    }
}

const char* key_vault_op_name(KeyVaultOp op) {
    switch (op) {
    case KeyVaultOp::Get: return "get";
    case KeyVaultOp::WrapKey: return "wrapKey";
    case KeyVaultOp::UnwrapKey: return "unwrapKey";
    }
    return "?";
}

std::string redact(std::string text, const std::vector<std::string>& secrets) {
    for (const auto& s : secrets) {
        if (s.size() < 8) continue;
        size_t pos = 0;
        while ((pos = text.find(s, pos)) != std::string::npos) {
            text.replace(pos, s.size(), "[REDACTED]");
            pos += 10;
        }
    }
    return text;
}

KeyProperties parse_key_bundle(std::string_view body, const std::string& base) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::Protocol, "the key bundle is not a JSON object");
    // REST "Keys - Get Key": KeyBundle { key: JsonWebKey { kid, kty, key_ops, n, e }, attributes: { enabled, nbf, exp } }
    auto key = j.find("key");
    if (key == j.end() || !key->is_object()) throw Error(ErrorKind::Protocol, "the key bundle has no \"key\" object");
    KeyProperties p;
    p.base = base;
    if (!key->contains("kid") || !(*key)["kid"].is_string()) throw Error(ErrorKind::Protocol, "the key bundle has no key.kid");
    std::string kid = (*key)["kid"].get<std::string>();
    p.version = version_of_kid(kid);
    if (p.version.empty()) throw Error(ErrorKind::Protocol, "key.kid \"" + kid.substr(0, 200) + "\" names no version");
    if (!key->contains("kty") || !(*key)["kty"].is_string()) throw Error(ErrorKind::Protocol, "the key bundle has no key.kty");
    p.key_type = (*key)["kty"].get<std::string>();
    if (key->contains("n")) {
        if (!(*key)["n"].is_string()) throw Error(ErrorKind::Protocol, "key.n is not a string");
        auto n = base64url_decode((*key)["n"].get<std::string>());
        if (!n) throw Error(ErrorKind::Protocol, "key.n is not base64url");
        p.key_size_bits = modulus_bits(*n);
    }
    if (key->contains("key_ops")) {
        const json& ops = (*key)["key_ops"];
        if (!ops.is_array()) throw Error(ErrorKind::Protocol, "key.key_ops is not an array");
        for (const auto& o : ops)
            if (o.is_string()) p.key_ops.push_back(o.get<std::string>());
    } else {
        // JWK (RFC 7517 section 4.3): no key_ops means no restriction.
        p.key_ops = {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"};
    }
    auto attrs = j.find("attributes");
    if (attrs != j.end() && attrs->is_object()) {
        if (attrs->contains("enabled")) {
            if (!(*attrs)["enabled"].is_boolean()) throw Error(ErrorKind::Protocol, "attributes.enabled is not a boolean");
            p.enabled = (*attrs)["enabled"].get<bool>();
        }
        // nbf and exp are unix seconds (REST "KeyAttributes": integer, unixtime).
        for (const char* f : {"nbf", "exp"}) {
            if (!attrs->contains(f) || (*attrs)[f].is_null()) continue;
            const json& v = (*attrs)[f];
            if (!v.is_number()) throw Error(ErrorKind::Protocol, std::string("attributes.") + f + " is not a number");
            int64_t t = v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
            (f[0] == 'n' ? p.not_before : p.expires) = t;
        }
        // recoveryLevel: a DeletionRecoveryLevel string; recoverableDays: an integer.
        if (attrs->contains("recoveryLevel") && !(*attrs)["recoveryLevel"].is_null()) {
            if (!(*attrs)["recoveryLevel"].is_string()) throw Error(ErrorKind::Protocol, "attributes.recoveryLevel is not a string");
            p.recovery_level = (*attrs)["recoveryLevel"].get<std::string>();
        }
        if (attrs->contains("recoverableDays") && (*attrs)["recoverableDays"].is_number_integer())
            p.recoverable_days = (*attrs)["recoverableDays"].get<int>();
    }
    return p;
}

void check_key_usable(const KeyProperties& key, int64_t now) {
    std::string id = key.base + "/" + key.version;
    const char* rotate = "Point cmk at a suitable key with SELECT cmk_rotate_key('<key id>'), or fix this one in Key Vault.";
    if (key.key_type != "RSA" && key.key_type != "RSA-HSM")
        throw Error(ErrorKind::KeyUnavailable,
                    "key " + id + " is of type " + key.key_type + "; cmk needs an RSA or RSA-HSM key", {},
                    "Create an RSA key of 2048, 3072 or 4096 bits (az keyvault key create --kty RSA --size 3072).");
    if (key.key_size_bits != 2048 && key.key_size_bits != 3072 && key.key_size_bits != 4096)
        throw Error(ErrorKind::KeyUnavailable,
                    "key " + id + " has " + std::to_string(key.key_size_bits) + " bits; cmk needs 2048, 3072 or 4096", {},
                    "Create an RSA key of 2048, 3072 or 4096 bits.");
    if (!key.enabled)
        throw Error(ErrorKind::KeyUnavailable, "key " + id + " is disabled", {},
                    "Enable it again (az keyvault key set-attributes --enabled true), or rotate to an enabled key.");
    if (key.not_before && now < *key.not_before)
        throw Error(ErrorKind::KeyUnavailable, "key " + id + " is not valid before " + format_unix_time(*key.not_before), {},
                    "Wait until its activation date, or change the key's not-before date in Key Vault.");
    if (key.expires && now >= *key.expires)
        throw Error(ErrorKind::KeyUnavailable, "key " + id + " expired at " + format_unix_time(*key.expires), {},
                    "Extend its expiry date in Key Vault, or rotate to a new key version.");
    for (const char* op : {"wrapKey", "unwrapKey"}) {
        if (std::find(key.key_ops.begin(), key.key_ops.end(), op) == key.key_ops.end()) {
            std::string ops;
            for (const auto& o : key.key_ops) ops += (ops.empty() ? "" : ", ") + o;
            throw Error(ErrorKind::KeyUnavailable,
                        "key " + id + " does not permit " + op + " (its key_ops: " + (ops.empty() ? "none" : ops) + ")", {},
                        std::string("Allow the operations wrapKey and unwrapKey on the key (az keyvault key set-attributes "
                                    "--ops wrapKey unwrapKey ...). ") + rotate);
        }
    }
}

void throw_key_vault_error(const HttpResponse& r, int attempts, KeyVaultOp op, const std::string& key_id,
                           const std::string& who) {
    ServiceError se = parse_service_error(r.body);
    std::string request_id = r.headers.get_or("x-ms-request-id", "none");
    std::string facts = "HTTP " + std::to_string(r.status);
    if (!se.code.empty()) facts += ", code " + se.code;
    if (!se.inner_code.empty()) facts += ", inner code " + se.inner_code;
    facts += ", request id " + request_id;
    if (attempts > 1) facts += ", after " + std::to_string(attempts) + " attempts";
    std::string detail = se.message.empty() ? std::string() : "Key Vault said: " + first_line(se.message);
    const std::string opname = key_vault_op_name(op);
    const long s = r.status;

    if (s == 408 || s == 429 || s >= 500)
        throw Error(ErrorKind::Transient,
                    "Key Vault " + std::string(s == 429 ? "is throttling requests" : "is unavailable") + " for " + opname +
                        " on " + key_id + " (" + facts + ")",
                    detail, "This is usually temporary; cmk retries later.");
    if (!se.json)
        throw Error(ErrorKind::Protocol,
                    "unexpected answer from Key Vault for " + opname + " on " + key_id + " (" + facts + ", body is not JSON)");
    if (s == 403) {
        if (se.inner_code == "ForbiddenByPolicy")
            throw Error(ErrorKind::KeyUnavailable,
                        "Key Vault denied " + opname + " on " + key_id + " to " + who +
                            ": the vault's access policy does not grant the '" + opname + "' key permission (" + facts + ")",
                        detail,
                        "Add the key permissions get, wrapKey and unwrapKey for this identity to the vault's access policy "
                        "(az keyvault set-policy --name <vault> --key-permissions get wrapKey unwrapKey --spn <client id>).");
        if (se.inner_code == "ForbiddenByRbac")
            throw Error(ErrorKind::KeyUnavailable,
                        "Key Vault denied " + opname + " on " + key_id + " to " + who +
                            ": no Azure role assignment (RBAC) allows it (" + facts + ")",
                        detail,
                        "Assign the role \"Key Vault Crypto Service Encryption User\" to this identity on the key or the vault "
                        "(az role assignment create --role \"Key Vault Crypto Service Encryption User\" --assignee <client id> "
                        "--scope <key or vault resource id>); new assignments can take minutes to apply.");
        auto is = [&](const char* code) { return se.code == code || se.inner_code == code; };
        if (is("KeyDisabled") || contains_ci(se.message, "disabled key"))
            throw Error(ErrorKind::KeyUnavailable, "key " + key_id + " is disabled: Key Vault refused " + opname + " (" + facts + ")",
                        detail, "Enable the key again in Key Vault, or rotate to an enabled key.");
        if (is("KeyExpired") || contains_ci(se.message, "expired key"))
            throw Error(ErrorKind::KeyUnavailable, "key " + key_id + " has expired: Key Vault refused " + opname + " (" + facts + ")",
                        detail, "Extend the key's expiry date in Key Vault, or rotate to a new key version.");
        if (is("KeyNotYetValid") || contains_ci(se.message, "not yet valid"))
            throw Error(ErrorKind::KeyUnavailable, "key " + key_id + " is not yet valid: Key Vault refused " + opname + " (" + facts + ")",
                        detail);
        if (is("KeyOperationForbidden") || contains_ci(se.message, "not permitted on this key"))
            throw Error(ErrorKind::KeyUnavailable,
                        "key " + key_id + " does not permit " + opname + " (" + facts + ")", detail,
                        "Allow the operations wrapKey and unwrapKey on the key.");
        throw Error(ErrorKind::KeyUnavailable, "Key Vault denied " + opname + " on " + key_id + " to " + who + " (" + facts + ")",
                    detail, kPermissionHint);
    }
    if (s == 404)
        throw Error(ErrorKind::KeyUnavailable,
                    "key " + key_id + " was not found in the vault (" + facts + ")", detail,
                    "Check the key name and version in cmk.key_url. A recently deleted key can be recovered while the vault "
                    "keeps it soft-deleted (az keyvault key recover).");
    if (s == 401)
        throw Error(ErrorKind::KeyUnavailable,
                    "Key Vault rejected the access token of " + who + " for " + opname + " on " + key_id + " (" + facts + ")",
                    detail,
                    "The token's tenant or audience does not match the vault: check AZURE_TENANT_ID and that the vault "
                    "belongs to that tenant.");
    if (s == 400 && op == KeyVaultOp::UnwrapKey)
        throw Error(ErrorKind::WrongKey,
                    "Key Vault could not unwrap the data encryption key with " + key_id +
                        ": it was not wrapped by this key version, or it is damaged (" + facts + ")",
                    detail);
    if (s == 409)
        throw Error(ErrorKind::KeyUnavailable, "Key Vault refused " + opname + " on " + key_id + " because of a conflicting state (" +
                                                   facts + ")",
                    detail, "The key may be being deleted or recovered; check it in Key Vault.");
    if (s == 400)
        throw Error(ErrorKind::Config, "Key Vault rejected the " + opname + " request for " + key_id + " as invalid (" + facts + ")",
                    detail, "Check cmk.key_url and the Key Vault api-version.");
    throw Error(ErrorKind::Protocol, "unexpected answer from Key Vault for " + opname + " on " + key_id + " (" + facts + ")",
                detail);
}

// ---- KeyVaultKeyProvider ----

KeyVaultKeyProvider::KeyVaultKeyProvider(const KeyUrl& url, const ProviderSettings& settings)
    : KeyVaultKeyProvider(url, settings, nullptr, nullptr) {}

KeyVaultKeyProvider::KeyVaultKeyProvider(const KeyUrl& url, const ProviderSettings& settings,
                                         std::shared_ptr<TokenCredential> credential, std::shared_ptr<Pipeline> pipeline)
    : url_(url), settings_(settings), pipeline_(std::move(pipeline)), credential_(std::move(credential)) {
    if (url_.kind != KeyUrl::Kind::KeyVault) throw Error(ErrorKind::Internal, "KeyVaultKeyProvider needs a Key Vault URL");
    UrlParts parts = split_url(url_.scheme + "://" + url_.host + "/");
    vault_host_ = parts.host;
    // Plain http only for a local emulator (loopback); a real vault is https.
    if (parts.scheme != "https" && !(parts.host == "127.0.0.1" || parts.host == "localhost" || parts.host == "::1"))
        throw Error(ErrorKind::Config, "cmk.key_url \"" + url_.text + "\" must use https://", {},
                    "Key Vault and Managed HSM are only reachable over https.");
    if (settings_.wrap_algorithm != "RSA-OAEP-256" && settings_.wrap_algorithm != "RSA-OAEP")
        throw Error(ErrorKind::Config, "wrap algorithm \"" + settings_.wrap_algorithm + "\" is not supported", {},
                    "Use RSA-OAEP-256 (the default) or RSA-OAEP.");
    if (settings_.api_version.empty() ||
        settings_.api_version.find_first_not_of("0123456789.-abcdefghijklmnopqrstuvwxyz") != std::string::npos)
        throw Error(ErrorKind::Config, "Key Vault api-version \"" + settings_.api_version + "\" is not valid");
    if (!pipeline_) pipeline_ = std::make_shared<Pipeline>(settings_);
    if (!credential_) credential_ = make_credential(settings_.auth, AzureEnvironment(settings_.environment), pipeline_);
}

std::string KeyVaultKeyProvider::url_for(const std::string& path) const {
    return url_.scheme + "://" + url_.host + path + "?api-version=" + settings_.api_version;
}

void KeyVaultKeyProvider::rethrow_redacted(const Error& e) const {
    std::vector<std::string> secrets;
    credential_->collect_sensitive(secrets);
    throw Error(e.kind(), redact(e.what(), secrets), redact(e.detail(), secrets), redact(e.hint(), secrets));
}

HttpResponse KeyVaultKeyProvider::send(const std::string& method, const std::string& path, const SecureString& body,
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
        req.url = url_for(path);
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

KeyProperties KeyVaultKeyProvider::get_key(const std::string& version, const Budget& budget, std::string* request_id) {
    std::string key_id = url_.with_version(version);
    std::string path = "/keys/" + url_.key_name + (version.empty() ? "" : "/" + version);
    HttpResponse r = send("GET", path, {}, KeyVaultOp::Get, key_id, budget);
    if (request_id) *request_id = r.headers.get_or("x-ms-request-id", "none");
    KeyProperties p;
    try {
        p = parse_key_bundle(r.body, url_.base);
    } catch (const Error& e) {
        throw_malformed(e.what(), r, key_id);
    }
    json j = json::parse(r.body, nullptr, false);
    std::string kid = j["key"]["kid"].get<std::string>();
    if (lower(name_of_kid(kid)) != lower(url_.key_name)) throw_malformed("key.kid names another key (" + kid + ")", r, key_id);
    if (!version.empty() && lower(p.version) != lower(version))
        throw_malformed("key.kid names version " + p.version + " instead of " + version, r, key_id);
    return p;
}

void KeyVaultKeyProvider::check_usable(const KeyProperties& p, const std::string& request_id) const {
    try {
        check_key_usable(p, now_unix());
    } catch (const Error& e) {
        throw Error(e.kind(), std::string(e.what()) + " (key read by GET, HTTP 200, request id " + request_id + ")", e.detail(),
                    e.hint());
    }
}

KeyProperties KeyVaultKeyProvider::check_key() {
    try {
        Budget budget = pipeline_->new_budget();
        std::string rid;
        KeyProperties p = get_key(url_.version, budget, &rid);
        check_usable(p, rid);
        return p;
    } catch (const Error& e) {
        rethrow_redacted(e);
    }
}

WrappedDek KeyVaultKeyProvider::wrap(const SecureBytes& dek) {
    try {
        if (dek.empty()) throw Error(ErrorKind::Internal, "wrap: empty data encryption key");
        Budget budget = pipeline_->new_budget();
        // Without a version in cmk.key_url, GET /keys/{name} names the newest
        // version; the DEK is wrapped with exactly that version.
        std::string rid;
        KeyProperties p = get_key(url_.version, budget, &rid);
        check_usable(p, rid);
        std::string key_id = url_.with_version(p.version);
        // REST "Keys - Wrap Key": body KeyOperationsParameters { alg, value: base64url }.
        SecureString body = "{\"alg\":\"";
        body.append(settings_.wrap_algorithm.data(), settings_.wrap_algorithm.size());
        body += "\",\"value\":\"";
        body += base64url_encode_secure(dek.data(), dek.size());
        body += "\"}";
        HttpResponse r;
        try {
            r = send("POST", "/keys/" + url_.key_name + "/" + p.version + "/wrapkey", body, KeyVaultOp::WrapKey, key_id, budget);
        } catch (...) {
            wipe(body);
            throw;
        }
        wipe(body);
        // KeyOperationResult { kid, value: base64url }.
        json j = parse_json_answer(r, key_id);
        if (!j.contains("value") || !j["value"].is_string()) throw_malformed("no \"value\" in the wrapKey result", r, key_id);
        auto wrapped = base64url_decode(j["value"].get<std::string>());
        if (!wrapped || wrapped->empty()) throw_malformed("the wrapKey result is not base64url", r, key_id);
        if (j.contains("kid") && j["kid"].is_string()) {
            std::string used = version_of_kid(j["kid"].get<std::string>());
            if (!used.empty() && lower(used) != lower(p.version))
                throw_malformed("the key was wrapped with version " + used + " instead of " + p.version, r, key_id);
        }
        WrappedDek out;
        out.kek_base = url_.base;
        out.kek_version = p.version;
        out.algorithm = settings_.wrap_algorithm;
        out.wrapped.assign(wrapped->begin(), wrapped->end());
        return out;
    } catch (const Error& e) {
        rethrow_redacted(e);
    }
}

SecureBytes KeyVaultKeyProvider::unwrap(const WrappedDek& wrapped) {
    try {
        if (lower(wrapped.kek_base) != lower(url_.base))
            throw Error(ErrorKind::WrongKey,
                        "the data encryption key was wrapped by " + wrapped.kek_base + ", not by " + url_.base, {},
                        "Unwrap with the key that wrapped it (the keyring records it).");
        if (wrapped.kek_version.empty())
            throw Error(ErrorKind::KeyringCorrupt, "the wrapped data encryption key records no key version");
        if (wrapped.algorithm != "RSA-OAEP-256" && wrapped.algorithm != "RSA-OAEP")
            throw Error(ErrorKind::KeyringCorrupt, "the wrapped data encryption key records an unsupported algorithm \"" +
                                                       wrapped.algorithm + "\"");
        if (wrapped.wrapped.empty()) throw Error(ErrorKind::KeyringCorrupt, "the wrapped data encryption key is empty");
        Budget budget = pipeline_->new_budget();
        std::string key_id = url_.with_version(wrapped.kek_version);
        // REST "Keys - Unwrap Key": same body and result shapes as wrapKey.
        std::string request = "{\"alg\":\"" + wrapped.algorithm + "\",\"value\":\"" +
                              base64url_encode(wrapped.wrapped.data(), wrapped.wrapped.size()) + "\"}";
        HttpResponse r = send("POST", "/keys/" + url_.key_name + "/" + wrapped.kek_version + "/unwrapkey",
                              SecureString(request.data(), request.size()), KeyVaultOp::UnwrapKey, key_id, budget);
        // The answer's "value" is the DEK: it is taken out of the body (in
        // locked memory) without passing through a JSON parser, whose
        // buffers are ordinary heap; the parser checks the rest, with the
        // value replaced by a placeholder of its length.
        SecureString redacted;
        std::optional<SecureString> value = take_string_member(r.body, "value", &redacted);
        json j = json::parse(redacted, nullptr, false);
        if (j.is_discarded() || !j.is_object()) throw_malformed("the body is not a JSON object", r, key_id);
        if (!value || !j.contains("value") || !j["value"].is_string() ||
            j["value"].get_ref<const std::string&>() != std::string(value->size(), kSecretPlaceholder))
            throw_malformed("no \"value\" string in the unwrapKey result", r, key_id);
        auto dek = base64url_decode(*value);
        if (!dek || dek->empty()) throw_malformed("the unwrapKey result is not base64url", r, key_id);
        return std::move(*dek);
    } catch (const Error& e) {
        rethrow_redacted(e);
    }
}

std::unique_ptr<KeyProvider> make_key_vault_key_provider(const KeyUrl& url, const ProviderSettings& settings) {
    return std::make_unique<KeyVaultKeyProvider>(url, settings);
}

}  // namespace cmk::azure
