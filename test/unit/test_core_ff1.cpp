// cmk::Ff1 (NIST SP 800-38G FF1) against NIST's published samples
// (csrc.nist.gov, "FF1samples.pdf", Examples of FF1: samples 1-3 with
// AES-128, 7-9 with AES-256), with every AES library XtsCipher can use,
// and the temp-unit construction built on it (temp_unit.h).
#include "ff1.h"
#include "temp_unit.h"

#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

using namespace core_test;

namespace {

const char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

std::vector<uint16_t> numerals(const std::string& s) {
    std::vector<uint16_t> out;
    for (char c : s) out.push_back(static_cast<uint16_t>(std::string(kAlphabet).find(c)));
    return out;
}

std::string text(const std::vector<uint16_t>& x) {
    std::string s;
    for (uint16_t d : x) s += kAlphabet[d];
    return s;
}

struct Sample {
    const char* name;
    const char* key;
    unsigned radix;
    const char* tweak;
    const char* pt;
    const char* ct;
};

const char kKey128[] = "2B7E151628AED2A6ABF7158809CF4F3C";
const char kKey256[] = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94";

const Sample kSamples[] = {
    {"sample1", kKey128, 10, "", "0123456789", "2433477484"},
    {"sample2", kKey128, 10, "39383736353433323130", "0123456789", "6124200773"},
    {"sample3", kKey128, 36, "3737373770717273373737", "0123456789abcdefghi", "a9tv40mll9kdu509eum"},
    {"sample7", kKey256, 10, "", "0123456789", "6657667009"},
    {"sample8", kKey256, 10, "39383736353433323130", "0123456789", "1001623463"},
    {"sample9", kKey256, 36, "3737373770717273373737", "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"},
};

std::vector<cmk::XtsCipher::Backend> aes_backends() {
    std::vector<cmk::XtsCipher::Backend> b = {cmk::XtsCipher::Backend::kOpenSslEvp};
    if (cmk::XtsCipher::available(cmk::XtsCipher::Backend::kLibgcrypt)) b.push_back(cmk::XtsCipher::Backend::kLibgcrypt);
    return b;
}

}  // namespace

TEST(Ff1, NistSamples) {
    for (auto backend : aes_backends()) {
        for (const Sample& s : kSamples) {
            SCOPED_TRACE(std::string(s.name) + " with " + cmk::XtsCipher::backend_name(backend));
            ByteVec key = from_hex(s.key), tweak = from_hex(s.tweak);
            cmk::Ff1 ff1(key.data(), key.size(), s.radix, backend);
            std::vector<uint16_t> x = numerals(s.pt), y(x.size());
            ASSERT_TRUE(ff1.encrypt(x.data(), y.data(), x.size(), tweak.data(), tweak.size()));
            EXPECT_EQ(text(y), s.ct);
            std::vector<uint16_t> back(x.size());
            ASSERT_TRUE(ff1.decrypt(y.data(), back.data(), y.size(), tweak.data(), tweak.size()));
            EXPECT_EQ(text(back), s.pt);
            ASSERT_TRUE(ff1.encrypt(x.data(), x.data(), x.size(), tweak.data(), tweak.size()));  // in place
            EXPECT_EQ(text(x), s.ct);
        }
    }
}

TEST(Ff1, RefusesWhatTheStandardOrThisImplementationDoesNot) {
    ByteVec key = from_hex(kKey256);
    cmk::Ff1 ten(key.data(), key.size(), 10);
    std::vector<uint16_t> x(40, 1), y(40);
    EXPECT_FALSE(ten.encrypt(x.data(), y.data(), 1, nullptr, 0));   // n < 2
    EXPECT_TRUE(ten.encrypt(x.data(), y.data(), 2, nullptr, 0));    // 10^2 = 100: the smallest domain allowed
    EXPECT_TRUE(ten.encrypt(x.data(), y.data(), 38, nullptr, 0));   // halves of 10^19 < 2^64
    EXPECT_FALSE(ten.encrypt(x.data(), y.data(), 40, nullptr, 0));  // 10^20 > 2^64: beyond the 64-bit halves
    x = {3, 10};
    EXPECT_FALSE(ten.encrypt(x.data(), y.data(), 2, nullptr, 0));   // a numeral >= radix
    cmk::Ff1 two(key.data(), key.size(), 2);
    x.assign(6, 1);
    EXPECT_FALSE(two.encrypt(x.data(), y.data(), 6, nullptr, 0));   // 2^6 < 100
    EXPECT_TRUE(two.encrypt(x.data(), y.data(), 7, nullptr, 0));
    EXPECT_THROW(cmk::Ff1(key.data(), key.size(), 1), cmk::Error);
    EXPECT_THROW(cmk::Ff1(key.data(), 20, 10), cmk::Error);
}

namespace {

ByteVec bytes_of(size_t n, uint32_t seed) {
    ByteVec b(n);
    for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>((i + 1) * 2654435761u >> (seed % 24));
    return b;
}

}  // namespace

TEST(TempUnit, PathHashIsFnv1a64WithoutTmpSuffix) {
    EXPECT_EQ(cmk::temp_file_path_hash(""), 0xcbf29ce484222325ull);
    EXPECT_EQ(cmk::temp_file_path_hash("a"), 0xaf63dc4c8601ec8cull);
    EXPECT_EQ(cmk::temp_file_path_hash("pg_twophase/0000ABCD"), 0xd1da6a2ed886b2f9ull);
    EXPECT_EQ(cmk::temp_file_path_hash("pg_twophase/0000ABCD.tmp"), 0xd1da6a2ed886b2f9ull);
    uint8_t t[16];
    cmk::temp_unit_tweak(0x0102030405060708ull, 3, t);
    EXPECT_EQ(to_hex(std::vector<uint8_t>(t, t + 16)), "08070605040302010300000000000000");
}

TEST(TempUnit, RoundTripsEveryLengthInPlaceAndOutOfPlace) {
    ByteVec xts_key = bytes_of(64, 3), tail_key = bytes_of(32, 5);
    cmk::TempUnitCipher c(xts_key.data(), tail_key.data());
    uint64_t h = cmk::temp_file_path_hash("pg_twophase/00000010");
    for (size_t len = 1; len <= 40; len++) {
        ByteVec plain = bytes_of(len, 7), enc(len), dec(len);
        ASSERT_TRUE(c.encrypt(h, 1, plain.data(), enc.data(), len));
        EXPECT_NE(enc, plain) << len;
        ASSERT_TRUE(c.decrypt(h, 1, enc.data(), dec.data(), len));
        EXPECT_EQ(dec, plain) << len;
        ByteVec inplace = plain;
        ASSERT_TRUE(c.encrypt(h, 1, inplace.data(), inplace.data(), len));
        EXPECT_EQ(inplace, enc) << len;
    }
    for (size_t len : {8191, 8192}) {
        ByteVec plain = bytes_of(len, 9), data = plain;
        ASSERT_TRUE(c.encrypt(h, 0, data.data(), data.data(), len));
        ASSERT_TRUE(c.decrypt(h, 0, data.data(), data.data(), len));
        EXPECT_EQ(data, plain) << len;
    }
}

// The property the construction is for: two versions of a short tail at
// the same place (path, unit) do not XOR to the XOR of their plaintexts
// (a keystream would), and each tail's ciphertext depends on all of it.
TEST(TempUnit, ShortTailsRevealNoXor) {
    ByteVec xts_key = bytes_of(64, 11), tail_key = bytes_of(32, 13);
    cmk::TempUnitCipher c(xts_key.data(), tail_key.data());
    uint64_t h = cmk::temp_file_path_hash("pg_stat_tmp/pgss_query_texts.stat");
    for (size_t len = 1; len < 16; len++) {
        ByteVec a(len, 'a'), b(len, 'a');
        b[len - 1] = 'b';  // differ in the last byte only
        ByteVec ca(len), cb(len);
        ASSERT_TRUE(c.encrypt(h, 2, a.data(), ca.data(), len));
        ASSERT_TRUE(c.encrypt(h, 2, b.data(), cb.data(), len));
        ByteVec xc(len), xp(len);
        for (size_t i = 0; i < len; i++) {
            xc[i] = ca[i] ^ cb[i];
            xp[i] = a[i] ^ b[i];
        }
        EXPECT_NE(xc, xp) << len;
        if (len >= 4) EXPECT_NE(ByteVec(ca.begin(), ca.end() - 1), ByteVec(cb.begin(), cb.end() - 1)) << len;
    }
    // A one-byte tail is a permutation of the 256 bytes under each tweak,
    // and another one at another unit.
    std::set<uint8_t> seen;
    ByteVec under2(256), under3(256);
    for (int v = 0; v < 256; v++) {
        uint8_t p = static_cast<uint8_t>(v);
        ASSERT_TRUE(c.encrypt(h, 2, &p, &under2[v], 1));
        ASSERT_TRUE(c.encrypt(h, 3, &p, &under3[v], 1));
        seen.insert(under2[v]);
    }
    EXPECT_EQ(seen.size(), 256u);
    EXPECT_NE(under2, under3);
}

// FF1 for a short tail is the standard's, radix 16 over the nibbles, with
// the 16-byte tweak (checked against Ff1 directly).
TEST(TempUnit, ShortTailIsFf1OverNibbles) {
    ByteVec xts_key = bytes_of(64, 17), tail_key = bytes_of(32, 19);
    cmk::TempUnitCipher c(xts_key.data(), tail_key.data());
    cmk::Ff1 ff1(tail_key.data(), tail_key.size(), 16);
    uint64_t h = 0x1122334455667788ull;
    ByteVec tail = {0x12, 0xab, 0xf0, 0x07, 0x99}, got(5);
    ASSERT_TRUE(c.encrypt(h, 9, tail.data(), got.data(), tail.size()));
    std::vector<uint16_t> digits = {1, 2, 0xa, 0xb, 0xf, 0, 0, 7, 9, 9}, expect(10);
    uint8_t tweak[16];
    cmk::temp_unit_tweak(h, 9, tweak);
    ASSERT_TRUE(ff1.encrypt(digits.data(), expect.data(), 10, tweak, 16));
    for (size_t i = 0; i < 5; i++) EXPECT_EQ(got[i], expect[2 * i] << 4 | expect[2 * i + 1]) << i;
}
