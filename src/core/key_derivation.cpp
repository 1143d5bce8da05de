// Sub-keys of a DEK generation by HKDF-SHA256 labels (key_derivation.h).
#include "key_derivation.h"

#include "error.h"
#include "hkdf.h"

#include <cstring>
#include <openssl/rand.h>

namespace cmk {

namespace {

// Salt fixed per product: HKDF's extract step still separates cmk's keys from
// any other use of the same input, and labels separate the purposes.
const char kSalt[] = "cmk key hierarchy v1";

SecureBytes derive(const uint8_t* dek, size_t dek_len, const char* label, size_t len) {
    return hkdf_sha256(dek, dek_len, reinterpret_cast<const uint8_t*>(kSalt), sizeof kSalt - 1,
                       reinterpret_cast<const uint8_t*>(label), std::strlen(label), len);
}

}  // namespace

DerivedKeys derive_keys(const uint8_t* dek, size_t dek_len) {
    if (dek_len != kDekBytes)
        throw Error(ErrorKind::KeyringCorrupt, "a data encryption key must be 32 bytes, got " + std::to_string(dek_len));
    DerivedKeys keys;
    keys.data_pages = derive(dek, dek_len, "cmk data pages aes-256-xts", 64);
    keys.wal = derive(dek, dek_len, "cmk wal aes-256-xts", 64);
    keys.temp_files = derive(dek, dek_len, "cmk temp files aes-256-xts", 64);
    keys.temp_tails = derive(dek, dek_len, "cmk temp file tails ff1 aes-256", 32);
    keys.keyring_mac = derive(dek, dek_len, "cmk keyring hmac-sha256", kMacKeyBytes);
    SecureBytes kcv = derive(dek, dek_len, "cmk key check value", kKcvBytes);
    std::memcpy(keys.check_value.data(), kcv.data(), kKcvBytes);
    return keys;
}

SecureBytes generate_dek() {
    SecureBytes dek(kDekBytes);
    if (RAND_priv_bytes(dek.data(), static_cast<int>(dek.size())) != 1) throw_openssl_error("cannot generate a DEK");
    return dek;
}

}  // namespace cmk
