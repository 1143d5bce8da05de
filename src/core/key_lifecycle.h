// The KEK's life after start-up (DESIGN.md "Key lifecycle"): checking that
// the KEK that wraps the keyring still works, re-wrapping every generation
// under a new KEK (rotation), and installing a keyring that arrived through
// WAL on a standby. The DEKs themselves never change here.
#pragma once
#include "core_guard.h"

#include "key_store.h"

#include <string>
#include <vector>

namespace cmk {

struct KekCheck {
    KeyProperties current;        // the version that wraps the keyring
    std::string newest_version;   // of the same key, when asked and readable; may equal current.version
};

// Reads the current KEK's properties (that exact version) and unwraps the
// current generation, which must give `current_dek`. With want_newest, also
// reads the key without version to learn its newest enabled version (an
// error there is not the current key's problem and is ignored).
KekCheck check_kek(const Keyring& keyring, const SecureBytes& current_dek, const ProviderSettings& settings,
                   bool want_newest);

// Unwraps every generation through the key that wraps it now and compares it
// with the DEK in memory; throws when the current key does not work.
void prove_possession(const Keyring& keyring, const std::vector<UnwrappedGeneration>& deks, const ProviderSettings& settings);

// A new keyring whose every generation is wrapped by new_key_url (with the
// version it names, or the newest), each checked by unwrapping again. In
// this order: the policy allows new_key_url (nothing read or requested
// before), the current key unwraps every generation (prove_possession), the
// new key is usable and purge-protected, then each generation is wrapped
// and verified. Errors about a file: target are one message, whatever the
// file's state. The DEKs come from `deks` and must match the keyring's key
// check values.
Keyring rewrap_keyring(const Keyring& keyring, const std::vector<UnwrappedGeneration>& deks,
                       const std::string& new_key_url, const ProviderSettings& settings);

// A new DEK generation wrapped by the current KEK (same key and version),
// made current. Throws when 255 generations exist.
Keyring add_generation(const Keyring& keyring, std::vector<UnwrappedGeneration>& deks, const ProviderSettings& settings);

// The keyring without `generation` (never the current one).
Keyring remove_generation(const Keyring& keyring, uint32_t generation);

// A keyring change (the bytes a WAL record carries) against the keys held:
// the generations it has whose keys are not in `deks`. Structure only.
std::vector<uint32_t> unknown_generations(const Keyring& next, const std::vector<UnwrappedGeneration>& deks);

// Unwraps those generations with the KEKs the keyring records, each checked
// against its key check value.
std::vector<UnwrappedGeneration> unwrap_generations(const Keyring& next, const std::vector<uint32_t>& generations,
                                                    const ProviderSettings& settings);

// Verifies a keyring change against the keys held, which must cover every
// generation it has: each key check value, then the MAC. Returns the file to
// write: the keyring marked as installed by the WAL record ending at
// (timeline, lsn), which also makes current a generation that becomes
// current (previous_current is the one it replaces). No provider is called.
Bytes finish_keyring_change(const Bytes& record, const std::vector<UnwrappedGeneration>& deks, uint32_t previous_current,
                            uint32_t timeline, uint64_t lsn);

}  // namespace cmk
