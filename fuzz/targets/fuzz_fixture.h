// The fixed key material of the fuzz targets that need keys (verify): one
// generation with a known DEK, so that seed files can hold pages that
// decrypt (fuzz/make_seeds.cpp writes them with the same keys).
#pragma once

#include "key_derivation.h"
#include "key_store.h"
#include "keyring.h"

namespace cmk_fuzz {

inline cmk::SecureBytes fixture_dek() {
    cmk::SecureBytes dek(cmk::kDekBytes);
    for (size_t i = 0; i < dek.size(); i++) dek[i] = static_cast<uint8_t>(0x5A ^ (i * 29));
    return dek;
}

constexpr uint32_t kFixtureGeneration = 3;
constexpr uint32_t kFixtureRelfilenode = 16384;

// The keyring (generation 3, current) and its unwrapped key.
inline cmk::OpenedKeys fixture_keys() {
    cmk::OpenedKeys keys;
    cmk::SecureBytes dek = fixture_dek();
    cmk::KeyringEntry e;
    e.generation = kFixtureGeneration;
    e.created_at = 1700000000;
    e.wrapped.algorithm = "RSA-OAEP-256";
    e.wrapped.kek_base = "file:/nonexistent/kek.pem";
    e.wrapped.kek_version = "00112233445566778899aabbccddeeff";
    e.wrapped.wrapped.assign(256, 0x42);
    e.check_value = cmk::derive_keys(dek.data(), dek.size()).check_value;
    keys.keyring.current_generation = kFixtureGeneration;
    keys.keyring.entries.push_back(e);
    keys.generations.push_back({kFixtureGeneration, std::move(dek)});
    keys.provider_name = "file";
    return keys;
}

inline cmk::Bytes fixture_keyring_file() {
    cmk::SecureBytes dek = fixture_dek();
    return cmk::encode_keyring(fixture_keys().keyring, cmk::derive_keys(dek.data(), dek.size()).keyring_mac);
}

// pg_control as the verify scanner reads it: PostgreSQL 15, 8 kB blocks,
// 1 GB segments, data checksums as asked.
inline std::vector<uint8_t> fixture_pg_control(bool checksums) {
    std::vector<uint8_t> c(8192, 0);
    auto put32 = [&](size_t at, uint32_t v) { for (int i = 0; i < 4; i++) c[at + i] = static_cast<uint8_t>(v >> (8 * i)); };
    put32(8, 1300);
    put32(216, 8192);
    put32(220, 131072);
    put32(252, checksums ? 1 : 0);
    return c;
}

// The files a verify input can become: its first byte chooses.
inline const char* fixture_file_for(uint8_t selector) {
    static const char* files[] = {
        "base/1/16384",   "base/1/16384_fsm", "global/1262",  "pg_wal/000000010000000000000001",
        "pg_twophase/0000ABCD", "pg_stat/pg_stat_statements.stat", "pg_replslot/s/xid-740-lsn-0-1000000.spill",
        "pg_stat_tmp/pgss_query_texts.stat", "base/1/16384.1", "pg_wal/000000010000000000000002"};
    return files[selector % (sizeof files / sizeof files[0])];
}

}  // namespace cmk_fuzz
