// pg_cmk verify --check-keys: with the keyring's keys unwrapped, check that
// what is marked encrypted really decrypts to what PostgreSQL wrote:
//   data pages  to a sane page header (data_page_header_problem), after the
//               key generation in pd_flags is found in the keyring
//   WAL pages   short-header pages to a zero header padding (bytes 20..23)
//               and xlp_rem_len 0 unless XLP_FIRST_IS_CONTRECORD is set
//               (the long header of a segment's first page is plaintext and
//               its data gives nothing as certain: not checked)
//   two-phase and pg_stat_statements dump files  unit 0 to their magic
// Every check returns an empty string when it passes, else what is wrong.
#pragma once
#include "core_guard.h"

#include "key_store.h"
#include "temp_unit.h"
#include "xts_cipher.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cmk {

constexpr uint32_t kTwoPhaseMagic = 0x57F94534;   // TWOPHASE_MAGIC
constexpr uint32_t kPgssDumpMagic = 0x20220408;   // PGSS_FILE_HEADER of PostgreSQL 15

// Ciphers of every generation of a keyring, per purpose.
class VerifyKeys {
public:
    explicit VerifyKeys(const OpenedKeys& keys);
    XtsCipher* data_pages(uint32_t generation) const;  // nullptr: not in the keyring
    XtsCipher* wal(uint32_t generation) const;
    TempUnitCipher* temp_files(uint32_t generation) const;
    // Current generation first, then the others.
    const std::vector<uint32_t>& generations() const { return order_; }

private:
    struct Ciphers {
        std::unique_ptr<XtsCipher> data_pages, wal;
        std::unique_ptr<TempUnitCipher> temp_files;
    };
    std::map<uint32_t, Ciphers> by_generation_;
    std::vector<uint32_t> order_;
};

// stored: an encrypted page as on disk (not modified).
std::string check_encrypted_data_page(const VerifyKeys& keys, const uint8_t* stored, uint32_t relfilenode,
                                      uint32_t blkno);
std::string check_encrypted_wal_page(const VerifyKeys& keys, const uint8_t* stored, bool* checked);
// The generation whose temp-files key decrypts unit 0 of the file at
// relative_path (its stored bytes, at most 8 kB) to a little-endian magic
// in its first 4 bytes; 0 if none does.
uint32_t temp_file_generation_with_magic(const VerifyKeys& keys, const std::string& relative_path,
                                         const uint8_t* unit0, size_t len, uint32_t magic);

}  // namespace cmk
