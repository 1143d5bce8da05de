#include "data_page.h"

#include "page_checksum.h"

#include <cstring>

namespace cmk {

namespace {

uint16_t load16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

constexpr size_t kChecksumAt = 8, kFlagsAt = 10, kLowerAt = 12, kUpperAt = 14, kSpecialAt = 16, kSizeVersionAt = 18;

}  // namespace

DataPageHeader read_data_page_header(const uint8_t* page) {
    return DataPageHeader{load16(page + kChecksumAt), load16(page + kFlagsAt),   load16(page + kLowerAt),
                          load16(page + kUpperAt),    load16(page + kSpecialAt), load16(page + kSizeVersionAt)};
}

bool data_page_is_all_zero(const uint8_t* page) {
    for (size_t i = 0; i < kDataPageBytes; i += 8) {
        uint64_t w;
        std::memcpy(&w, page + i, 8);
        if (w != 0) return false;
    }
    return true;
}

uint32_t data_page_generation(const uint8_t* page) {
    return (load16(page + kFlagsAt) & kDataPageGenerationMask) >> kDataPageGenerationShift;
}

DataPageKind data_page_kind(const uint8_t* page) {
    if (data_page_generation(page) != 0) return DataPageKind::Encrypted;
    if (data_page_is_all_zero(page)) return DataPageKind::New;
    return DataPageKind::Plaintext;
}

void data_page_tweak(uint32_t relfilenode, uint32_t blkno, uint8_t tweak[XtsCipher::kTweakBytes]) {
    std::memset(tweak, 0, XtsCipher::kTweakBytes);
    for (int i = 0; i < 4; i++) {
        tweak[i] = static_cast<uint8_t>(relfilenode >> (8 * i));
        tweak[4 + i] = static_cast<uint8_t>(blkno >> (8 * i));
    }
}

bool data_page_encrypt(XtsCipher& cipher, uint32_t generation, uint32_t relfilenode, uint32_t blkno,
                       bool with_checksum, const uint8_t* in, uint8_t* out) noexcept {
    if (generation == 0 || generation > 255 || data_page_kind(in) != DataPageKind::Plaintext) return false;
    uint8_t tweak[XtsCipher::kTweakBytes];
    data_page_tweak(relfilenode, blkno, tweak);
    if (out != in) std::memcpy(out, in, kDataPageClearBytes);
    if (!cipher.encrypt(in + kDataPageClearBytes, out + kDataPageClearBytes, kDataPageBytes - kDataPageClearBytes, tweak))
        return false;
    store16(out + kFlagsAt, static_cast<uint16_t>(load16(out + kFlagsAt) | (generation << kDataPageGenerationShift)));
    if (with_checksum) store16(out + kChecksumAt, pg_checksum_page(out, blkno));
    return true;
}

bool data_page_decrypt(XtsCipher& cipher, uint32_t relfilenode, uint32_t blkno, uint8_t* page) noexcept {
    if (data_page_generation(page) == 0) return false;
    uint8_t tweak[XtsCipher::kTweakBytes];
    data_page_tweak(relfilenode, blkno, tweak);
    if (!cipher.decrypt(page + kDataPageClearBytes, page + kDataPageClearBytes, kDataPageBytes - kDataPageClearBytes, tweak))
        return false;
    store16(page + kFlagsAt, static_cast<uint16_t>(load16(page + kFlagsAt) & ~kDataPageGenerationMask));
    return true;
}

const char* data_page_header_problem(const uint8_t* page) {
    DataPageHeader h = read_data_page_header(page);
    if (h.pagesize_version != kPageSizeVersion) return "page size and layout version are not 8192 and 4";
    if ((h.flags & ~(kPageValidFlagBits | kDataPageGenerationMask)) != 0) return "pd_flags has bits PostgreSQL does not use";
    if (h.lower < kPageHeaderBytes) return "pd_lower is inside the page header";
    if (h.lower > h.upper) return "pd_lower is beyond pd_upper";
    if (h.upper > h.special) return "pd_upper is beyond pd_special";
    if (h.special > kDataPageBytes) return "pd_special is beyond the page";
    if (h.special % 8 != 0) return "pd_special is not MAXALIGNed";
    return nullptr;
}

}  // namespace cmk
