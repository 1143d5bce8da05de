// The encrypted relation page format (DESIGN.md "Data pages"): the one
// implementation of it, used by the server's smgr wrappers (through
// cmk_data_page_* in capi.h, from src/pg's page cipher), by pg_cmk verify
// and by the tests:
//   bytes [0, 16)    plaintext header: pd_lsn (8), pd_checksum (2),
//                    pd_flags (2), pd_lower (2), pd_upper (2), native order;
//                    the key generation sits in pd_flags bits 8..15
//                    (0 = plaintext page)
//   bytes [16, 8192) AES-256-XTS with the data-pages sub-key, tweak =
//                    relfilenode (u32 LE) | block number (u32 LE) | zeros
// An all-zero page is a new page and is never encrypted. With data
// checksums on, pd_checksum on disk is PostgreSQL's checksum of the stored
// (ciphertext) page, generation bits included.
#pragma once
#include "core_guard.h"

#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>

namespace cmk {

constexpr size_t kDataPageBytes = 8192;
constexpr size_t kDataPageClearBytes = 16;
constexpr uint16_t kDataPageGenerationMask = 0xFF00;  // CMK_PD_GENERATION_MASK
constexpr unsigned kDataPageGenerationShift = 8;
constexpr size_t kPageHeaderBytes = 24;           // SizeOfPageHeaderData
constexpr uint16_t kPageValidFlagBits = 0x0007;   // PD_VALID_FLAG_BITS
constexpr uint16_t kPageSizeVersion = 8192 | 4;   // BLCKSZ | PG_PAGE_LAYOUT_VERSION

enum class DataPageKind { New, Plaintext, Encrypted };

// PostgreSQL's page checksum of an 8 kB page as block blkno, with
// pg_checksum_page's signature (it zeroes pd_checksum while it computes,
// hence not const): the server passes its own build (AVX2 where the CPU has
// it); nullptr where data checksums are off.
using PageChecksumFn = uint16_t (*)(char* page, uint32_t blkno);
// The core's build of it (page_checksum.h), for the tools.
uint16_t core_page_checksum(char* page, uint32_t blkno);

// Header fields, read in native byte order as PostgreSQL writes them.
struct DataPageHeader {
    uint16_t checksum, flags, lower, upper, special, pagesize_version;
};
DataPageHeader read_data_page_header(const uint8_t* page);

DataPageKind data_page_kind(const uint8_t* page);
uint32_t data_page_generation(const uint8_t* page);  // 0 = not encrypted
bool data_page_is_all_zero(const uint8_t* page);
void data_page_tweak(uint32_t relfilenode, uint32_t blkno, uint8_t tweak[XtsCipher::kTweakBytes]);

// Encrypts a plaintext page into out (may equal in) with generation g:
// header copied, bytes [16, 8192) encrypted, g set in pd_flags, and with a
// checksum function pd_checksum set over the result. False for new
// (all-zero) pages, already-encrypted pages, g outside 1..255 or a cipher
// failure. The server's write path: no allocation, no lock, no system call.
bool data_page_encrypt(XtsCipher& cipher, uint32_t generation, uint32_t relfilenode, uint32_t blkno,
                       PageChecksumFn checksum, const uint8_t* in, uint8_t* out) noexcept;
inline bool data_page_encrypt(XtsCipher& cipher, uint32_t generation, uint32_t relfilenode, uint32_t blkno,
                              bool with_checksum, const uint8_t* in, uint8_t* out) noexcept {
    return data_page_encrypt(cipher, generation, relfilenode, blkno, with_checksum ? core_page_checksum : nullptr, in, out);
}
// Decrypts an encrypted page in place and clears its generation bits. With
// a checksum function (the server's read path, data checksums on) the
// stored checksum is checked over the ciphertext and pd_checksum is set to
// the plaintext's checksum, or to a value sure to fail when the ciphertext's
// did not match, so that PostgreSQL reports the page as it reports a
// corrupt plaintext page; without one pd_checksum is left as stored. False
// if it was not encrypted or the cipher failed.
bool data_page_decrypt(XtsCipher& cipher, uint32_t relfilenode, uint32_t blkno, uint8_t* page,
                       PageChecksumFn checksum = nullptr) noexcept;

// nullptr if a decrypted (or plaintext) page has a header PostgreSQL would
// accept: layout version 4 for 8 kB pages, only PostgreSQL's flag bits,
// SizeOfPageHeaderData <= pd_lower <= pd_upper <= pd_special <= 8192 and
// pd_special MAXALIGNed; otherwise what is wrong.
const char* data_page_header_problem(const uint8_t* page);

}  // namespace cmk
