// Vault safety, as Azure requires of a key that protects customer data:
// soft delete and purge protection (the key bundle's attributes.recoveryLevel).
// A key that can be purged can be destroyed at once, and every byte it
// protects with it; a key without soft delete is gone with one DELETE.
#pragma once
#include "core_guard.h"

#include "key_provider.h"

#include <string>

namespace cmk {

// Whether a Key Vault DeletionRecoveryLevel keeps a deleted key recoverable
// and unpurgeable: Recoverable, Recoverable+ProtectedSubscription,
// CustomizedRecoverable, CustomizedRecoverable+ProtectedSubscription.
// Every other value (Purgeable, *+Purgeable, unknown ones) is not.
bool recovery_level_is_protected(const std::string& level);

// Throws Error(Config) for a Key Vault key whose vault lacks soft delete and
// purge protection (or that reports no recoveryLevel), unless allow_purgeable.
// A file key has no such property and passes.
void require_purge_protection(const KeyUrl& url, const KeyProperties& key, bool allow_purgeable);

}  // namespace cmk
