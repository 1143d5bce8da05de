// The encrypted WAL page format (DESIGN.md "WAL"), shared by the server glue
// and pg_cmk. A PostgreSQL 15 WAL page starts with xlp_magic (u16),
// xlp_info (u16), xlp_tli (u32), xlp_pageaddr (u64), native byte order;
// those 16 bytes stay plaintext, the key generation goes into xlp_info bits
// 8..15, and bytes [16, 8192) are AES-256-XTS with the tweak
// (xlp_pageaddr, xlp_tli). The first page of a segment has the long header
// (XLP_LONG_HEADER): its 40 bytes (system identifier, segment size, block
// size) stay plaintext too, because archivers such as pgBackRest check the
// system identifier of every segment they push; the data unit is then
// [40, 8192), 8152 bytes, with XTS ciphertext stealing. The glue checks
// these constants against PostgreSQL's headers at compile time.
#pragma once
#include "core_guard.h"

#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>

namespace cmk {

constexpr size_t kWalPageBytes = 8192;
constexpr size_t kWalHeaderBytes = 16;
constexpr size_t kWalLongHeaderBytes = 40;     // SizeOfXLogLongPHD
constexpr uint16_t kWalLongHeaderFlag = 0x0002;  // XLP_LONG_HEADER
constexpr uint16_t kWalPageMagic = 0xD110;  // XLOG_PAGE_MAGIC of PostgreSQL 15
constexpr uint16_t kWalGenerationMask = 0xFF00;
constexpr unsigned kWalGenerationShift = 8;

// 0 for a plaintext page or a page that is not a WAL page.
uint32_t wal_page_generation(const uint8_t* page);
bool wal_page_is_plaintext_wal(const uint8_t* page);
// Encrypts a plaintext WAL page into out (may equal in) with generation g.
bool wal_page_encrypt(XtsCipher& cipher, uint32_t generation, const uint8_t* in, uint8_t* out) noexcept;
// Decrypts an encrypted page in place and clears its generation.
bool wal_page_decrypt(XtsCipher& cipher, uint8_t* page) noexcept;

}  // namespace cmk
