// FF1, the format-preserving encryption mode of NIST SP 800-38G (2016),
// §6.1 Algorithms 7 and 8, with AES as CIPH_K: a tweakable pseudorandom
// permutation of the strings of n numerals in base `radix`. cmk uses it for
// the short tails of temporary-file units (temp_unit.h), which XTS cannot
// take (fewer than 16 bytes) and a keystream must not take (two versions of
// a tail would XOR to the XOR of their plaintexts).
//
// This implementation keeps NUM_radix of each half in 64 bits: radix^v must
// be below 2^64 (v = n - floor(n/2)), which holds for every length cmk uses
// (radix 16, n <= 30) and NIST's sample vectors. Per the standard, radix is
// in [2, 2^16], n >= 2 and radix^n >= 100.
#pragma once
#include "core_guard.h"

#include "aes_block.h"

#include <cstddef>
#include <cstdint>

namespace cmk {

class Ff1 {
public:
    // backend: AES by which library (aes_block.h). Throws cmk::Error.
    Ff1(const uint8_t* key, size_t key_len, unsigned radix, XtsCipher::Backend backend = XtsCipher::Backend::kBest);
    // x and out: n numerals, each < radix; out may be x. False if the
    // length or a numeral is out of range, or AES failed.
    bool encrypt(const uint16_t* x, uint16_t* out, size_t n, const uint8_t* tweak, size_t tweak_len) noexcept;
    bool decrypt(const uint16_t* x, uint16_t* out, size_t n, const uint8_t* tweak, size_t tweak_len) noexcept;

    static constexpr size_t kMaxNumerals = 64;
    static constexpr size_t kMaxTweakBytes = 64;

private:
    bool crypt(bool encrypt, const uint16_t* x, uint16_t* out, size_t n, const uint8_t* tweak, size_t tweak_len) noexcept;
    AesBlockCipher aes_;
    unsigned radix_;
};

}  // namespace cmk
