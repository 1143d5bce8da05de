// Key Vault's answers (azure/key_bundle.h, azure/key_usability.h,
// azure/redaction.h, azure/pipeline.h):
// a KeyBundle (JSON Web Key and attributes), the Retry-After header of a
// throttled answer, and the redaction of secrets from a message.
#include "fuzz_target.h"

#include "azure/key_bundle.h"
#include "azure/key_usability.h"
#include "azure/redaction.h"
#include "azure/pipeline.h"
#include "error.h"
#include "http/http_client.h"

#include <string>

CMK_FUZZ_TARGET(key_vault_json) {
    std::string body(reinterpret_cast<const char*>(data), size);
    const std::string base = "https://myvault.vault.azure.net/keys/kek";
    try {
        cmk::KeyProperties p = cmk::azure::parse_key_bundle(body, base);
        try {
            cmk::azure::check_key_usable(p, 1800000000);
        } catch (const cmk::Error&) {
        }
    } catch (const cmk::Error&) {
    }
    cmk::HttpHeaders h;
    h.add("Retry-After", body.substr(0, 64));
    h.add("retry-after-ms", body.substr(0, 32));
    (void) cmk::azure::retry_after_delay(h, 1800000000);
    // Secrets (client secrets, tokens) of 8 characters or more are never left
    // in a message (secrets made of the replacement's own characters aside).
    std::string secret = body.substr(0, size / 3);
    std::string red = cmk::azure::redact(body, {"secret", secret});
    if (secret.size() >= 8 && secret.find_first_of("[]REDACT") == std::string::npos)
        CMK_FUZZ_CHECK(red.find(secret) == std::string::npos);
    return 0;
}
