// The WWW-Authenticate challenge of Key Vault (azure/challenge.h): any
// header parses or throws cmk::Error; a challenge accepted for a vault names
// a resource within that vault's domain.
#include "fuzz_target.h"

#include "azure/challenge.h"
#include "error.h"

#include <string>

CMK_FUZZ_TARGET(challenge) {
    std::string header(reinterpret_cast<const char*>(data), size);
    try {
        auto challenges = cmk::azure::parse_www_authenticate(header);
        for (const auto& c : challenges) CMK_FUZZ_CHECK(!c.scheme.empty());
    } catch (const cmk::Error&) {
    }
    const char* vault = "myvault.vault.azure.net";
    try {
        cmk::azure::KeyVaultChallenge c = cmk::azure::parse_key_vault_challenge(header, vault);
        CMK_FUZZ_CHECK(!c.scope.empty());
        CMK_FUZZ_CHECK(cmk::azure::host_within_domain(vault, c.resource_host));
    } catch (const cmk::Error&) {
    }
    size_t cut = size / 2;
    (void) cmk::azure::host_within_domain(header.substr(0, cut), header.substr(cut));
    (void) cmk::azure::tenant_from_authority(header);
    return 0;
}
