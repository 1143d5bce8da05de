// The encrypted relation page format (data_page.h).
#include "data_page.h"

#include "page_checksum.h"

#include <endian.h>

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
    // Only a page with pd_upper = 0 can be all zeros: the scan is skipped
    // for every page PostgreSQL has initialised.
    if (load16(page + kUpperAt) == 0 && data_page_is_all_zero(page)) return DataPageKind::New;
    return DataPageKind::Plaintext;
}

uint16_t core_page_checksum(char* page, uint32_t blkno) {
    return pg_checksum_page(reinterpret_cast<const uint8_t*>(page), blkno);
}

void data_page_tweak(uint32_t relfilenode, uint32_t blkno, uint8_t tweak[XtsCipher::kTweakBytes]) {
    // Little-endian, as IEEE 1619 numbers its data units: two word stores
    // where a byte loop cost ~30 instructions a page.
    const uint32_t words[4] = {htole32(relfilenode), htole32(blkno), 0, 0};
    static_assert(sizeof(words) == XtsCipher::kTweakBytes, "the tweak is four words");
    std::memcpy(tweak, words, sizeof(words));
}

bool data_page_encrypt(XtsCipher& cipher, uint32_t generation, uint32_t relfilenode, uint32_t blkno,
                       PageChecksumFn checksum, const uint8_t* in, uint8_t* out) noexcept {
    if (generation == 0 || generation > 255 || data_page_kind(in) != DataPageKind::Plaintext) return false;
    uint8_t tweak[XtsCipher::kTweakBytes];
    data_page_tweak(relfilenode, blkno, tweak);
    if (out != in) std::memcpy(out, in, kDataPageClearBytes);
    if (!cipher.encrypt(in + kDataPageClearBytes, out + kDataPageClearBytes, kDataPageBytes - kDataPageClearBytes, tweak))
        return false;
    store16(out + kFlagsAt, static_cast<uint16_t>(load16(out + kFlagsAt) | (generation << kDataPageGenerationShift)));
    if (checksum) store16(out + kChecksumAt, checksum(reinterpret_cast<char*>(out), blkno));
    return true;
}

bool data_page_decrypt(XtsCipher& cipher, uint32_t relfilenode, uint32_t blkno, uint8_t* page,
                       PageChecksumFn checksum) noexcept {
    if (data_page_generation(page) == 0) return false;
    bool ciphertext_ok = !checksum || checksum(reinterpret_cast<char*>(page), blkno) == load16(page + kChecksumAt);
    uint8_t tweak[XtsCipher::kTweakBytes];
    data_page_tweak(relfilenode, blkno, tweak);
    if (!cipher.decrypt(page + kDataPageClearBytes, page + kDataPageClearBytes, kDataPageBytes - kDataPageClearBytes, tweak))
        return false;
    store16(page + kFlagsAt, static_cast<uint16_t>(load16(page + kFlagsAt) & ~kDataPageGenerationMask));
    if (checksum) {
        uint16_t plain = checksum(reinterpret_cast<char*>(page), blkno);
        store16(page + kChecksumAt, ciphertext_ok ? plain : static_cast<uint16_t>(plain ^ 1));
    }
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
