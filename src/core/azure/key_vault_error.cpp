// Status-to-error mapping for Key Vault (key_vault_error.h).
#include "azure/key_vault_error.h"

#include "error.h"
#include "text.h"

#include <nlohmann/json.hpp>

namespace cmk::azure {

using json = nlohmann::json;

namespace {

const char kPermissionHint[] =
    "cmk needs the key permissions get, wrapKey and unwrapKey on this key: with access policies, "
    "az keyvault set-policy --name <vault> --key-permissions get wrapKey unwrapKey --spn <client id> "
    "(or --object-id for a managed identity); with Azure RBAC, the role \"Key Vault Crypto Service Encryption User\".";


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

}  // namespace

const char* key_vault_op_name(KeyVaultOp op) {
    switch (op) {
    case KeyVaultOp::Get: return "get";
    case KeyVaultOp::WrapKey: return "wrapKey";
    case KeyVaultOp::UnwrapKey: return "unwrapKey";
    }
    return "?";
}


// Error in a 2xx answer.
void throw_malformed_answer(const std::string& what, const HttpResponse& r, const std::string& key_id) {
    throw Error(ErrorKind::Protocol,
                "malformed answer from Key Vault for " + key_id + ": " + what + " (HTTP " + std::to_string(r.status) +
                    ", request id " + r.headers.get_or("x-ms-request-id", "none") + ")");
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

}  // namespace cmk::azure
