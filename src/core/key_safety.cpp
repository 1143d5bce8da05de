// The vault-safety check of a key's recoveryLevel (key_safety.h).
#include "key_safety.h"

#include "error.h"

namespace cmk {

bool recovery_level_is_protected(const std::string& level) {
    // Azure's DeletionRecoveryLevel values (Key Vault REST, KeyAttributes.recoveryLevel).
    return level == "Recoverable" || level == "Recoverable+ProtectedSubscription" || level == "CustomizedRecoverable" ||
           level == "CustomizedRecoverable+ProtectedSubscription";
}

void require_purge_protection(const KeyUrl& url, const KeyProperties& key, bool allow_purgeable) {
    if (url.kind != KeyUrl::Kind::KeyVault || allow_purgeable) return;
    std::string id = key.base + (key.version.empty() ? "" : "/" + key.version);
    const char* hint =
        "Turn on purge protection for the vault (az keyvault update --name <vault> --enable-purge-protection true; "
        "soft delete is on by default), or, to accept that the key can be destroyed at once, set "
        "cmk.require_purge_protection = off in postgresql.conf and restart the server.";
    if (!key.recovery_level)
        throw Error(ErrorKind::Config, "Key Vault reports no recoveryLevel for key " + id + "; cmk cannot tell whether it is purge-protected",
                    "cmk requires soft delete and purge protection on the vault of the key that wraps the data encryption key.", hint);
    if (!recovery_level_is_protected(*key.recovery_level))
        throw Error(ErrorKind::Config,
                    "key " + id + " is in a vault without " +
                        (key.recovery_level->find("Recoverable") == std::string::npos ? "soft delete and purge protection"
                                                                                       : "purge protection") +
                        " (recoveryLevel \"" + *key.recovery_level + "\")",
                    "A key that can be purged can be destroyed at once, and every byte it protects with it; Azure requires "
                    "soft delete and purge protection for customer-managed keys.",
                    hint);
}

}  // namespace cmk
