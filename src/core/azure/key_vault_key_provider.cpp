// The Azure Key Vault / Managed HSM key provider's operations (check_key,
// wrap, unwrap): what to ask the vault and what to check in its answers;
// the concerns it uses are in the files key_vault_key_provider.h lists.
#include "azure/key_vault_key_provider.h"

#include "azure/encoding.h"
#include "azure/key_bundle.h"
#include "azure/key_usability.h"
#include "azure/redaction.h"
#include "text.h"

#include <ctime>

#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

json parse_json_answer(const HttpResponse& r, const std::string& key_id) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw_malformed_answer("the body is not a JSON object", r, key_id);
    return j;
}

}  // namespace

// ---- KeyVaultKeyProvider ----

KeyVaultKeyProvider::KeyVaultKeyProvider(const KeyUrl& url, const ProviderSettings& settings)
    : KeyVaultKeyProvider(url, settings, nullptr, nullptr) {}

KeyVaultKeyProvider::KeyVaultKeyProvider(const KeyUrl& url, const ProviderSettings& settings,
                                         std::shared_ptr<TokenCredential> credential, std::shared_ptr<Pipeline> pipeline)
    : url_(url), settings_(settings), pipeline_(std::move(pipeline)), credential_(std::move(credential)) {
    if (url_.kind != KeyUrl::Kind::KeyVault) throw Error(ErrorKind::Internal, "KeyVaultKeyProvider needs a Key Vault URL");
    UrlParts parts = split_url(url_.scheme + "://" + url_.host + "/");
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
    transport_ = std::make_unique<ChallengeTransport>(url_.scheme + "://" + url_.host, parts.host, settings_.api_version,
                                                      credential_, pipeline_);
}

void KeyVaultKeyProvider::rethrow_redacted(const Error& e) const {
    std::vector<std::string> secrets;
    credential_->collect_sensitive(secrets);
    throw Error(e.kind(), redact(e.what(), secrets), redact(e.detail(), secrets), redact(e.hint(), secrets));
}

KeyProperties KeyVaultKeyProvider::get_key(const std::string& version, const Budget& budget, std::string* request_id) {
    std::string key_id = url_.with_version(version);
    std::string path = "/keys/" + url_.key_name + (version.empty() ? "" : "/" + version);
    HttpResponse r = transport_->send("GET", path, {}, KeyVaultOp::Get, key_id, budget);
    if (request_id) *request_id = r.headers.get_or("x-ms-request-id", "none");
    KeyProperties p;
    try {
        p = parse_key_bundle(r.body, url_.base);
    } catch (const Error& e) {
        throw_malformed_answer(e.what(), r, key_id);
    }
    json j = json::parse(r.body, nullptr, false);
    std::string kid = j["key"]["kid"].get<std::string>();
    if (!equals_ci(name_of_kid(kid), url_.key_name)) throw_malformed_answer("key.kid names another key (" + kid + ")", r, key_id);
    if (!version.empty() && !equals_ci(p.version, version))
        throw_malformed_answer("key.kid names version " + p.version + " instead of " + version, r, key_id);
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
            r = transport_->send("POST", "/keys/" + url_.key_name + "/" + p.version + "/wrapkey", body, KeyVaultOp::WrapKey, key_id, budget);
        } catch (...) {
            wipe(body);
            throw;
        }
        wipe(body);
        // KeyOperationResult { kid, value: base64url }.
        json j = parse_json_answer(r, key_id);
        if (!j.contains("value") || !j["value"].is_string()) throw_malformed_answer("no \"value\" in the wrapKey result", r, key_id);
        auto wrapped = base64url_decode(j["value"].get<std::string>());
        if (!wrapped || wrapped->empty()) throw_malformed_answer("the wrapKey result is not base64url", r, key_id);
        if (j.contains("kid") && j["kid"].is_string()) {
            std::string used = version_of_kid(j["kid"].get<std::string>());
            if (!used.empty() && !equals_ci(used, p.version))
                throw_malformed_answer("the key was wrapped with version " + used + " instead of " + p.version, r, key_id);
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
        if (!equals_ci(wrapped.kek_base, url_.base))
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
        HttpResponse r = transport_->send("POST", "/keys/" + url_.key_name + "/" + wrapped.kek_version + "/unwrapkey",
                              SecureString(request.data(), request.size()), KeyVaultOp::UnwrapKey, key_id, budget);
        // The answer's "value" is the DEK: it is taken out of the body (in
        // locked memory) without passing through a JSON parser, whose
        // buffers are ordinary heap; the parser checks the rest, with the
        // value replaced by a placeholder of its length.
        SecureString redacted;
        std::optional<SecureString> value = take_string_member(r.body, "value", &redacted);
        json j = json::parse(redacted, nullptr, false);
        if (j.is_discarded() || !j.is_object()) throw_malformed_answer("the body is not a JSON object", r, key_id);
        if (!value || !j.contains("value") || !j["value"].is_string() ||
            j["value"].get_ref<const std::string&>() != std::string(value->size(), kSecretPlaceholder))
            throw_malformed_answer("no \"value\" string in the unwrapKey result", r, key_id);
        auto dek = base64url_decode(*value);
        if (!dek || dek->empty()) throw_malformed_answer("the unwrapKey result is not base64url", r, key_id);
        return std::move(*dek);
    } catch (const Error& e) {
        rethrow_redacted(e);
    }
}

std::unique_ptr<KeyProvider> make_key_vault_key_provider(const KeyUrl& url, const ProviderSettings& settings) {
    return std::make_unique<KeyVaultKeyProvider>(url, settings);
}

}  // namespace cmk::azure
