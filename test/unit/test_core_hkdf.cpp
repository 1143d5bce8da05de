// cmk::hkdf_sha256 (RFC 5869) and cmk::derive_keys (the sub-keys of a DEK).
#include "hkdf.h"
#include "key_derivation.h"

#include "error.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <set>

using namespace core_test;

namespace {

std::string hkdf_hex(const ByteVec& ikm, const ByteVec& salt, const ByteVec& info, size_t len) {
    cmk::SecureBytes out = cmk::hkdf_sha256(ikm.data(), ikm.size(), salt.data(), salt.size(), info.data(), info.size(), len);
    EXPECT_EQ(out.size(), len);
    return to_hex(out);
}

ByteVec range_bytes(uint8_t first, uint8_t last) {
    ByteVec b;
    for (unsigned v = first; v <= last; v++) b.push_back(static_cast<uint8_t>(v));
    return b;
}

ByteVec dek_of(uint8_t seed) {
    ByteVec d(cmk::kDekBytes);
    for (size_t i = 0; i < d.size(); i++) d[i] = static_cast<uint8_t>(seed * 31 + i * 7 + 1);
    return d;
}

}  // namespace

// RFC 5869, Appendix A.1 - A.3 (the SHA-256 cases); the same values are in
// OpenSSL's test/recipes/30-test_evp_data/evpkdf_hkdf.txt.
TEST(CoreHkdf, Rfc5869TestCase1) {
    ByteVec ikm(22, 0x0b), salt = range_bytes(0x00, 0x0c), info = range_bytes(0xf0, 0xf9);
    EXPECT_EQ(hkdf_hex(ikm, salt, info, 42),
              "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(CoreHkdf, Rfc5869TestCase2LongInputs) {
    ByteVec ikm = range_bytes(0x00, 0x4f), salt = range_bytes(0x60, 0xaf), info = range_bytes(0xb0, 0xff);
    ASSERT_EQ(ikm.size(), 80u);
    ASSERT_EQ(salt.size(), 80u);
    ASSERT_EQ(info.size(), 80u);
    EXPECT_EQ(hkdf_hex(ikm, salt, info, 82),
              "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da32"
              "75600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
}

TEST(CoreHkdf, Rfc5869TestCase3EmptySaltAndInfo) {
    ByteVec ikm(22, 0x0b);
    EXPECT_EQ(hkdf_hex(ikm, {}, {}, 42),
              "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    // Null pointers with zero lengths are how callers pass "none".
    cmk::SecureBytes out = cmk::hkdf_sha256(ikm.data(), ikm.size(), nullptr, 0, nullptr, 0, 42);
    EXPECT_EQ(to_hex(out), "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(CoreHkdf, ReferenceImplementationAgreesWithRfc) {
    // The tests below use core_test::reference_hkdf_sha256 as an independent
    // oracle; make sure it is right first.
    EXPECT_EQ(to_hex(reference_hkdf_sha256(ByteVec(22, 0x0b), range_bytes(0, 0x0c), range_bytes(0xf0, 0xf9), 42)),
              "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    EXPECT_EQ(to_hex(reference_hkdf_sha256(ByteVec(22, 0x0b), {}, {}, 42)),
              "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(CoreHkdf, OutputLengthLimitIs255Blocks) {
    ByteVec ikm(32, 1), info = bytes_of("x");
    cmk::SecureBytes max = cmk::hkdf_sha256(ikm.data(), ikm.size(), nullptr, 0, info.data(), info.size(), 255 * 32);
    EXPECT_EQ(max.size(), 255u * 32u);
    EXPECT_TRUE(same_bytes(max, reference_hkdf_sha256(ikm, {}, info, 255 * 32)));
    cmk::Error e = expect_error([&] { cmk::hkdf_sha256(ikm.data(), ikm.size(), nullptr, 0, info.data(), info.size(), 255 * 32 + 1); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Crypto)) << e.what();
}

// ---- derive_keys ----------------------------------------------------------

TEST(CoreDeriveKeys, SubKeysHaveTheDocumentedSizes) {
    ByteVec dek = dek_of(1);
    cmk::DerivedKeys k = cmk::derive_keys(dek.data(), dek.size());
    EXPECT_EQ(k.data_pages.size(), 64u);
    EXPECT_EQ(k.wal.size(), 64u);
    EXPECT_EQ(k.temp_files.size(), 64u);
    EXPECT_EQ(k.keyring_mac.size(), cmk::kMacKeyBytes);
    EXPECT_EQ(k.check_value.size(), cmk::kKcvBytes);
}

TEST(CoreDeriveKeys, DistinctPurposesGetDistinctKeys) {
    ByteVec dek = dek_of(2);
    cmk::DerivedKeys k = cmk::derive_keys(dek.data(), dek.size());
    // Compare every pair of purposes on their common prefix, and every
    // 32-byte half of an XTS key against every other one: no key material is
    // shared between two uses, and no sub-key is the DEK itself.
    std::vector<std::pair<std::string, ByteVec>> parts = {
        {"data_pages[0:32]", ByteVec(k.data_pages.begin(), k.data_pages.begin() + 32)},
        {"data_pages[32:64]", ByteVec(k.data_pages.begin() + 32, k.data_pages.end())},
        {"wal[0:32]", ByteVec(k.wal.begin(), k.wal.begin() + 32)},
        {"wal[32:64]", ByteVec(k.wal.begin() + 32, k.wal.end())},
        {"temp_files[0:32]", ByteVec(k.temp_files.begin(), k.temp_files.begin() + 32)},
        {"temp_files[32:64]", ByteVec(k.temp_files.begin() + 32, k.temp_files.end())},
        {"keyring_mac", ByteVec(k.keyring_mac.begin(), k.keyring_mac.end())},
        {"dek", dek},
    };
    for (size_t i = 0; i < parts.size(); i++)
        for (size_t j = i + 1; j < parts.size(); j++)
            EXPECT_NE(parts[i].second, parts[j].second) << parts[i].first << " == " << parts[j].first;
    // The check value is not a prefix of any key either.
    for (const auto& p : parts)
        EXPECT_FALSE(std::equal(k.check_value.begin(), k.check_value.end(), p.second.begin())) << p.first;
}

TEST(CoreDeriveKeys, Deterministic) {
    ByteVec dek = dek_of(3);
    cmk::DerivedKeys a = cmk::derive_keys(dek.data(), dek.size());
    cmk::DerivedKeys b = cmk::derive_keys(dek.data(), dek.size());
    EXPECT_EQ(a.data_pages, b.data_pages);
    EXPECT_EQ(a.wal, b.wal);
    EXPECT_EQ(a.temp_files, b.temp_files);
    EXPECT_EQ(a.keyring_mac, b.keyring_mac);
    EXPECT_EQ(a.check_value, b.check_value);
}

TEST(CoreDeriveKeys, DifferentDeksGiveDifferentKeys) {
    ByteVec d1 = dek_of(4), d2 = d1;
    d2[31] ^= 0x01;
    cmk::DerivedKeys a = cmk::derive_keys(d1.data(), d1.size());
    cmk::DerivedKeys b = cmk::derive_keys(d2.data(), d2.size());
    EXPECT_NE(a.data_pages, b.data_pages);
    EXPECT_NE(a.wal, b.wal);
    EXPECT_NE(a.temp_files, b.temp_files);
    EXPECT_NE(a.keyring_mac, b.keyring_mac);
    EXPECT_NE(a.check_value, b.check_value);
}

TEST(CoreDeriveKeys, PinnedToHkdfSha256WithFixedSaltAndLabels) {
    // The derivation is part of the on-disk format: every page and every
    // keyring MAC of every cluster depends on it. This pins it to
    // HKDF-SHA256(DEK, salt "cmk key hierarchy v1", info = label) computed by
    // an independent implementation. If this fails, existing clusters can no
    // longer be read: change the labels only with a new keyring format.
    ByteVec dek = dek_of(5), salt = bytes_of("cmk key hierarchy v1");
    cmk::DerivedKeys k = cmk::derive_keys(dek.data(), dek.size());
    EXPECT_TRUE(same_bytes(k.data_pages, reference_hkdf_sha256(dek, salt, bytes_of("cmk data pages aes-256-xts"), 64)));
    EXPECT_TRUE(same_bytes(k.wal, reference_hkdf_sha256(dek, salt, bytes_of("cmk wal aes-256-xts"), 64)));
    EXPECT_TRUE(same_bytes(k.temp_files, reference_hkdf_sha256(dek, salt, bytes_of("cmk temp files aes-256-xts"), 64)));
    EXPECT_TRUE(same_bytes(k.keyring_mac, reference_hkdf_sha256(dek, salt, bytes_of("cmk keyring hmac-sha256"), 32)));
    EXPECT_TRUE(same_bytes(k.check_value, reference_hkdf_sha256(dek, salt, bytes_of("cmk key check value"), 16)));
}

TEST(CoreDeriveKeys, XtsKeysHaveDistinctHalves) {
    // OpenSSL refuses an XTS key whose halves are equal; derived keys never are.
    for (uint8_t seed = 0; seed < 16; seed++) {
        ByteVec dek = dek_of(seed);
        cmk::DerivedKeys k = cmk::derive_keys(dek.data(), dek.size());
        for (const cmk::SecureBytes* key : {&k.data_pages, &k.wal, &k.temp_files})
            EXPECT_FALSE(std::equal(key->begin(), key->begin() + 32, key->begin() + 32));
    }
}

TEST(CoreDeriveKeys, DekMustBe32Bytes) {
    ByteVec big(64, 7);
    for (size_t len : {size_t(0), size_t(1), size_t(16), size_t(31), size_t(33), size_t(64)}) {
        cmk::Error e = expect_error([&] { cmk::derive_keys(big.data(), len); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << "length " << len << ": " << e.what();
        EXPECT_TRUE(contains(e.what(), "32")) << e.what();
        EXPECT_TRUE(contains(e.what(), std::to_string(len))) << "message should name the length: " << e.what();
    }
    EXPECT_NO_THROW(cmk::derive_keys(big.data(), 32));
}

TEST(CoreDeriveKeys, GenerateDekGivesFreshRandom32Bytes) {
    std::set<std::string> seen;
    for (int i = 0; i < 8; i++) {
        cmk::SecureBytes d = cmk::generate_dek();
        ASSERT_EQ(d.size(), cmk::kDekBytes);
        EXPECT_NE(to_hex(d), std::string(64, '0'));
        EXPECT_TRUE(seen.insert(to_hex(d)).second) << "generate_dek repeated a key";
    }
}
