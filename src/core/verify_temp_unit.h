// The unit scheme of the files cmk encrypts without a mark (temporary,
// spill, two-phase and pg_stat_statements files), as the server's
// src/pg/temp_cipher.c writes them, for pg_cmk verify --check-keys: 8 kB
// units at aligned offsets; the bytes of a unit present in the file are one
// AES-256-XTS data unit with the temp-files sub-key and the tweak
// FNV-1a-64(path relative to the data directory, without a ".tmp" suffix)
// (u64 LE) | unit number (u64 LE); a unit shorter than 16 bytes is XORed
// with XTS(zeros) under the same tweak with bit 7 of byte 15 set.
#pragma once
#include "core_guard.h"

#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace cmk {

constexpr size_t kTempUnitBytes = 8192;

uint64_t temp_file_path_hash(const std::string& relative_path);
void temp_unit_tweak(uint64_t path_hash, uint64_t unit, bool short_unit, uint8_t tweak[XtsCipher::kTweakBytes]);
// In place; len is the stored length of the unit (<= 8 kB). False if
// OpenSSL refuses.
bool temp_unit_encrypt(XtsCipher& cipher, uint64_t path_hash, uint64_t unit, uint8_t* data, size_t len) noexcept;
bool temp_unit_decrypt(XtsCipher& cipher, uint64_t path_hash, uint64_t unit, uint8_t* data, size_t len) noexcept;

}  // namespace cmk
