// AES-256-XTS with a key set up once, by libgcrypt or OpenSSL (xts_cipher.h).
#include "xts_cipher.h"

#include "error.h"
#include "secure_memory.h"
#include "xts_libgcrypt.h"
#include "xts_openssl.h"

#include <cstring>
#include <string>

namespace cmk {

bool XtsCipher::available(Backend backend) {
    switch (backend) {
    case Backend::kLibgcrypt: return xts_libgcrypt::available();
    case Backend::kOpenSsl: return xts_openssl::provider_available();
    case Backend::kOpenSslEvp:
    case Backend::kBest: return true;
    }
    return false;
}

const char* XtsCipher::backend_name(Backend backend) {
    switch (backend) {
    case Backend::kLibgcrypt: return "libgcrypt";
    case Backend::kOpenSsl: return "OpenSSL (provider functions)";
    case Backend::kOpenSslEvp: return "OpenSSL (EVP)";
    case Backend::kBest: return "best available";
    }
    return "?";
}

XtsCipher::XtsCipher(const uint8_t key[kKeyBytes], Backend backend) {
    // IEEE 1619-2018 and NIST SP 800-38E require two different AES keys.
    // OpenSSL refuses equal halves, libgcrypt only in FIPS mode: refuse here
    // so that every backend behaves alike.
    if (std::memcmp(key, key + kKeyBytes / 2, kKeyBytes / 2) == 0)
        throw Error(ErrorKind::Crypto, "cannot set up AES-256-XTS: the two halves of the key are equal");
    if (backend == Backend::kBest) {
        backend = available(Backend::kLibgcrypt) ? Backend::kLibgcrypt
                  : available(Backend::kOpenSsl) ? Backend::kOpenSsl
                                                 : Backend::kOpenSslEvp;
    } else if (!available(backend)) {
        throw Error(ErrorKind::Internal, std::string("AES-256-XTS through ") + backend_name(backend) +
                                             " is not available in this process");
    }
    backend_ = backend;
    if (backend == Backend::kLibgcrypt)
        gcrypt_ = xts_libgcrypt::create(key);
    else
        openssl_ = xts_openssl::create(key, backend == Backend::kOpenSsl);
}

XtsCipher::~XtsCipher() {
    xts_libgcrypt::destroy(gcrypt_);
    xts_openssl::destroy(openssl_);
}

// The libraries leave round keys in vector registers (libgcrypt's VAES
// XTS those of the tweak key): cleared after every call, a few cycles.
bool XtsCipher::encrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept {
    bool ok = gcrypt_ ? xts_libgcrypt::crypt(gcrypt_, true, in, out, len, tweak)
                      : xts_openssl::crypt(openssl_, true, in, out, len, tweak);
    secure_memory::clear_vector_registers();
    return ok;
}

bool XtsCipher::decrypt(const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[kTweakBytes]) noexcept {
    bool ok = gcrypt_ ? xts_libgcrypt::crypt(gcrypt_, false, in, out, len, tweak)
                      : xts_openssl::crypt(openssl_, false, in, out, len, tweak);
    secure_memory::clear_vector_registers();
    return ok;
}

}  // namespace cmk
