// Key bundle and key identifier parsing, and the secret-safe extraction of
// a key-operation result's value (key_bundle.h).
#include "azure/key_bundle.h"

#include "azure/encoding.h"
#include "error.h"

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

int modulus_bits(const SecureBytes& n) {
    size_t i = 0;
    while (i < n.size() && n[i] == 0) i++;
    if (i == n.size()) return 0;
    int top = 0;
    for (uint8_t b = n[i]; b; b >>= 1) top++;
    return static_cast<int>((n.size() - i - 1) * 8) + top;
}

}  // namespace

// A key identifier https://host/keys/<name>/<version>.
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
            // Beyond about 31 million years either way is not a time: refused, not cast (a double
            // outside int64_t's range is undefined behaviour; fuzzing found "exp": 1.9e52).
            constexpr double kMaxSeconds = 1e15;
            bool in_range = v.is_number_float()      ? std::fabs(v.get<double>()) <= kMaxSeconds
                            : v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(kMaxSeconds)
                                                     : v.get<int64_t>() >= -static_cast<int64_t>(kMaxSeconds) &&
                                                           v.get<int64_t>() <= static_cast<int64_t>(kMaxSeconds);
            if (!in_range) throw Error(ErrorKind::Protocol, std::string("attributes.") + f + " is not a time in unix seconds");
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

}  // namespace cmk::azure
