// $PGDATA/pg_cmk/keyring: every DEK generation, wrapped by the KEK.
//
// Format version 2, integers big-endian:
//   magic "CMKRING\n" | u16 format version | u16 flags (0) | u32 current generation | u32 entry count |
//   u32 installed timeline | u64 installed LSN
//   entry: u32 generation | u64 created at (unix s) | u8 len + wrap algorithm |
//          u16 len + KEK URL without version | u16 len + KEK version |
//          u16 len + wrapped DEK | 16-byte key check value | u64 current from LSN
//   HMAC-SHA256 of everything before it, keyed with the MAC sub-key of the
//   current generation.
// Version 1 (still read) is the same without the two installed fields and
// without the per-entry current from LSN (they read as 0).
// installed timeline/LSN: end of the WAL record that installed this keyring
// (0 for a keyring made at first start); replaying an older record changes
// nothing.
// current from LSN: end of the WAL record that made this generation current
// (0: the first generation, or unknown); WAL pages from the start of the
// second segment after it are encrypted with it (DESIGN.md).
// The file is only ever replaced whole (tmp + fsync + rename + fsync dir).
#pragma once
#include "core_guard.h"

#include "key_derivation.h"
#include "key_provider.h"
#include "secure_bytes.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cmk {

constexpr uint16_t kKeyringFormatVersion = 2;     // written
constexpr uint16_t kKeyringOldestFormatVersion = 1;  // still read
constexpr uint32_t kMaxGenerations = 255;  // generation lives in 8 spare pd_flags bits

struct KeyringEntry {
    uint32_t generation = 0;
    uint64_t created_at = 0;
    WrappedDek wrapped;
    std::array<uint8_t, kKcvBytes> check_value{};
    uint64_t current_from_lsn = 0;
};

struct Keyring {
    uint32_t current_generation = 0;
    std::vector<KeyringEntry> entries;
    uint32_t installed_timeline = 0;
    uint64_t installed_lsn = 0;

    const KeyringEntry& entry(uint32_t generation) const;  // throws KeyringCorrupt
    const KeyringEntry& current() const { return entry(current_generation); }
};

Bytes encode_keyring(const Keyring& keyring, const SecureBytes& mac_key);
// Checks structure only (magic, version, lengths, no trailing bytes); the MAC
// needs the unwrapped current DEK: see verify_keyring_mac.
Keyring decode_keyring(const Bytes& file);
void verify_keyring_mac(const Bytes& file, const SecureBytes& mac_key);

// Files.
std::optional<Bytes> read_file_if_exists(const std::string& path);
void write_file_atomically(const std::string& path, const Bytes& contents, unsigned mode);

}  // namespace cmk
