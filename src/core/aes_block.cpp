#include "aes_block.h"

#include "error.h"
#include "xts_cipher.h"

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
        if (gcry_cipher_open(&h, algo, GCRY_CIPHER_MODE_ECB, 0) != 0)
            throw Error(ErrorKind::Crypto, "cannot set up AES with libgcrypt");
        if (gcry_cipher_setkey(h, key, key_len) != 0) {
            gcry_cipher_close(h);
            throw Error(ErrorKind::Crypto, "cannot set up AES with libgcrypt");
        }
        gcrypt_ = h;
        return;
    }
    const EVP_CIPHER* cipher = key_len == 16 ? EVP_aes_128_ecb() : key_len == 24 ? EVP_aes_192_ecb() : EVP_aes_256_ecb();
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    if (EVP_EncryptInit_ex(ctx, cipher, nullptr, key, nullptr) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        throw_openssl_error("cannot set up AES");
    }
    openssl_ = ctx;
}

AesBlockCipher::~AesBlockCipher() {
    // Both wipe the key schedule.
    if (gcrypt_) gcry_cipher_close(static_cast<gcry_cipher_hd_t>(gcrypt_));
    EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(openssl_));
}

bool AesBlockCipher::encrypt_block(const uint8_t in[16], uint8_t out[16]) noexcept {
    if (gcrypt_) {
        auto h = static_cast<gcry_cipher_hd_t>(gcrypt_);
        return (in == out ? gcry_cipher_encrypt(h, out, 16, nullptr, 0) : gcry_cipher_encrypt(h, out, 16, in, 16)) == 0;
    }
    int outl = 0;
    return EVP_EncryptUpdate(static_cast<EVP_CIPHER_CTX*>(openssl_), out, &outl, in, 16) == 1 && outl == 16;
}

}  // namespace cmk
