// The formats pg_cmk verify reads: PostgreSQL's page checksum, the encrypted
// data page, the temporary-file units, file names, pg_control.
#include "capi.h"
#include "data_page.h"
#include "key_derivation.h"
#include "page_checksum.h"
#include "verify_control.h"
#include "verify_paths.h"
#include "xts_cipher.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

using namespace core_test;

namespace {

std::vector<uint8_t> pattern_page() {
    std::vector<uint8_t> p(8192);
    for (size_t i = 0; i < p.size(); i++) p[i] = static_cast<uint8_t>((i * 7 + 3) & 0xff);
    return p;
}

void put16(std::vector<uint8_t>& p, size_t at, uint16_t v) { std::memcpy(p.data() + at, &v, 2); }
uint16_t get16(const std::vector<uint8_t>& p, size_t at) { uint16_t v; std::memcpy(&v, p.data() + at, 2); return v; }

// A page as PageInit leaves it plus a tuple's worth of bytes.
std::vector<uint8_t> heap_page(unsigned seed) {
    std::vector<uint8_t> p(8192, 0);
    put16(p, 12, 28);      // pd_lower
    put16(p, 14, 8000);    // pd_upper
    put16(p, 16, 8192);    // pd_special
    put16(p, 18, 0x2004);  // pd_pagesize_version
    std::mt19937 rng(seed);
    for (size_t i = 8000; i < 8192; i++) p[i] = static_cast<uint8_t>(rng());
    p[0] = static_cast<uint8_t>(seed);  // pd_lsn
    return p;
}

std::vector<uint8_t> key64(uint8_t base) {
    std::vector<uint8_t> k(64);
    for (size_t i = 0; i < k.size(); i++) k[i] = static_cast<uint8_t>(base + i * 13);
    return k;
}

}  // namespace

// Expected values computed with PostgreSQL 15's storage/checksum_impl.h.
TEST(PageChecksum, MatchesPostgresImplementation) {
    auto p = pattern_page();
    EXPECT_EQ(cmk::pg_checksum_page(p.data(), 0), 43596);
    EXPECT_EQ(cmk::pg_checksum_page(p.data(), 12345), 55827);
    EXPECT_EQ(cmk::pg_checksum_page(p.data(), 131073), 43593);

    std::vector<uint8_t> empty(8192, 0);
    put16(empty, 12, 24);
    put16(empty, 14, 8192);
    put16(empty, 16, 8192);
    put16(empty, 18, 0x2004);
    EXPECT_EQ(cmk::pg_checksum_page(empty.data(), 7), 25949);
}

TEST(PageChecksum, IgnoresTheStoredChecksumAndSeesEveryOtherByte) {
    auto p = pattern_page();
    uint16_t c = cmk::pg_checksum_page(p.data(), 3);
    put16(p, 8, 0xBEEF);
    EXPECT_EQ(cmk::pg_checksum_page(p.data(), 3), c);
    p[5000] ^= 1;
    EXPECT_NE(cmk::pg_checksum_page(p.data(), 3), c);
    p[5000] ^= 1;
    EXPECT_NE(cmk::pg_checksum_page(p.data(), 4), c);
    // Unaligned input gives the same answer.
    std::vector<uint8_t> shifted(8193);
    std::memcpy(shifted.data() + 1, p.data(), 8192);
    EXPECT_EQ(cmk::pg_checksum_page(shifted.data() + 1, 3), c);
}

TEST(DataPage, ClassifiesByGenerationBitsAndZeros) {
    std::vector<uint8_t> zeros(8192, 0);
    EXPECT_EQ(cmk::data_page_kind(zeros.data()), cmk::DataPageKind::New);
    auto p = heap_page(1);
    EXPECT_EQ(cmk::data_page_kind(p.data()), cmk::DataPageKind::Plaintext);
    put16(p, 10, 0x0004);  // PD_ALL_VISIBLE: still plaintext
    EXPECT_EQ(cmk::data_page_kind(p.data()), cmk::DataPageKind::Plaintext);
    put16(p, 10, 0x0304);
    EXPECT_EQ(cmk::data_page_kind(p.data()), cmk::DataPageKind::Encrypted);
    EXPECT_EQ(cmk::data_page_generation(p.data()), 3u);
    // A page of zeros but one byte, anywhere, is not new.
    zeros[8191] = 1;
    EXPECT_EQ(cmk::data_page_kind(zeros.data()), cmk::DataPageKind::Plaintext);
}

TEST(DataPage, TweakIsRelfilenodeThenBlockLittleEndian) {
    uint8_t t[16];
    cmk::data_page_tweak(0x01020304, 0x0A0B0C0D, t);
    EXPECT_EQ(to_hex(std::vector<uint8_t>(t, t + 16)), "040302010d0c0b0a0000000000000000");
}

TEST(DataPage, EncryptDecryptRoundTripWithChecksumOverCiphertext) {
    auto k = key64(1);
    cmk::XtsCipher xts(k.data());
    auto plain = heap_page(2);
    std::vector<uint8_t> enc(8192);
    ASSERT_TRUE(cmk::data_page_encrypt(xts, 5, 16384, 77, true, plain.data(), enc.data()));
    EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + 8, enc.begin()));  // pd_lsn stays readable
    EXPECT_EQ(get16(enc, 12), 28);  // pd_lower, pd_upper stay readable
    EXPECT_EQ(get16(enc, 14), 8000);
    EXPECT_EQ(cmk::data_page_generation(enc.data()), 5u);
    EXPECT_EQ(get16(enc, 8), cmk::pg_checksum_page(enc.data(), 77));
    EXPECT_FALSE(std::equal(plain.begin() + 16, plain.end(), enc.begin() + 16));

    // The same bytes by XTS directly, with the format's tweak written out by
    // hand (relfilenode 16384, block 77, little-endian).
    std::vector<uint8_t> manual(plain.begin() + 16, plain.end());
    uint8_t tweak[16] = {0x00, 0x40, 0, 0, 77, 0, 0, 0};
    ASSERT_TRUE(xts.encrypt(manual.data(), manual.data(), manual.size(), tweak));
    EXPECT_TRUE(std::equal(manual.begin(), manual.end(), enc.begin() + 16));

    EXPECT_FALSE(cmk::data_page_encrypt(xts, 5, 16384, 77, true, enc.data(), enc.data())) << "never twice";
    std::vector<uint8_t> zeros(8192, 0), out(8192);
    EXPECT_FALSE(cmk::data_page_encrypt(xts, 5, 16384, 77, true, zeros.data(), out.data())) << "new pages pass";
    EXPECT_FALSE(cmk::data_page_encrypt(xts, 0, 16384, 77, true, plain.data(), out.data()));
    EXPECT_FALSE(cmk::data_page_encrypt(xts, 256, 16384, 77, true, plain.data(), out.data()));

    auto dec = enc;
    ASSERT_TRUE(cmk::data_page_decrypt(xts, 16384, 77, dec.data()));
    put16(dec, 8, 0);
    EXPECT_TRUE(same_bytes(dec, plain));
    EXPECT_EQ(cmk::data_page_header_problem(dec.data()), nullptr);
}

// The server's read path (data checksums on): the stored checksum is
// checked over the ciphertext, and the decrypted page carries the
// plaintext's checksum, or one sure to fail when the ciphertext's did not
// match, so that PostgreSQL reports it as a corrupt page.
TEST(DataPage, ServerReadPathSetsThePlaintextChecksumOrOneThatFails) {
    auto k = key64(1);
    cmk::XtsCipher xts(k.data());
    auto plain = heap_page(5);
    std::vector<uint8_t> enc(8192);
    ASSERT_TRUE(cmk::data_page_encrypt(xts, 2, 16384, 9, cmk::core_page_checksum, plain.data(), enc.data()));
    EXPECT_EQ(get16(enc, 8), cmk::pg_checksum_page(enc.data(), 9));

    auto dec = enc;
    ASSERT_TRUE(cmk::data_page_decrypt(xts, 16384, 9, dec.data(), cmk::core_page_checksum));
    EXPECT_EQ(get16(dec, 8), cmk::pg_checksum_page(dec.data(), 9)) << "the plaintext's checksum";
    auto expected = plain;
    put16(expected, 8, cmk::pg_checksum_page(plain.data(), 9));
    EXPECT_TRUE(same_bytes(dec, expected));

    auto torn = enc;
    torn[4000] ^= 0x01;  // a ciphertext bit flipped on disk
    ASSERT_TRUE(cmk::data_page_decrypt(xts, 16384, 9, torn.data(), cmk::core_page_checksum));
    EXPECT_NE(get16(torn, 8), cmk::pg_checksum_page(torn.data(), 9)) << "must fail PostgreSQL's check";

    auto as_stored = enc;  // without a checksum function pd_checksum stays as stored
    ASSERT_TRUE(cmk::data_page_decrypt(xts, 16384, 9, as_stored.data()));
    EXPECT_EQ(get16(as_stored, 8), get16(enc, 8));
}

// What the server calls (capi.h) is this same format: the C entry points
// give the bytes data_page_encrypt gives with the data-pages sub-key.
TEST(DataPage, TheServersCInterfaceIsTheSameImplementation) {
    uint8_t dek[CMK_DEK_BYTES];
    for (size_t i = 0; i < sizeof dek; i++) dek[i] = static_cast<uint8_t>(3 * i + 1);
    cmk_error err;
    cmk_xts* x = cmk_xts_create(dek, CMK_PURPOSE_DATA_PAGES, &err);
    ASSERT_NE(x, nullptr) << err.message;
    cmk::DerivedKeys keys = cmk::derive_keys(dek, CMK_DEK_BYTES);
    cmk::XtsCipher xts(keys.data_pages.data());

    auto plain = heap_page(6);
    std::vector<uint8_t> zeros(8192, 0), out(8192, 0xEE), via_c(8192), via_cpp(8192);
    EXPECT_EQ(cmk_data_page_classify(zeros.data()), CMK_DATA_PAGE_NEW);
    EXPECT_EQ(cmk_data_page_classify(plain.data()), CMK_DATA_PAGE_PLAINTEXT);
    EXPECT_EQ(cmk_data_page_encrypt(x, 3, 16384, 5, nullptr, zeros.data(), out.data()), 0) << "new pages pass through";
    EXPECT_EQ(out, std::vector<uint8_t>(8192, 0xEE)) << "and out is not written";
    EXPECT_EQ(cmk_data_page_encrypt(x, 0, 16384, 5, nullptr, plain.data(), out.data()), 0);

    ASSERT_EQ(cmk_data_page_encrypt(x, 3, 16384, 5, cmk::core_page_checksum, plain.data(), via_c.data()), 1);
    ASSERT_TRUE(cmk::data_page_encrypt(xts, 3, 16384, 5, true, plain.data(), via_cpp.data()));
    EXPECT_TRUE(same_bytes(via_c, via_cpp));
    EXPECT_EQ(cmk_data_page_classify(via_c.data()), CMK_DATA_PAGE_ENCRYPTED);
    EXPECT_EQ(cmk_data_page_generation(via_c.data()), 3u);
    EXPECT_EQ(cmk_data_page_encrypt(x, 3, 16384, 5, nullptr, via_c.data(), out.data()), 0) << "never twice";

    ASSERT_EQ(cmk_data_page_decrypt(x, 16384, 5, cmk::core_page_checksum, via_c.data()), 1);
    EXPECT_EQ(cmk_data_page_generation(via_c.data()), 0u);
    EXPECT_EQ(get16(via_c, 8), cmk::pg_checksum_page(plain.data(), 5));
    put16(via_c, 8, 0);
    EXPECT_TRUE(same_bytes(via_c, plain));
    EXPECT_EQ(cmk_data_page_decrypt(x, 16384, 5, nullptr, via_c.data()), 0) << "a plaintext page is left alone";
    cmk_xts_free(x);
}

TEST(DataPage, WrongTweakOrKeyGivesABadHeader) {
    auto k = key64(1), other = key64(2);
    cmk::XtsCipher xts(k.data()), wrong(other.data());
    auto plain = heap_page(3);
    std::vector<uint8_t> enc(8192);
    ASSERT_TRUE(cmk::data_page_encrypt(xts, 1, 16384, 0, false, plain.data(), enc.data()));
    for (auto [cipher, rel, blk] : {std::tuple<cmk::XtsCipher*, uint32_t, uint32_t>{&xts, 16385, 0},
                                    {&xts, 16384, 1}, {&wrong, 16384, 0}}) {
        auto dec = enc;
        ASSERT_TRUE(cmk::data_page_decrypt(*cipher, rel, blk, dec.data()));
        EXPECT_NE(cmk::data_page_header_problem(dec.data()), nullptr);
    }
}

TEST(DataPage, HeaderProblems) {
    auto p = heap_page(4);
    EXPECT_EQ(cmk::data_page_header_problem(p.data()), nullptr);
    auto bad = [&](size_t at, uint16_t v) {
        auto q = p;
        put16(q, at, v);
        return cmk::data_page_header_problem(q.data());
    };
    EXPECT_NE(bad(18, 0x2005), nullptr);  // layout version
    EXPECT_NE(bad(10, 0x0010), nullptr);  // unknown flag
    EXPECT_EQ(bad(10, 0x0107), nullptr);  // generation bits are not a problem here
    EXPECT_NE(bad(12, 20), nullptr);      // lower inside the header
    EXPECT_NE(bad(12, 8001), nullptr);    // lower > upper
    EXPECT_NE(bad(16, 7999), nullptr);    // upper > special
    EXPECT_NE(bad(16, 8188), nullptr);    // special not MAXALIGNed
    auto q = p;
    put16(q, 14, 8192);
    put16(q, 16, 8200);
    EXPECT_NE(cmk::data_page_header_problem(q.data()), nullptr);  // special beyond the page
}

TEST(VerifyPaths, RelationFileNames) {
    auto r = cmk::parse_relation_file_name("16384");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->relfilenode, 16384u);
    EXPECT_EQ(r->segment, 0u);
    EXPECT_EQ(r->fork, "");
    EXPECT_EQ(r->relation, "16384");
    r = cmk::parse_relation_file_name("1259_fsm.12");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->relfilenode, 1259u);
    EXPECT_EQ(r->segment, 12u);
    EXPECT_EQ(r->fork, "_fsm");
    EXPECT_EQ(r->relation, "1259_fsm");
    r = cmk::parse_relation_file_name("t3_16390_vm");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->temporary);
    EXPECT_EQ(r->relfilenode, 16390u);
    EXPECT_EQ(r->relation, "t3_16390_vm");
    ASSERT_TRUE(cmk::parse_relation_file_name("4294967295_init"));
    for (const char* no : {"", "pg_filenode.map", "PG_VERSION", "pg_internal.init", "16384_", "16384_main",
                           "16384.", "16384.x", "16384.1.2", "4294967296", "t_16384", "t3", "16384 ", "-1", "pgsql_tmp"})
        EXPECT_FALSE(cmk::parse_relation_file_name(no)) << no;
}

TEST(VerifyPaths, OtherNames) {
    EXPECT_TRUE(cmk::is_wal_segment_file_name("000000010000000000000001"));
    EXPECT_TRUE(cmk::is_wal_segment_file_name("00000002000000000000000A.partial"));
    EXPECT_FALSE(cmk::is_wal_segment_file_name("00000002.history"));
    EXPECT_FALSE(cmk::is_wal_segment_file_name("000000010000000000000001.00000028.backup"));
    EXPECT_FALSE(cmk::is_wal_segment_file_name("xlogtemp.123"));
    EXPECT_TRUE(cmk::is_twophase_file_name("0000ABCD"));
    EXPECT_TRUE(cmk::is_twophase_file_name("0000abcd.tmp"));
    EXPECT_FALSE(cmk::is_twophase_file_name("0000ABC"));
    EXPECT_FALSE(cmk::is_twophase_file_name("0000ABCG"));
    EXPECT_TRUE(cmk::is_spill_file_name("xid-735-lsn-0-3000000.spill"));
    EXPECT_FALSE(cmk::is_spill_file_name("state"));
    EXPECT_TRUE(cmk::is_tablespace_version_dir("PG_15_202209061"));
    EXPECT_FALSE(cmk::is_tablespace_version_dir("PG_16_202307071"));
}

TEST(VerifyControl, ReadsChecksumsAndSegmentSize) {
    std::vector<uint8_t> c(8192, 0);
    auto put32 = [&](size_t at, uint32_t v) { std::memcpy(c.data() + at, &v, 4); };
    put32(8, 1300);
    put32(216, 8192);
    put32(220, 131072);
    put32(252, 1);
    auto info = cmk::parse_control_info(c.data(), c.size());
    EXPECT_TRUE(info.found);
    EXPECT_TRUE(info.data_checksums);
    EXPECT_EQ(info.relseg_size, 131072u);
    put32(252, 0);
    EXPECT_FALSE(cmk::parse_control_info(c.data(), c.size()).data_checksums);
    put32(8, 1201);
    info = cmk::parse_control_info(c.data(), c.size());
    EXPECT_FALSE(info.found);
    EXPECT_TRUE(contains(info.problem, "1201"));
    EXPECT_FALSE(cmk::parse_control_info(c.data(), 100).found);
}

TEST(VerifyControl, ReadsTheCheckpointRedoPoint) {
    std::vector<uint8_t> c(8192, 0);
    uint32_t version = 1300;
    std::memcpy(c.data() + 8, &version, 4);
    uint64_t checkpoint = 0x5600100, redo = 0x5600028;
    std::memcpy(c.data() + 32, &checkpoint, 8);    // checkPoint
    std::memcpy(c.data() + 40, &redo, 8);          // checkPointCopy.redo
    EXPECT_EQ(cmk::parse_control_info(c.data(), c.size()).checkpoint_redo, redo);
}
