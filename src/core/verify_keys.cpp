// pg_cmk verify --check-keys: marked units decrypt to sane content
// (verify_keys.h).
#include "verify_keys.h"

#include "data_page.h"
#include "key_derivation.h"
#include "temp_unit.h"
#include "wal_page.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace cmk {

namespace {

uint16_t load16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
uint32_t load32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }

constexpr uint16_t kXlpFirstIsContrecord = 0x0001;
constexpr size_t kWalRemLenAt = 16, kWalPaddingAt = 20, kWalShortHeaderBytes = 24;

}  // namespace

VerifyKeys::VerifyKeys(const OpenedKeys& keys) {
    for (const auto& g : keys.generations) {
        DerivedKeys d = derive_keys(g.dek.data(), g.dek.size());
        Ciphers& c = by_generation_[g.generation];
        c.data_pages = std::make_unique<XtsCipher>(d.data_pages.data());
        c.wal = std::make_unique<XtsCipher>(d.wal.data());
        c.temp_files = std::make_unique<TempUnitCipher>(d.temp_files.data(), d.temp_tails.data());
        if (g.generation != keys.keyring.current_generation) order_.push_back(g.generation);
    }
    if (by_generation_.count(keys.keyring.current_generation)) order_.insert(order_.begin(), keys.keyring.current_generation);
}

XtsCipher* VerifyKeys::data_pages(uint32_t generation) const {
    auto it = by_generation_.find(generation);
    return it == by_generation_.end() ? nullptr : it->second.data_pages.get();
}

XtsCipher* VerifyKeys::wal(uint32_t generation) const {
    auto it = by_generation_.find(generation);
    return it == by_generation_.end() ? nullptr : it->second.wal.get();
}

TempUnitCipher* VerifyKeys::temp_files(uint32_t generation) const {
    auto it = by_generation_.find(generation);
    return it == by_generation_.end() ? nullptr : it->second.temp_files.get();
}

std::string check_encrypted_data_page(const VerifyKeys& keys, const uint8_t* stored, uint32_t relfilenode,
                                      uint32_t blkno) {
    uint32_t generation = data_page_generation(stored);
    XtsCipher* cipher = keys.data_pages(generation);
    if (!cipher) return "encrypted with key generation " + std::to_string(generation) + ", which the keyring does not hold";
    uint8_t page[kDataPageBytes];
    std::memcpy(page, stored, kDataPageBytes);
    if (!data_page_decrypt(*cipher, relfilenode, blkno, page)) return "could not be decrypted";
    if (const char* problem = data_page_header_problem(page)) return std::string("decrypts to a bad page header: ") + problem;
    return {};
}

std::string check_encrypted_wal_page(const VerifyKeys& keys, const uint8_t* stored, bool* checked) {
    *checked = false;
    uint32_t generation = wal_page_generation(stored);
    XtsCipher* cipher = keys.wal(generation);
    if (!cipher) return "encrypted with key generation " + std::to_string(generation) + ", which the keyring does not hold";
    if (load16(stored + 2) & kWalLongHeaderFlag) return {};
    uint8_t page[kWalPageBytes];
    std::memcpy(page, stored, kWalPageBytes);
    if (!wal_page_decrypt(*cipher, page)) return "could not be decrypted";
    *checked = true;
    if (load32(page + kWalPaddingAt) != 0 ||
        (!(load16(page + 2) & kXlpFirstIsContrecord) && load32(page + kWalRemLenAt) != 0))
        return "decrypts to a bad WAL page header";
    static_assert(kWalPaddingAt + 4 == kWalShortHeaderBytes, "the padding ends the short header");
    return {};
}

uint32_t temp_file_generation_with_magic(const VerifyKeys& keys, const std::string& relative_path,
                                         const uint8_t* unit0, size_t len, uint32_t magic) {
    if (len < 4) return 0;
    len = std::min(len, kTempUnitBytes);
    uint64_t hash = temp_file_path_hash(relative_path);
    std::vector<uint8_t> buf(len);
    for (uint32_t generation : keys.generations()) {
        std::memcpy(buf.data(), unit0, len);
        if (!keys.temp_files(generation)->decrypt(hash, 0, buf.data(), buf.data(), len)) continue;
        uint8_t le[4] = {static_cast<uint8_t>(magic), static_cast<uint8_t>(magic >> 8), static_cast<uint8_t>(magic >> 16),
                         static_cast<uint8_t>(magic >> 24)};
        if (std::memcmp(buf.data(), le, 4) == 0) return generation;
    }
    return 0;
}

}  // namespace cmk
