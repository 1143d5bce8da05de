#include "xts_cipher.h"

#include "error.h"

#include <openssl/evp.h>

namespace cmk {

namespace {

EVP_CIPHER_CTX* make_ctx(const uint8_t* key, int enc) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (!ctx) throw_openssl_error("cannot allocate a cipher context");
    // The key schedule runs here, once; later calls pass only the tweak.
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_xts(), nullptr, key, nullptr, enc) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        throw_openssl_error("cannot set up AES-256-XTS");
    }
    return ctx;
}

bool run(EVP_CIPHER_CTX* ctx, int enc, const uint8_t* in, uint8_t* out, size_t len, const uint8_t* tweak) {
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, tweak, enc) != 1) return false;
    if (EVP_CipherUpdate(ctx, out, &outl, in, static_cast<int>(len)) != 1) return false;
    return static_cast<size_t>(outl) == len;
}

}  // namespace

XtsCipher::XtsCipher(const uint8_t key[kKeyBytes]) : enc_(make_ctx(key, 1)), dec_(nullptr) {
    try {
        dec_ = make_ctx(key, 0);
    } catch (...) {
        EVP_CIPHER_CTX_free(enc_);
        throw;
    }
}

XtsCipher::~XtsCipher() {
    EVP_CIPHER_CTX_free(enc_);  // frees and cleanses the key schedule
    EVP_CIPHER_CTX_free(dec_);
}

bool XtsCipher::encrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept {
    return run(enc_, 1, in, out, len, tweak);
}

bool XtsCipher::decrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept {
    return run(dec_, 0, in, out, len, tweak);
}

}  // namespace cmk
