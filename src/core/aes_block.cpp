// AES on single blocks for FF1, by XtsCipher's library (aes_block.h).
#include "aes_block.h"

#include "error.h"
#include "secure_memory.h"
#include "xts_openssl.h"

#include <gcrypt.h>
#include <openssl/evp.h>

namespace cmk {

AesBlockCipher::AesBlockCipher(const uint8_t* key, size_t key_len, XtsCipher::Backend backend) {
    if (key_len != 16 && key_len != 24 && key_len != 32)
        throw Error(ErrorKind::Internal, "an AES key is 16, 24 or 32 bytes, not " + std::to_string(key_len));
    bool gcrypt = XtsCipher::available(XtsCipher::Backend::kLibgcrypt);
    if (backend == XtsCipher::Backend::kLibgcrypt && !gcrypt)
        throw Error(ErrorKind::Internal, "libgcrypt's AES is not available in this process");
    if (gcrypt && (backend == XtsCipher::Backend::kBest || backend == XtsCipher::Backend::kLibgcrypt)) {
        int algo = key_len == 16 ? GCRY_CIPHER_AES128 : key_len == 24 ? GCRY_CIPHER_AES192 : GCRY_CIPHER_AES256;
        gcry_cipher_hd_t h = nullptr;
        // In cmk's locked arena, as XTS handles (xts_libgcrypt.cpp).
        if (gcry_cipher_open(&h, algo, GCRY_CIPHER_MODE_ECB, GCRY_CIPHER_SECURE) != 0)
            throw Error(ErrorKind::Crypto, "cannot set up AES with libgcrypt");
        gcry_error_t e = gcry_cipher_setkey(h, key, key_len);
        secure_memory::wipe_stack_below();
        if (e != 0) {
            gcry_cipher_close(h);
            throw Error(ErrorKind::Crypto, "cannot set up AES with libgcrypt");
        }
        gcrypt_ = h;
        return;
    }
    const char* name = key_len == 16 ? "AES-128-ECB" : key_len == 24 ? "AES-192-ECB" : "AES-256-ECB";
    const xts_openssl::ProviderCipher* f =
        backend == XtsCipher::Backend::kOpenSslEvp ? nullptr : xts_openssl::provider_cipher(name);
    if (f) {
        prov_ = f;
        prov_ctx_ = xts_openssl::provider_context(*f, key, key_len, true);
        secure_memory::wipe_stack_below();
        return;
    }
    const EVP_CIPHER* cipher = key_len == 16 ? EVP_aes_128_ecb() : key_len == 24 ? EVP_aes_192_ecb() : EVP_aes_256_ecb();
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    if (EVP_EncryptInit_ex(ctx, cipher, nullptr, key, nullptr) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        throw_openssl_error("cannot set up AES");
    }
    evp_ = ctx;
}

AesBlockCipher::~AesBlockCipher() {
    // All three wipe the key schedule.
    if (gcrypt_) gcry_cipher_close(static_cast<gcry_cipher_hd_t>(gcrypt_));
    if (prov_) static_cast<const xts_openssl::ProviderCipher*>(prov_)->freectx(prov_ctx_);
    EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(evp_));
}

bool AesBlockCipher::encrypt_block(const uint8_t in[16], uint8_t out[16]) noexcept {
    bool ok = encrypt_block_with_library(in, out);
    secure_memory::clear_vector_registers();  // round keys stay there otherwise
    return ok;
}

bool AesBlockCipher::encrypt_block_with_library(const uint8_t in[16], uint8_t out[16]) noexcept {
    if (gcrypt_) {
        auto h = static_cast<gcry_cipher_hd_t>(gcrypt_);
        return (in == out ? gcry_cipher_encrypt(h, out, 16, nullptr, 0) : gcry_cipher_encrypt(h, out, 16, in, 16)) == 0;
    }
    if (prov_) {
        size_t outl = 0;
        return static_cast<const xts_openssl::ProviderCipher*>(prov_)->run(prov_ctx_, out, &outl, 16, in, 16) == 1 &&
               outl == 16;
    }
    int outl = 0;
    return EVP_EncryptUpdate(static_cast<EVP_CIPHER_CTX*>(evp_), out, &outl, in, 16) == 1 && outl == 16;
}

}  // namespace cmk
