// Start-up of the key hierarchy: open $PGDATA/pg_cmk/keyring and unwrap every
// generation, or create the keyring on a cluster that has never had one.
// Nothing is ever regenerated over an existing keyring; every failure leaves
// the data directory untouched.
#pragma once
#include "core_guard.h"

#include "keyring.h"

#include <functional>
#include <string>
#include <vector>

namespace cmk {

struct UnwrappedGeneration {
    uint32_t generation;
    SecureBytes dek;
};

struct OpenedKeys {
    Keyring keyring;
    std::vector<UnwrappedGeneration> generations;
    std::string provider_name;
    bool created = false;
    std::vector<std::string> warnings;
};

std::string keyring_path(const std::string& datadir);

// encrypted_data_exists is asked only when there is no keyring: a cluster
// with encrypted pages but no keyring must not get a new one.
OpenedKeys open_or_create_keys(const std::string& datadir, const std::string& key_url,
                               const ProviderSettings& settings, const std::function<bool()>& encrypted_data_exists);

// Opens an existing keyring with the KEK it records (front-end tools); never
// creates one.
OpenedKeys open_existing_keys(const std::string& datadir, const ProviderSettings& settings);
// The same for a keyring file anywhere (a copy kept beside a WAL archive).
OpenedKeys open_keyring_file(const std::string& keyring_file, const ProviderSettings& settings);

// Unwraps one entry and checks it against its key check value.
SecureBytes unwrap_and_check(KeyProvider& provider, const KeyringEntry& entry);

}  // namespace cmk
