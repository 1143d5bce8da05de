// The usability policy for a Key Vault key (key_usability.h).
#include "azure/key_usability.h"

#include "azure/encoding.h"
#include "error.h"

#include <algorithm>

namespace cmk::azure {

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

}  // namespace cmk::azure
