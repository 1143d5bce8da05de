// Which library's AES-256-XTS is fastest on this machine (DESIGN.md "Which
// library runs AES-256-XTS"): every candidate Debian 12 ships decrypts and
// encrypts the 8176-byte data unit of an 8 kB page, with a new tweak per
// page, over a 32-page ring (256 kB, the size of PostgreSQL's bulk-read
// ring: in L2, as a page just copied from the page cache is). Each
// candidate is first checked against OpenSSL's ciphertext. Prints ns per
// page (median of rounds) and the ratio to cmk's backend.
//
//   make build/xts_survey && build/xts_survey [rounds] [seconds]
//
// Candidates: cmk's three backends (libgcrypt, OpenSSL provider functions,
// OpenSSL EVP) with the code the server runs; nettle (xts_aes256_*);
// Crypto++ (XTS_Mode<AES>); Botan 2 ("AES-256/XTS"). Not here, because they
// have no XTS on Debian 12 or not on this kernel: Intel's multi-buffer
// library (libipsec-mb 1.3 has ECB, CBC, CTR, GCM, ... but no XTS) and the
// kernel's crypto API through AF_ALG (CONFIG_CRYPTO_USER_API_SKCIPHER is
// off in this VM's kernel; elsewhere it costs two system calls per page).
// Needs nettle-dev, libcrypto++-dev and libbotan-2-dev (bench only).
#include "xts_cipher.h"

#include <botan/cipher_mode.h>
#include <cryptopp/aes.h>
#include <cryptopp/xts.h>
#include <nettle/aes.h>
#include <nettle/xts.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr size_t kPage = 8192, kHeader = 16, kUnit = kPage - kHeader, kRing = 32;

using crypt_fn = std::function<void(bool enc, const uint8_t* in, uint8_t* out, const uint8_t tweak[16])>;

struct Candidate {
    std::string name;
    crypt_fn crypt;
};

void tweak_for(uint32_t blk, uint8_t t[16]) {
    std::memset(t, 0, 16);
    std::memcpy(t + 4, &blk, 4);
}

double thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// ns of this thread's CPU time (time descheduled on a shared machine left
// out) per page of in-place decrypt (or encrypt) over the ring, for
// `seconds` of wall-clock time.
double ns_per_page(const crypt_fn& f, bool enc, std::vector<uint8_t>& ring, double seconds) {
    uint8_t t[16];
    size_t pages = 0;
    double cpu0 = thread_cpu_ns();
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    while (std::chrono::steady_clock::now() < deadline) {
        for (size_t i = 0; i < kRing; i++) {
            tweak_for(static_cast<uint32_t>(pages + i), t);
            uint8_t* p = ring.data() + i * kPage + kHeader;
            f(enc, p, p, t);
        }
        pages += kRing;
    }
    return (thread_cpu_ns() - cpu0) / pages;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
    double seconds = argc > 2 ? std::atof(argv[2]) : 0.5;
    uint8_t key[64];
    for (size_t i = 0; i < sizeof key; i++) key[i] = static_cast<uint8_t>(i * 29 + 3);

    std::vector<Candidate> cands;
    auto add_cmk = [&](cmk::XtsCipher::Backend b, const char* name) {
        if (!cmk::XtsCipher::available(b)) {
            std::printf("%-34s not available\n", name);
            return;
        }
        auto c = std::make_shared<cmk::XtsCipher>(key, b);
        cands.push_back({name, [c](bool enc, const uint8_t* in, uint8_t* out, const uint8_t* t) {
                             if (!(enc ? c->encrypt(in, out, kUnit, t) : c->decrypt(in, out, kUnit, t))) std::abort();
                         }});
    };
    add_cmk(cmk::XtsCipher::Backend::kLibgcrypt, "libgcrypt 1.10 (cmk's choice)");
    add_cmk(cmk::XtsCipher::Backend::kOpenSsl, "OpenSSL 3.0, provider functions");
    add_cmk(cmk::XtsCipher::Backend::kOpenSslEvp, "OpenSSL 3.0, EVP");

    auto nettle_ctx = std::make_shared<std::pair<xts_aes256_key, xts_aes256_key>>();
    xts_aes256_set_encrypt_key(&nettle_ctx->first, key);
    xts_aes256_set_decrypt_key(&nettle_ctx->second, key);
    cands.push_back({"nettle 3.8", [nettle_ctx](bool enc, const uint8_t* in, uint8_t* out, const uint8_t* t) {
                         if (enc) xts_aes256_encrypt_message(&nettle_ctx->first, t, kUnit, out, in);
                         else xts_aes256_decrypt_message(&nettle_ctx->second, t, kUnit, out, in);
                     }});

    auto cpp_enc = std::make_shared<CryptoPP::XTS_Mode<CryptoPP::AES>::Encryption>();
    auto cpp_dec = std::make_shared<CryptoPP::XTS_Mode<CryptoPP::AES>::Decryption>();
    uint8_t zero_iv[16] = {};
    cpp_enc->SetKeyWithIV(key, sizeof key, zero_iv, 16);
    cpp_dec->SetKeyWithIV(key, sizeof key, zero_iv, 16);
    cands.push_back({"Crypto++ 8.7", [cpp_enc, cpp_dec](bool enc, const uint8_t* in, uint8_t* out, const uint8_t* t) {
                         if (enc) { cpp_enc->Resynchronize(t, 16); cpp_enc->ProcessData(out, in, kUnit); }
                         else { cpp_dec->Resynchronize(t, 16); cpp_dec->ProcessData(out, in, kUnit); }
                     }});

    std::shared_ptr<Botan::Cipher_Mode> b_enc(Botan::Cipher_Mode::create("AES-256/XTS", Botan::ENCRYPTION).release());
    std::shared_ptr<Botan::Cipher_Mode> b_dec(Botan::Cipher_Mode::create("AES-256/XTS", Botan::DECRYPTION).release());
    if (b_enc && b_dec) {
        b_enc->set_key(key, sizeof key);
        b_dec->set_key(key, sizeof key);
        auto buf = std::make_shared<Botan::secure_vector<uint8_t>>(kUnit);
        cands.push_back({"Botan 2.19", [b_enc, b_dec, buf](bool enc, const uint8_t* in, uint8_t* out, const uint8_t* t) {
                             Botan::Cipher_Mode& m = enc ? *b_enc : *b_dec;
                             m.start(t, 16);
                             // finish() works on a vector: one copy in, one out (its API).
                             buf->assign(in, in + kUnit);
                             m.finish(*buf);
                             std::memcpy(out, buf->data(), kUnit);
                         }});
    }

    // Every candidate must give OpenSSL's bytes (EVP, the reference).
    std::vector<uint8_t> pt(kUnit), ref(kUnit), got(kUnit);
    for (size_t i = 0; i < kUnit; i++) pt[i] = static_cast<uint8_t>(i * 7 + 1);
    uint8_t t0[16];
    tweak_for(12345, t0);
    {
        EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
        int n = 0, m = 0;
        if (!EVP_EncryptInit_ex(c, EVP_aes_256_xts(), nullptr, key, t0) ||
            !EVP_EncryptUpdate(c, ref.data(), &n, pt.data(), kUnit) || !EVP_EncryptFinal_ex(c, ref.data() + n, &m))
            std::abort();
        EVP_CIPHER_CTX_free(c);
    }
    std::vector<uint8_t> ring(kRing * kPage);
    for (size_t i = 0; i < ring.size(); i++) ring[i] = static_cast<uint8_t>(i * 31 + 7);
    std::vector<std::vector<double>> dec(cands.size()), enc(cands.size());
    for (size_t k = 0; k < cands.size(); k++) {
        cands[k].crypt(true, pt.data(), got.data(), t0);
        bool ok = got == ref;
        cands[k].crypt(false, got.data(), got.data(), t0);
        if (!ok || got != pt) {
            std::printf("%-34s DIFFERS from OpenSSL: left out\n", cands[k].name.c_str());
            cands.erase(cands.begin() + k--);
        }
    }
    dec.resize(cands.size());
    enc.resize(cands.size());
    for (int r = 0; r < rounds; r++)
        for (size_t k = 0; k < cands.size(); k++) {  // candidates alternate within a round
            dec[k].push_back(ns_per_page(cands[k].crypt, false, ring, seconds));
            enc[k].push_back(ns_per_page(cands[k].crypt, true, ring, seconds));
        }
    double base = median(dec[0]);
    std::printf("%-34s %12s %12s %10s\n", "AES-256-XTS, 8176 B per page", "decrypt ns", "encrypt ns", "vs first");
    for (size_t k = 0; k < cands.size(); k++)
        std::printf("%-34s %12.0f %12.0f %9.2fx\n", cands[k].name.c_str(), median(dec[k]), median(enc[k]),
                    median(dec[k]) / base);
    std::printf("(median of %d rounds of %.2f s; ring of %zu pages; 'vs first': decrypt time relative to the first line)\n",
                rounds, seconds, kRing);
    return 0;
}
