// AES-256-XTS through libgcrypt (xts_libgcrypt.h).
#include "xts_libgcrypt.h"

#include "error.h"
#include "secure_memory.h"
#include "xts_openssl.h"

#include <gcrypt.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace cmk {
namespace xts_libgcrypt {

struct Context {
    gcry_cipher_hd_t handle = nullptr;  // one handle serves both directions
};

namespace {

constexpr size_t kKeyBytes = XtsCipher::kKeyBytes;
constexpr size_t kTweakBytes = XtsCipher::kTweakBytes;

gcry_cipher_hd_t open_handle(const uint8_t* key) {
    gcry_cipher_hd_t h = nullptr;
    // GCRY_CIPHER_SECURE: the handle (with the key schedules in it) comes
    // from alloc_secure below, cmk's locked arena.
    if (gcry_cipher_open(&h, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_XTS, GCRY_CIPHER_SECURE) != 0) return nullptr;
    if (gcry_cipher_setkey(h, key, kKeyBytes) != 0) {
        gcry_cipher_close(h);
        return nullptr;
    }
    return h;
}

// Whole data units (8176: data pages and WAL pages) and ciphertext stealing
// (8152: the first WAL page of a segment; 17 and 4095: temp-file units)
// must give OpenSSL's ciphertext, both ways, or libgcrypt is not used.
bool agrees_with_openssl() {
    uint8_t key[kKeyBytes], tweak[kTweakBytes];
    for (size_t i = 0; i < kKeyBytes; i++) key[i] = static_cast<uint8_t>(i * 13 + 5);
    for (size_t i = 0; i < kTweakBytes; i++) tweak[i] = static_cast<uint8_t>(0xA5 ^ i);
    Context probe{open_handle(key)};
    if (!probe.handle) return false;
    bool ok = true;
    try {
        xts_openssl::Context* ref = xts_openssl::create(key, xts_openssl::provider_available());
        for (size_t len : {size_t(8176), size_t(8152), size_t(17), size_t(4095)}) {
            std::vector<uint8_t> pt(len), expect(len), got(len);
            for (size_t i = 0; i < len; i++) pt[i] = static_cast<uint8_t>(i * 31 + len);
            // crypt() as the server calls it: out of place, then in place.
            ok = ok && xts_openssl::crypt(ref, true, pt.data(), expect.data(), len, tweak) &&
                 crypt(&probe, true, pt.data(), got.data(), len, tweak) && got == expect &&
                 crypt(&probe, false, got.data(), got.data(), len, tweak) && got == pt;
        }
        xts_openssl::destroy(ref);
    } catch (...) {
        ok = false;
    }
    gcry_cipher_close(probe.handle);
    return ok;
}

// libgcrypt's allocation handlers: its "secure" allocations (cipher handles
// opened with GCRY_CIPHER_SECURE) from cmk's arena, the others from malloc,
// as libgcrypt's own allocator does without its secure memory.
void* alloc_plain(size_t n) { return std::malloc(n); }
void* alloc_secure(size_t n) { return secure_memory::allocate(n); }
int is_secure(const void* p) { return secure_memory::contains(p) ? 1 : 0; }
void* realloc_any(void* p, size_t n) {
    return secure_memory::contains(p) ? secure_memory::reallocate(p, n) : std::realloc(p, n);
}
void free_any(void* p) {
    if (secure_memory::contains(p))
        secure_memory::release(p);
    else
        std::free(p);
}

// libgcrypt's allocation handlers are process-wide. cmk installs them only
// when nothing in the process has set libgcrypt up before (PostgreSQL does
// not use it; libsystemd, loaded with the server, only for journal sealing),
// so no block from libgcrypt's own secure memory can reach free_any; and
// only if they took (FIPS mode ignores them). Otherwise libgcrypt is not
// used and XtsCipher falls back to OpenSSL.
bool secure_handles() {
    if (gcry_control(GCRYCTL_ANY_INITIALIZATION_P)) return false;
    if (!secure_memory::init()) return false;
    gcry_set_allocation_handler(alloc_plain, alloc_secure, is_secure, realloc_any, free_any);
    if (!gcry_check_version("1.9.0")) return false;
    void* probe = gcry_malloc_secure(16);
    bool ours = probe && secure_memory::contains(probe);
    gcry_free(probe);
    return ours;
}

}  // namespace

bool available() {
    // gcry_check_version also sets libgcrypt up; cmk is a library in the
    // server's process, so it leaves INITIALIZATION_FINISHED to the program.
    static const bool ok = secure_handles() && agrees_with_openssl();
    return ok;
}

Context* create(const uint8_t key[XtsCipher::kKeyBytes]) {
    if (!available()) throw Error(ErrorKind::Internal, "libgcrypt's AES-256-XTS is not available");
    gcry_cipher_hd_t h = open_handle(key);
    secure_memory::wipe_stack_below();  // setkey leaves the tweak key's round keys there
    if (!h) throw Error(ErrorKind::Crypto, "cannot set up AES-256-XTS with libgcrypt");
    return new Context{h};
}

void destroy(Context* c) noexcept {
    if (!c) return;
    gcry_cipher_close(c->handle);  // wipes the key schedule
    delete c;
}

bool crypt(Context* c, bool encrypt, const uint8_t* in, uint8_t* out, size_t len, const uint8_t tweak[XtsCipher::kTweakBytes]) noexcept {
    if (gcry_cipher_setiv(c->handle, tweak, kTweakBytes) != 0) return false;
    gcry_error_t e = in == out ? (encrypt ? gcry_cipher_encrypt(c->handle, out, len, nullptr, 0)
                                          : gcry_cipher_decrypt(c->handle, out, len, nullptr, 0))
                               : (encrypt ? gcry_cipher_encrypt(c->handle, out, len, in, len)
                                          : gcry_cipher_decrypt(c->handle, out, len, in, len));
    return e == 0;
}

}  // namespace xts_libgcrypt
}  // namespace cmk
