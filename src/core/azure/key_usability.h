// The usability policy for a Key Vault key: what a key must be for cmk to
// wrap and unwrap with it now (type, size, enabled, validity dates, allowed
// operations), checked on every key read before it is used.
#pragma once
#include "core_guard.h"

#include "key_provider.h"

#include <cstdint>

namespace cmk::azure {

// Checks that the key can wrap and unwrap now: kty RSA or RSA-HSM, 2048, 3072
// or 4096 bits, enabled, nbf <= now < exp, key_ops allowing wrapKey and
// unwrapKey. Throws Error(KeyUnavailable) naming the first unmet condition.
void check_key_usable(const KeyProperties& key, int64_t now_unix);

}  // namespace cmk::azure
