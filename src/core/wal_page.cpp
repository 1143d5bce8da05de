// The encrypted WAL page format (wal_page.h).
#include "wal_page.h"

#include <cstring>

namespace cmk {

namespace {

uint16_t load16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
uint32_t load32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t load64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

void tweak_of(const uint8_t* page, uint8_t* tweak) {
    uint64_t addr = load64(page + 8);
    uint32_t tli = load32(page + 4);
    std::memset(tweak, 0, XtsCipher::kTweakBytes);
    for (int i = 0; i < 8; i++) tweak[i] = static_cast<uint8_t>(addr >> (8 * i));
    for (int i = 0; i < 4; i++) tweak[8 + i] = static_cast<uint8_t>(tli >> (8 * i));
}

size_t plaintext_bytes(const uint8_t* page) {
    return (load16(page + 2) & kWalLongHeaderFlag) ? kWalLongHeaderBytes : kWalHeaderBytes;
}

}  // namespace

uint32_t wal_page_generation(const uint8_t* page) {
    if (load16(page) != kWalPageMagic) return 0;
    return (load16(page + 2) & kWalGenerationMask) >> kWalGenerationShift;
}

bool wal_page_is_plaintext_wal(const uint8_t* page) {
    return load16(page) == kWalPageMagic && (load16(page + 2) & kWalGenerationMask) == 0;
}

bool wal_page_encrypt(XtsCipher& cipher, uint32_t generation, const uint8_t* in, uint8_t* out) noexcept {
    if (!wal_page_is_plaintext_wal(in) || generation == 0 || generation > 255) return false;
    uint8_t tweak[XtsCipher::kTweakBytes];
    tweak_of(in, tweak);
    size_t clear = plaintext_bytes(in);
    if (out != in) std::memcpy(out, in, clear);
    if (!cipher.encrypt(in + clear, out + clear, kWalPageBytes - clear, tweak)) return false;
    uint16_t info = static_cast<uint16_t>(load16(out + 2) | (generation << kWalGenerationShift));
    std::memcpy(out + 2, &info, 2);
    return true;
}

bool wal_page_decrypt(XtsCipher& cipher, uint8_t* page) noexcept {
    if (wal_page_generation(page) == 0) return false;
    uint16_t info = static_cast<uint16_t>(load16(page + 2) & ~kWalGenerationMask);
    std::memcpy(page + 2, &info, 2);
    uint8_t tweak[XtsCipher::kTweakBytes];
    tweak_of(page, tweak);
    size_t clear = plaintext_bytes(page);
    return cipher.decrypt(page + clear, page + clear, kWalPageBytes - clear, tweak);
}

}  // namespace cmk
