// cmk::XtsCipher: AES-256-XTS with the key schedule set up once.
// Known answers: IEEE Std 1619-2007 XTS-AES-256 vectors 10-14, as copied in
// OpenSSL's evpciph_aes_common.txt (see testdata/ieee1619_xts_aes256_vectors.h
// for the exact source).
#include "xts_cipher.h"

#include "error.h"
#include "testdata/core_test_util.h"
#include "testdata/ieee1619_xts_aes256_vectors.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

using namespace core_test;

namespace {

constexpr size_t kPageSize = 8192;
constexpr size_t kPageHeader = 16;
constexpr size_t kDataUnit = kPageSize - kPageHeader;  // 8176 bytes = 511 blocks
static_assert(kDataUnit % 16 == 0 && kDataUnit / 16 == 511, "a page's data unit is 511 whole AES blocks");

ByteVec ieee_plaintext() {
    ByteVec p(512);
    for (size_t i = 0; i < p.size(); i++) p[i] = static_cast<uint8_t>(i & 0xff);
    return p;
}

ByteVec random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    ByteVec b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
}

std::array<uint8_t, 16> tweak_of(uint64_t lo, uint64_t hi = 0) {
    std::array<uint8_t, 16> t{};
    for (int i = 0; i < 8; i++) {
        t[i] = static_cast<uint8_t>(lo >> (8 * i));
        t[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
    }
    return t;
}

ByteVec test_key(uint32_t seed = 1) { return random_bytes(cmk::XtsCipher::kKeyBytes, seed); }

class CoreXtsIeeeVector : public ::testing::TestWithParam<XtsVector> {};

}  // namespace

TEST_P(CoreXtsIeeeVector, EncryptOutOfPlace) {
    const XtsVector& v = GetParam();
    ByteVec key = from_hex(v.key), tweak = from_hex(v.tweak), pt = ieee_plaintext(), ct = from_hex(v.ciphertext);
    ASSERT_EQ(key.size(), cmk::XtsCipher::kKeyBytes);
    ASSERT_EQ(tweak.size(), cmk::XtsCipher::kTweakBytes);
    ASSERT_EQ(ct.size(), pt.size());
    cmk::XtsCipher x(key.data());
    ByteVec out(pt.size(), 0xAA);
    ASSERT_TRUE(x.encrypt(pt.data(), out.data(), pt.size(), tweak.data()));
    EXPECT_EQ(to_hex(out), to_hex(ct)) << "IEEE 1619 vector " << v.number;
    EXPECT_EQ(to_hex(pt), to_hex(ieee_plaintext())) << "input was modified";
}

TEST_P(CoreXtsIeeeVector, DecryptOutOfPlace) {
    const XtsVector& v = GetParam();
    ByteVec key = from_hex(v.key), tweak = from_hex(v.tweak), ct = from_hex(v.ciphertext);
    cmk::XtsCipher x(key.data());
    ByteVec out(ct.size(), 0x55);
    ASSERT_TRUE(x.decrypt(ct.data(), out.data(), ct.size(), tweak.data()));
    EXPECT_EQ(to_hex(out), to_hex(ieee_plaintext())) << "IEEE 1619 vector " << v.number;
}

TEST_P(CoreXtsIeeeVector, EncryptAndDecryptInPlace) {
    const XtsVector& v = GetParam();
    ByteVec key = from_hex(v.key), tweak = from_hex(v.tweak), ct = from_hex(v.ciphertext);
    cmk::XtsCipher x(key.data());
    ByteVec buf = ieee_plaintext();
    ASSERT_TRUE(x.encrypt(buf.data(), buf.data(), buf.size(), tweak.data()));
    EXPECT_EQ(to_hex(buf), to_hex(ct)) << "in-place encryption, IEEE 1619 vector " << v.number;
    ASSERT_TRUE(x.decrypt(buf.data(), buf.data(), buf.size(), tweak.data()));
    EXPECT_EQ(to_hex(buf), to_hex(ieee_plaintext())) << "in-place decryption, IEEE 1619 vector " << v.number;
}

INSTANTIATE_TEST_SUITE_P(Ieee1619, CoreXtsIeeeVector, ::testing::ValuesIn(kIeeeXtsAes256Vectors),
                         [](const ::testing::TestParamInfo<XtsVector>& info) {
                             return "Vector" + std::to_string(info.param.number);
                         });

// One cipher object serves every page of a process: it must give the same
// answers whatever was encrypted or decrypted with it before, in any order.
TEST(CoreXts, ReusedObjectKeepsNoStateBetweenCalls) {
    ByteVec key = from_hex(kIeeeXtsAes256Key), pt = ieee_plaintext();
    cmk::XtsCipher x(key.data());
    ByteVec out(pt.size());
    for (int round = 0; round < 2; round++) {
        for (const auto& v : kIeeeXtsAes256Vectors) {
            ByteVec tweak = from_hex(v.tweak);
            ASSERT_TRUE(x.encrypt(pt.data(), out.data(), pt.size(), tweak.data()));
            EXPECT_EQ(to_hex(out), v.ciphertext) << "vector " << v.number << " round " << round;
            ByteVec back(out.size());
            ASSERT_TRUE(x.decrypt(out.data(), back.data(), out.size(), tweak.data()));
            EXPECT_EQ(back, pt);
        }
    }
}

TEST(CoreXts, CiphertextStealingVectorFromOpenSsl) {
    ByteVec key = from_hex(kIeeeXtsAes256Key), tweak = from_hex(kXtsAes256StealingTweak);
    ByteVec pt = from_hex(kXtsAes256StealingPlaintext);
    cmk::XtsCipher x(key.data());
    ByteVec out(pt.size());
    ASSERT_TRUE(x.encrypt(pt.data(), out.data(), pt.size(), tweak.data()));
    EXPECT_EQ(to_hex(out), kXtsAes256StealingCiphertext);
    ByteVec back(out.size());
    ASSERT_TRUE(x.decrypt(out.data(), back.data(), out.size(), tweak.data()));
    EXPECT_EQ(back, pt);
}

TEST(CoreXts, PageDataUnitRoundTripsOutOfPlaceAndInPlace) {
    ByteVec key = test_key();
    cmk::XtsCipher x(key.data());
    ByteVec pt = random_bytes(kDataUnit, 7);
    auto tweak = tweak_of(16384 /* relfilenode */, 42 /* block */);

    ByteVec ct(kDataUnit);
    ASSERT_TRUE(x.encrypt(pt.data(), ct.data(), kDataUnit, tweak.data()));
    EXPECT_NE(ct, pt);
    ByteVec back(kDataUnit);
    ASSERT_TRUE(x.decrypt(ct.data(), back.data(), kDataUnit, tweak.data()));
    EXPECT_EQ(back, pt);

    // In place (the glue encrypts into a scratch page, but decrypts in place).
    ByteVec buf = pt;
    ASSERT_TRUE(x.encrypt(buf.data(), buf.data(), kDataUnit, tweak.data()));
    EXPECT_EQ(buf, ct) << "in-place and out-of-place encryption differ";
    ASSERT_TRUE(x.decrypt(buf.data(), buf.data(), kDataUnit, tweak.data()));
    EXPECT_EQ(buf, pt);

    // Deterministic: the same key, tweak and plaintext give the same page.
    cmk::XtsCipher y(key.data());
    ByteVec ct2(kDataUnit);
    ASSERT_TRUE(y.encrypt(pt.data(), ct2.data(), kDataUnit, tweak.data()));
    EXPECT_EQ(ct2, ct);
}

TEST(CoreXts, EncryptingOnlyTheBytesAfterThePageHeader) {
    // What the smgr wrapper does: bytes [0,16) stay plaintext, [16,8192) are
    // one data unit. The header must come through untouched.
    ByteVec key = test_key(3);
    cmk::XtsCipher x(key.data());
    ByteVec page = random_bytes(kPageSize, 11), scratch(kPageSize);
    auto tweak = tweak_of(1259, 0);
    std::memcpy(scratch.data(), page.data(), kPageHeader);
    ASSERT_TRUE(x.encrypt(page.data() + kPageHeader, scratch.data() + kPageHeader, kDataUnit, tweak.data()));
    EXPECT_TRUE(std::equal(page.begin(), page.begin() + kPageHeader, scratch.begin()));
    EXPECT_FALSE(std::equal(page.begin() + kPageHeader, page.end(), scratch.begin() + kPageHeader));
    ASSERT_TRUE(x.decrypt(scratch.data() + kPageHeader, scratch.data() + kPageHeader, kDataUnit, tweak.data()));
    EXPECT_EQ(scratch, page);
}

TEST(CoreXts, ChangingTheTweakChangesEveryBlock) {
    ByteVec key = test_key(5);
    cmk::XtsCipher x(key.data());
    // An all-zero data unit: the worst case for spotting unchanged blocks.
    ByteVec pt(kDataUnit, 0);
    const std::array<uint8_t, 16> tweaks[] = {
        tweak_of(16384, 0),
        tweak_of(16385, 0),                  // lowest bit differs
        tweak_of(16384, 1),                  // only the high half differs
        tweak_of(16384 ^ (1ull << 63), 0),   // only the top bit of the low half differs
        tweak_of(16384, 1ull << 63),         // only the very last bit differs
    };
    std::vector<ByteVec> cts;
    for (const auto& t : tweaks) {
        ByteVec ct(kDataUnit);
        ASSERT_TRUE(x.encrypt(pt.data(), ct.data(), kDataUnit, t.data()));
        cts.push_back(ct);
    }
    for (size_t a = 0; a < cts.size(); a++)
        for (size_t b = a + 1; b < cts.size(); b++)
            for (size_t blk = 0; blk < kDataUnit / 16; blk++)
                EXPECT_NE(0, std::memcmp(cts[a].data() + 16 * blk, cts[b].data() + 16 * blk, 16))
                    << "tweaks " << to_hex(tweaks[a]) << " and " << to_hex(tweaks[b]) << " give the same block " << blk;
    // And within one data unit no two blocks repeat, although the plaintext
    // blocks are all equal (XTS multiplies the tweak per block).
    for (size_t i = 0; i < kDataUnit / 16; i++)
        for (size_t j = i + 1; j < kDataUnit / 16; j++)
            ASSERT_NE(0, std::memcmp(cts[0].data() + 16 * i, cts[0].data() + 16 * j, 16)) << "blocks " << i << " and " << j;
}

TEST(CoreXts, ChangingOnePlaintextByteChangesOnlyItsBlock) {
    // DESIGN.md relies on XTS being per 16-byte block (torn writes behave as
    // on a plaintext page).
    ByteVec key = test_key(9);
    cmk::XtsCipher x(key.data());
    ByteVec pt = random_bytes(kDataUnit, 13), ct(kDataUnit), ct2(kDataUnit);
    auto tweak = tweak_of(99, 7);
    ASSERT_TRUE(x.encrypt(pt.data(), ct.data(), kDataUnit, tweak.data()));
    for (size_t pos : {size_t(0), size_t(17), size_t(4095), kDataUnit - 1}) {
        ByteVec p2 = pt;
        p2[pos] ^= 0x01;
        ASSERT_TRUE(x.encrypt(p2.data(), ct2.data(), kDataUnit, tweak.data()));
        for (size_t blk = 0; blk < kDataUnit / 16; blk++) {
            bool same = std::memcmp(ct.data() + 16 * blk, ct2.data() + 16 * blk, 16) == 0;
            EXPECT_EQ(same, blk != pos / 16) << "changed byte " << pos << ", block " << blk;
        }
    }
}

TEST(CoreXts, DifferentKeysGiveDifferentCiphertext) {
    ByteVec k1 = test_key(21), k2 = k1;
    k2[63] ^= 0x80;  // only the tweak key differs
    ByteVec k3 = k1;
    k3[0] ^= 0x01;   // only the data key differs
    cmk::XtsCipher a(k1.data()), b(k2.data()), c(k3.data());
    ByteVec pt(kDataUnit, 0x5a), ca(kDataUnit), cb(kDataUnit), cc(kDataUnit);
    auto tweak = tweak_of(1, 1);
    ASSERT_TRUE(a.encrypt(pt.data(), ca.data(), kDataUnit, tweak.data()));
    ASSERT_TRUE(b.encrypt(pt.data(), cb.data(), kDataUnit, tweak.data()));
    ASSERT_TRUE(c.encrypt(pt.data(), cc.data(), kDataUnit, tweak.data()));
    EXPECT_NE(ca, cb);
    EXPECT_NE(ca, cc);
    // Decrypting with the wrong key does not give the plaintext back.
    ByteVec back(kDataUnit);
    ASSERT_TRUE(b.decrypt(ca.data(), back.data(), kDataUnit, tweak.data()));
    EXPECT_NE(back, pt);
}

TEST(CoreXts, RefusesDataUnitsShorterThanOneBlock) {
    ByteVec key = test_key(31);
    cmk::XtsCipher x(key.data());
    ByteVec in(15, 1), out(15, 0);
    auto tweak = tweak_of(0);
    EXPECT_FALSE(x.encrypt(in.data(), out.data(), in.size(), tweak.data()));
    EXPECT_FALSE(x.decrypt(in.data(), out.data(), in.size(), tweak.data()));
    // ... and still works afterwards.
    ByteVec pt = ieee_plaintext(), ct(pt.size());
    ASSERT_TRUE(x.encrypt(pt.data(), ct.data(), pt.size(), tweak.data()));
    ByteVec back(pt.size());
    ASSERT_TRUE(x.decrypt(ct.data(), back.data(), ct.size(), tweak.data()));
    EXPECT_EQ(back, pt);
}

TEST(CoreXts, KeyWithTwoEqualHalvesIsRefusedWithCryptoError) {
    // OpenSSL refuses XTS keys whose two halves are equal (IEEE 1619 requires
    // them to differ); the constructor must report it as cmk::Error, not crash.
    // Every backend refuses it alike (libgcrypt would accept it outside FIPS mode).
    ByteVec key(cmk::XtsCipher::kKeyBytes, 0x42);
    for (auto backend : {cmk::XtsCipher::Backend::kBest, cmk::XtsCipher::Backend::kLibgcrypt,
                         cmk::XtsCipher::Backend::kOpenSsl, cmk::XtsCipher::Backend::kOpenSslEvp}) {
        cmk::Error e = expect_error([&] { cmk::XtsCipher x(key.data(), backend); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Crypto)) << e.what();
        EXPECT_TRUE(contains(e.what(), "AES-256-XTS")) << e.what();
    }
}

// Every backend (xts_cipher.h) must be the same cipher.
namespace {
const cmk::XtsCipher::Backend kBackends[] = {cmk::XtsCipher::Backend::kLibgcrypt, cmk::XtsCipher::Backend::kOpenSsl,
                                             cmk::XtsCipher::Backend::kOpenSslEvp};
}  // namespace

TEST(CoreXtsBackends, FastestBackendIsAvailableAndChosenByDefault) {
    // Debian 12 has libgcrypt 1.10 (VAES/AVX2 XTS) and OpenSSL 3.0: without
    // them every page pays a slower path.
    ASSERT_TRUE(cmk::XtsCipher::available(cmk::XtsCipher::Backend::kLibgcrypt));
    ASSERT_TRUE(cmk::XtsCipher::available(cmk::XtsCipher::Backend::kOpenSsl));
    ByteVec key = test_key(21);
    cmk::XtsCipher best(key.data());
    EXPECT_EQ(best.backend(), cmk::XtsCipher::Backend::kLibgcrypt);
    for (auto backend : kBackends) {
        cmk::XtsCipher x(key.data(), backend);
        EXPECT_EQ(x.backend(), backend);
    }
}

TEST(CoreXtsBackends, IeeeVectorsThroughEachBackend) {
    for (auto backend : kBackends) {
        for (const auto& v : kIeeeXtsAes256Vectors) {
            ByteVec key = from_hex(v.key), tweak = from_hex(v.tweak), pt = ieee_plaintext();
            cmk::XtsCipher x(key.data(), backend);
            ByteVec out(pt.size());
            ASSERT_TRUE(x.encrypt(pt.data(), out.data(), pt.size(), tweak.data()));
            EXPECT_EQ(to_hex(out), v.ciphertext) << "vector " << v.number << " " << cmk::XtsCipher::backend_name(backend);
            ASSERT_TRUE(x.decrypt(out.data(), out.data(), out.size(), tweak.data()));
            EXPECT_EQ(out, pt);
        }
        ByteVec key = from_hex(kIeeeXtsAes256Key), tweak = from_hex(kXtsAes256StealingTweak);
        ByteVec pt = from_hex(kXtsAes256StealingPlaintext), out(pt.size());
        cmk::XtsCipher x(key.data(), backend);
        ASSERT_TRUE(x.encrypt(pt.data(), out.data(), pt.size(), tweak.data()));
        EXPECT_EQ(to_hex(out), kXtsAes256StealingCiphertext) << cmk::XtsCipher::backend_name(backend);
    }
}

TEST(CoreXtsBackends, BackendsAgreeOnEveryLengthTheServerUses) {
    // 16 (shortest), odd lengths (ciphertext stealing: temp units), 8152 (the
    // first WAL page of a segment), 8176 (data and WAL pages), 8192 (temp),
    // and random lengths in between; in place and out of place.
    std::vector<size_t> lengths = {16, 17, 31, 33, 500, 4095, 8152, 8176, 8192};
    std::mt19937 rng(77);
    for (int i = 0; i < 200; i++) lengths.push_back(16 + rng() % 8177);
    uint32_t seed = 100;
    for (size_t len : lengths) {
        ByteVec key = random_bytes(cmk::XtsCipher::kKeyBytes, seed++);
        ByteVec pt = random_bytes(len, seed++);
        auto tweak = tweak_of(rng(), rng());
        cmk::XtsCipher ref(key.data(), cmk::XtsCipher::Backend::kOpenSslEvp);
        ByteVec expect(len);
        ASSERT_TRUE(ref.encrypt(pt.data(), expect.data(), len, tweak.data()));
        for (auto backend : kBackends) {
            cmk::XtsCipher x(key.data(), backend);
            const char* name = cmk::XtsCipher::backend_name(backend);
            ByteVec out(len);
            ASSERT_TRUE(x.encrypt(pt.data(), out.data(), len, tweak.data()));
            EXPECT_EQ(out, expect) << name << ", length " << len;
            ByteVec in_place = pt;
            ASSERT_TRUE(x.encrypt(in_place.data(), in_place.data(), len, tweak.data()));
            EXPECT_EQ(in_place, expect) << name << " in place, length " << len;
            ASSERT_TRUE(x.decrypt(expect.data(), out.data(), len, tweak.data()));
            EXPECT_EQ(out, pt) << name << " cannot decrypt, length " << len;
            ASSERT_TRUE(x.decrypt(in_place.data(), in_place.data(), len, tweak.data()));
            EXPECT_EQ(in_place, pt) << name << " cannot decrypt in place, length " << len;
        }
    }
}

TEST(CoreXtsBackends, TooShortInputIsRefusedByEveryBackend) {
    ByteVec key = test_key(25);
    uint8_t in[15] = {0}, out[15];
    auto tweak = tweak_of(1);
    for (auto backend : kBackends) {
        cmk::XtsCipher x(key.data(), backend);
        EXPECT_FALSE(x.encrypt(in, out, sizeof in, tweak.data())) << cmk::XtsCipher::backend_name(backend);
        EXPECT_FALSE(x.decrypt(in, out, sizeof in, tweak.data())) << cmk::XtsCipher::backend_name(backend);
    }
}
