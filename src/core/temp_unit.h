// The format of the files cmk encrypts without a mark (temporary, spill,
// two-phase and pg_stat_statements files), written by the server (its
// temporary-file cipher in src/pg, through capi.h) and read by pg_cmk
// verify --check-keys; this is the only implementation of it.
//
// The file is cut into 8 kB units at aligned offsets; the bytes of a unit
// present in the file (the whole unit, or a shorter last one) are encrypted
// on their own, with the tweak
//   FNV-1a-64(path relative to the data directory, without a ".tmp"
//   suffix) (u64 LE) | unit number (u64 LE):
//   - 16 bytes or more: one AES-256-XTS data unit (ciphertext stealing for
//     lengths that are not a multiple of 16), temp-files XTS sub-key;
//   - 1 to 15 bytes: FF1 (NIST SP 800-38G, ff1.h) with AES-256 and the
//     temp-tails sub-key, over the 2n hex digits of the n bytes (radix 16,
//     high nibble first), the 16-byte tweak above.
// Both are length-preserving and deterministic per (key, tweak): two
// versions of a unit at the same place show which 16-byte blocks (XTS) or
// whether the whole short tail (FF1) are equal, nothing more. No keystream.
#pragma once
#include "core_guard.h"

#include "ff1.h"
#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace cmk {

constexpr size_t kTempUnitBytes = 8192;
constexpr size_t kTempTailKeyBytes = 32;

uint64_t temp_file_path_hash(const char* relative_path, size_t len);
inline uint64_t temp_file_path_hash(const std::string& relative_path) {
    return temp_file_path_hash(relative_path.data(), relative_path.size());
}
void temp_unit_tweak(uint64_t path_hash, uint64_t unit, uint8_t tweak[XtsCipher::kTweakBytes]);

class TempUnitCipher {
public:
    // xts_key: the temp-files sub-key (64 bytes); tail_key: the temp-tails
    // sub-key (32 bytes). Throws cmk::Error.
    TempUnitCipher(const uint8_t* xts_key, const uint8_t* tail_key);
    // len: the stored length of the unit (<= 8 kB); in and out may be the
    // same buffer. False only if the library refuses.
    bool encrypt(uint64_t path_hash, uint64_t unit, const uint8_t* in, uint8_t* out, size_t len) noexcept {
        return crypt(true, path_hash, unit, in, out, len);
    }
    bool decrypt(uint64_t path_hash, uint64_t unit, const uint8_t* in, uint8_t* out, size_t len) noexcept {
        return crypt(false, path_hash, unit, in, out, len);
    }

private:
    bool crypt(bool encrypt, uint64_t path_hash, uint64_t unit, const uint8_t* in, uint8_t* out, size_t len) noexcept;
    bool crypt_tail(bool encrypt, uint64_t path_hash, uint64_t unit, const uint8_t* in, uint8_t* out, size_t len) noexcept;
    XtsCipher xts_;
    Ff1 tails_;
};

}  // namespace cmk
