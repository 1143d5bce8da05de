// The temporary-class file unit format (temp_unit.h).
#include "temp_unit.h"

#include <cstring>

namespace cmk {

uint64_t temp_file_path_hash(const char* path, size_t len) {
    if (len > 4 && std::memcmp(path + len - 4, ".tmp", 4) == 0) len -= 4;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ static_cast<unsigned char>(path[i])) * 0x100000001b3ull;
    return h;
}

void temp_unit_tweak(uint64_t path_hash, uint64_t unit, uint8_t tweak[XtsCipher::kTweakBytes]) {
    for (int i = 0; i < 8; i++) {
        tweak[i] = static_cast<uint8_t>(path_hash >> (8 * i));
        tweak[8 + i] = static_cast<uint8_t>(unit >> (8 * i));
    }
}

TempUnitCipher::TempUnitCipher(const uint8_t* xts_key, const uint8_t* tail_key)
    : xts_(xts_key), tails_(tail_key, kTempTailKeyBytes, 16) {}

bool TempUnitCipher::crypt_tail(bool encrypt, uint64_t path_hash, uint64_t unit, const uint8_t* in, uint8_t* out,
                                size_t len) noexcept {
    uint8_t tweak[XtsCipher::kTweakBytes];
    uint16_t digits[2 * 15];
    temp_unit_tweak(path_hash, unit, tweak);
    for (size_t i = 0; i < len; i++) {
        digits[2 * i] = in[i] >> 4;
        digits[2 * i + 1] = in[i] & 0x0f;
    }
    bool ok = encrypt ? tails_.encrypt(digits, digits, 2 * len, tweak, sizeof tweak)
                      : tails_.decrypt(digits, digits, 2 * len, tweak, sizeof tweak);
    if (ok)
        for (size_t i = 0; i < len; i++) out[i] = static_cast<uint8_t>(digits[2 * i] << 4 | digits[2 * i + 1]);
    std::memset(digits, 0, sizeof digits);
    return ok;
}

bool TempUnitCipher::crypt(bool encrypt, uint64_t path_hash, uint64_t unit, const uint8_t* in, uint8_t* out,
                           size_t len) noexcept {
    if (len == 0) return true;
    if (len < 16) return crypt_tail(encrypt, path_hash, unit, in, out, len);
    uint8_t tweak[XtsCipher::kTweakBytes];
    temp_unit_tweak(path_hash, unit, tweak);
    return encrypt ? xts_.encrypt(in, out, len, tweak) : xts_.decrypt(in, out, len, tweak);
}

}  // namespace cmk
