#include "verify_temp_unit.h"

#include <cstring>

namespace cmk {

uint64_t temp_file_path_hash(const std::string& relative_path) {
    size_t len = relative_path.size();
    if (len > 4 && relative_path.compare(len - 4, 4, ".tmp") == 0) len -= 4;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ static_cast<unsigned char>(relative_path[i])) * 0x100000001b3ull;
    return h;
}

void temp_unit_tweak(uint64_t path_hash, uint64_t unit, bool short_unit, uint8_t tweak[XtsCipher::kTweakBytes]) {
    for (int i = 0; i < 8; i++) {
        tweak[i] = static_cast<uint8_t>(path_hash >> (8 * i));
        tweak[8 + i] = static_cast<uint8_t>(unit >> (8 * i));
    }
    if (short_unit) tweak[15] |= 0x80;
}

namespace {

bool crypt(XtsCipher& cipher, uint64_t path_hash, uint64_t unit, uint8_t* data, size_t len, bool encrypt) noexcept {
    uint8_t tweak[XtsCipher::kTweakBytes];
    if (len == 0) return true;
    if (len < 16) {
        uint8_t zeros[16] = {0}, stream[16];
        temp_unit_tweak(path_hash, unit, true, tweak);
        if (!cipher.encrypt(zeros, stream, sizeof stream, tweak)) return false;
        for (size_t i = 0; i < len; i++) data[i] ^= stream[i];
        return true;
    }
    temp_unit_tweak(path_hash, unit, false, tweak);
    return encrypt ? cipher.encrypt(data, data, len, tweak) : cipher.decrypt(data, data, len, tweak);
}

}  // namespace

bool temp_unit_encrypt(XtsCipher& cipher, uint64_t path_hash, uint64_t unit, uint8_t* data, size_t len) noexcept {
    return crypt(cipher, path_hash, unit, data, len, true);
}

bool temp_unit_decrypt(XtsCipher& cipher, uint64_t path_hash, uint64_t unit, uint8_t* data, size_t len) noexcept {
    return crypt(cipher, path_hash, unit, data, len, false);
}

}  // namespace cmk
