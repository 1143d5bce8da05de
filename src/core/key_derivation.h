// Sub-keys of one DEK generation. Each use has its own HKDF-SHA256 label, so
// a key is never used for two purposes (DESIGN.md "Key hierarchy").
#pragma once
#include "core_guard.h"

#include "secure_bytes.h"

#include <array>
#include <cstdint>

namespace cmk {

constexpr size_t kDekBytes = 32;
constexpr size_t kKcvBytes = 16;
constexpr size_t kMacKeyBytes = 32;

struct DerivedKeys {
    SecureBytes data_pages;   // 64 bytes, AES-256-XTS for relation pages
    SecureBytes wal;          // 64 bytes, AES-256-XTS for WAL pages
    SecureBytes temp_files;   // 64 bytes, AES-256-XTS for temp, spill and 2PC files
    SecureBytes temp_tails;   // 32 bytes, AES-256 of FF1 for their units shorter than 16 bytes
    SecureBytes keyring_mac;  // 32 bytes, HMAC-SHA256 key of the keyring
    std::array<uint8_t, kKcvBytes> check_value;  // proves an unwrap gave the right DEK
};

DerivedKeys derive_keys(const uint8_t* dek, size_t dek_len);

// 32 bytes from the system's CSPRNG (RAND_priv_bytes).
SecureBytes generate_dek();

}  // namespace cmk
