// FF1 format-preserving encryption, NIST SP 800-38G (ff1.h).
#include "ff1.h"

#include "error.h"

#include <cstring>

namespace cmk {

namespace {

using u128 = unsigned __int128;

// radix^k, or 0 if it does not fit in 64 bits.
uint64_t power(unsigned radix, size_t k) {
    u128 p = 1;
    for (size_t i = 0; i < k; i++) {
        p *= radix;
        if (p >> 64) return 0;
    }
    return static_cast<uint64_t>(p);
}

uint64_t num_radix(const uint16_t* x, size_t len, unsigned radix) {
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) v = v * radix + x[i];
    return v;
}

void str_radix(uint64_t v, unsigned radix, uint16_t* out, size_t len) {
    for (size_t i = len; i-- > 0;) {
        out[i] = static_cast<uint16_t>(v % radix);
        v /= radix;
    }
}

}  // namespace

Ff1::Ff1(const uint8_t* key, size_t key_len, unsigned radix, XtsCipher::Backend backend)
    : aes_(key, key_len, backend), radix_(radix) {
    if (radix < 2 || radix > 65536) throw Error(ErrorKind::Internal, "FF1's radix must be in [2, 65536]");
}

bool Ff1::encrypt(const uint16_t* x, uint16_t* out, size_t n, const uint8_t* tweak, size_t tweak_len) noexcept {
    return crypt(true, x, out, n, tweak, tweak_len);
}

bool Ff1::decrypt(const uint16_t* x, uint16_t* out, size_t n, const uint8_t* tweak, size_t tweak_len) noexcept {
    return crypt(false, x, out, n, tweak, tweak_len);
}

bool Ff1::crypt(bool enc, const uint16_t* x, uint16_t* out, size_t n, const uint8_t* tweak, size_t t) noexcept {
    // Algorithm 7 (encrypt) and 8 (decrypt), steps numbered as there.
    if (n < 2 || n > kMaxNumerals || t > kMaxTweakBytes) return false;
    for (size_t i = 0; i < n; i++)
        if (x[i] >= radix_) return false;
    const size_t u = n / 2, v = n - u;  // 1.
    const uint64_t pow_u = power(radix_, u), pow_v = power(radix_, v);
    if (pow_v == 0) return false;  // beyond this implementation's 64-bit halves
    if (static_cast<u128>(pow_u) * pow_v < 100) return false;  // radix^n >= 100
    uint64_t a = num_radix(x, u, radix_), b_num = num_radix(x + u, v, radix_);  // 2.
    // 3. b = ceil(ceil(v * log2(radix)) / 8); ceil(log2(radix^v)) is the bit length of radix^v - 1.
    const size_t bits = 64 - static_cast<size_t>(__builtin_clzll(pow_v - 1));  // pow_v >= 2
    const size_t b = (bits + 7) / 8;
    const size_t d = 4 * ((b + 3) / 4) + 4;  // 4.; d <= 12 as b <= 8
    // 5. P
    uint8_t block[16];
    const uint8_t p[16] = {1,
                           2,
                           1,
                           static_cast<uint8_t>(radix_ >> 16),
                           static_cast<uint8_t>(radix_ >> 8),
                           static_cast<uint8_t>(radix_),
                           10,
                           static_cast<uint8_t>(u % 256),
                           static_cast<uint8_t>(n >> 24),
                           static_cast<uint8_t>(n >> 16),
                           static_cast<uint8_t>(n >> 8),
                           static_cast<uint8_t>(n),
                           static_cast<uint8_t>(t >> 24),
                           static_cast<uint8_t>(t >> 16),
                           static_cast<uint8_t>(t >> 8),
                           static_cast<uint8_t>(t)};
    uint8_t y_p[16];  // PRF state after P, the same every round
    if (!aes_.encrypt_block(p, y_p)) return false;
    const size_t pad = (16 - (t + b + 1) % 16) % 16;
    const size_t q_len = t + pad + 1 + b;  // a multiple of 16
    uint8_t q[kMaxTweakBytes + 16 + 1 + 8];
    std::memcpy(q, tweak, t);
    std::memset(q + t, 0, pad);
    bool ok = true;
    for (int step = 0; step < 10 && ok; step++) {  // 6.
        const int i = enc ? step : 9 - step;
        q[t + pad] = static_cast<uint8_t>(i);  // i.
        uint64_t fed = enc ? b_num : a;
        for (size_t k = 0; k < b; k++) q[q_len - 1 - k] = static_cast<uint8_t>(fed >> (8 * k));
        uint8_t r[16];  // ii. R = PRF(P || Q), CBC-MAC
        std::memcpy(r, y_p, 16);
        for (size_t off = 0; off < q_len && ok; off += 16) {
            for (size_t k = 0; k < 16; k++) block[k] = r[k] ^ q[off + k];
            ok = aes_.encrypt_block(block, r);
        }
        // iii.-iv. S is the first d <= 16 bytes of R; y = NUM(S).
        u128 y = 0;
        for (size_t k = 0; k < d; k++) y = (y << 8) | r[k];
        const uint64_t pow_m = (i % 2 == 0) ? pow_u : pow_v;  // v.
        const uint64_t ym = static_cast<uint64_t>(y % pow_m);
        if (enc) {
            uint64_t c = static_cast<uint64_t>((static_cast<u128>(a) + ym) % pow_m);  // vi.
            a = b_num;  // viii.
            b_num = c;  // ix.
        } else {
            uint64_t c = static_cast<uint64_t>((static_cast<u128>(b_num) + pow_m - ym) % pow_m);
            b_num = a;
            a = c;
        }
    }
    if (!ok) return false;
    str_radix(a, radix_, out, u);  // 7.
    str_radix(b_num, radix_, out + u, v);
    return true;
}

}  // namespace cmk
