// PostgreSQL's data page checksum (src/include/storage/checksum_impl.h of
// PostgreSQL 15), for tools that check pages without a server: 32 parallel
// FNV-1a-like hashes over the page read as uint32 words (native order) with
// pd_checksum taken as zero, two rounds of zeros, xor-folded, xor the block
// number, reduced to 1..65535. With cmk the checksum on disk covers the
// stored (ciphertext) page, so it can be checked without a key.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <cstdint>

namespace cmk {

constexpr size_t kPageChecksumPageBytes = 8192;
constexpr size_t kPageChecksumOffset = 8;  // pd_checksum, u16

// The checksum PostgreSQL would store for this 8 kB page as block blkno of
// its relation (the stored pd_checksum is ignored). The page needs no
// particular alignment.
uint16_t pg_checksum_page(const uint8_t* page, uint32_t blkno);

}  // namespace cmk
