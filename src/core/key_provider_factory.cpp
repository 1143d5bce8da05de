// cmk::make_key_provider: a file: KEK goes to the local provider, an https:
// key identifier to Azure Key Vault / Managed HSM.
#include "key_provider.h"

#include "azure/key_vault_key_provider.h"
#include "error.h"
#include "file_key_provider.h"

namespace cmk {

std::unique_ptr<KeyProvider> make_key_provider(const KeyUrl& url, const ProviderSettings& settings) {
    switch (url.kind) {
    case KeyUrl::Kind::File: return make_file_key_provider(url, settings);
    case KeyUrl::Kind::KeyVault: return azure::make_key_vault_key_provider(url, settings);
    }
    throw Error(ErrorKind::Internal, "unknown key URL kind");
}

}  // namespace cmk
