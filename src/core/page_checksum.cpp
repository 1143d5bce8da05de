// PostgreSQL 15's data page checksum, for the tools (page_checksum.h).
#include "page_checksum.h"

#include <cstring>

namespace cmk {

namespace {

constexpr int kSums = 32;
constexpr uint32_t kFnvPrime = 16777619;
constexpr size_t kWords = kPageChecksumPageBytes / sizeof(uint32_t);

constexpr uint32_t kBaseOffsets[kSums] = {
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756};

inline void comp(uint32_t& sum, uint32_t value) {
    uint32_t tmp = sum ^ value;
    sum = tmp * kFnvPrime ^ (tmp >> 17);
}

}  // namespace

uint16_t pg_checksum_page(const uint8_t* page, uint32_t blkno) {
    uint32_t words[kWords];
    std::memcpy(words, page, kPageChecksumPageBytes);
    // pd_checksum (bytes 8..9) counts as zero: it is the low or high half of
    // word 2 depending on byte order, so clear those bytes, not the word.
    std::memset(reinterpret_cast<uint8_t*>(words) + kPageChecksumOffset, 0, 2);

    uint32_t sums[kSums];
    std::memcpy(sums, kBaseOffsets, sizeof sums);
    for (size_t i = 0; i < kWords / kSums; i++)
        for (int j = 0; j < kSums; j++) comp(sums[j], words[i * kSums + j]);
    for (int round = 0; round < 2; round++)
        for (int j = 0; j < kSums; j++) comp(sums[j], 0);
    uint32_t result = 0;
    for (int j = 0; j < kSums; j++) result ^= sums[j];
    result ^= blkno;
    return static_cast<uint16_t>((result % 65535) + 1);
}

}  // namespace cmk
