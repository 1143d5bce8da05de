// The token lifetime rule, the token answer's parsing, the per-credential
// cache and the tenant resolution (token_credential.h).
#include "azure/token_credential.h"

#include "azure/encoding.h"
#include "text.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

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
    if (requested.empty() || equals_ci(requested, configured)) return configured;
    for (const auto& t : additionally_allowed)
        if (t == "*" || equals_ci(t, requested)) return requested;
    throw Error(ErrorKind::KeyUnavailable,
                "the key vault belongs to tenant " + requested + ", but " + credential_name + " is configured for tenant " +
                    configured + " (AZURE_TENANT_ID)",
                "Key Vault accepts only tokens of its own tenant.",
                "Set AZURE_TENANT_ID to " + requested +
                    " (the application must exist in that tenant), or add it to AZURE_ADDITIONALLY_ALLOWED_TENANTS "
                    "for a multi-tenant application.");
}

}  // namespace cmk::azure
