// AES (128, 192 or 256-bit key) on single 16-byte blocks, the CIPH_K of
// NIST's modes (FF1, ff1.h), with the key schedule set up once. The library
// is XtsCipher's (xts_cipher.h): libgcrypt when it passed its load-time
// check, else OpenSSL. Not thread-safe; allocates nothing per block.
#pragma once
#include "core_guard.h"

#include "xts_cipher.h"

#include <cstddef>
#include <cstdint>

namespace cmk {

class AesBlockCipher {
public:
    // kBest: libgcrypt when XtsCipher may use it, else OpenSSL through its
    // provider functions (kOpenSsl), else plain EVP (kOpenSslEvp), as for
    // XTS; the key schedule is in locked memory that core dumps leave out,
    // except on the plain EVP path. Throws cmk::Error.
    AesBlockCipher(const uint8_t* key, size_t key_len, XtsCipher::Backend backend = XtsCipher::Backend::kBest);
    ~AesBlockCipher();
    AesBlockCipher(const AesBlockCipher&) = delete;
    AesBlockCipher& operator=(const AesBlockCipher&) = delete;

    // in and out may be the same block. False only if the library refuses.
    bool encrypt_block(const uint8_t in[16], uint8_t out[16]) noexcept;

private:
    bool encrypt_block_with_library(const uint8_t in[16], uint8_t out[16]) noexcept;
    void* gcrypt_ = nullptr;          // gcry_cipher_hd_t
    const void* prov_ = nullptr;      // xts_openssl::ProviderCipher
    void* prov_ctx_ = nullptr;
    void* evp_ = nullptr;             // EVP_CIPHER_CTX*
};

}  // namespace cmk
