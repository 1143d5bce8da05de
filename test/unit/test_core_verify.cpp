// pg_cmk verify's scan (verify.h) over synthetic data directories: every
// file class, encrypted, plaintext and new pages, mixed WAL segments, the
// exit status, and --check-keys catching tampered, misplaced or foreign
// pages and files.
#include "capi.h"
#include "data_page.h"
#include "error.h"
#include "key_store.h"
#include "verify.h"
#include "verify_keys.h"
#include "temp_unit.h"
#include "wal_page.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

using namespace core_test;
namespace fs = std::filesystem;

namespace {

using Page = std::vector<uint8_t>;

void put16(Page& p, size_t at, uint16_t v) { std::memcpy(p.data() + at, &v, 2); }
void put32(Page& p, size_t at, uint32_t v) { std::memcpy(p.data() + at, &v, 4); }
void put64(Page& p, size_t at, uint64_t v) { std::memcpy(p.data() + at, &v, 8); }

Page heap_page(unsigned seed) {
    Page p(8192, 0);
    put16(p, 12, 32);
    put16(p, 14, 7936);
    put16(p, 16, 8192);
    put16(p, 18, 0x2004);
    std::mt19937 rng(seed);
    for (size_t i = 7936; i < 8192; i++) p[i] = static_cast<uint8_t>(rng());
    put64(p, 0, 0x1000000ull + seed);
    return p;
}

Page zero_page() { return Page(8192, 0); }

// A plaintext WAL page (short header unless long), as PostgreSQL 15 writes it.
Page wal_page(uint64_t pageaddr, bool long_header, unsigned seed) {
    Page p(8192, 0);
    put16(p, 0, 0xD110);
    put16(p, 2, long_header ? 0x0002 : 0x0000);
    put32(p, 4, 1);
    put64(p, 8, pageaddr);
    if (long_header) {
        put64(p, 24, 7300000000000000001ull);
        put32(p, 32, 16 * 1024 * 1024);
        put32(p, 36, 8192);
    }
    std::mt19937 rng(seed);
    for (size_t i = long_header ? 40 : 24; i < 600; i++) p[i] = static_cast<uint8_t>(rng());
    return p;
}

std::string concat(const std::vector<Page>& pages) {
    std::string s;
    for (const Page& p : pages) s.append(p.begin(), p.end());
    return s;
}

class Verify : public ::testing::Test {
protected:
    TempDir tmp, tablespace, keydir;
    std::string data = tmp / "data";
    uint32_t relseg = 4;  // blocks per relation segment in this cluster's pg_control
    bool checksums = true;

    std::unique_ptr<cmk::OpenedKeys> opened;
    std::unique_ptr<cmk::VerifyKeys> keys;

    void SetUp() override {
        for (const char* d : {"global", "base/1", "base/5", "base/pgsql_tmp/pgsql_tmp77.0.fileset", "pg_wal/archive_status",
                              "pg_twophase", "pg_replslot/slot1", "pg_stat_tmp", "pg_stat", "pg_tblspc", "pg_xact", "pg_notify"})
            fs::create_directories(data + "/" + d);
        write_text(data + "/PG_VERSION", "15\n");
        write_control();
    }

    void write_control() {
        Page c(8192, 0);
        put32(c, 8, 1300);
        put32(c, 216, 8192);
        put32(c, 220, relseg);
        put32(c, 252, checksums ? 1 : 0);
        write_file("global/pg_control", {c});
    }

    void write_file(const std::string& rel, const std::vector<Page>& pages) { write_text(data + "/" + rel, concat(pages)); }

    void open_keys() {
        std::string kek = keydir / "kek.pem";
        write_text(kek, rsa_key(2048, 0).pem);
        opened = std::make_unique<cmk::OpenedKeys>(
            cmk::open_or_create_keys(data, "file:" + kek, {}, [] { return false; }));
        keys = std::make_unique<cmk::VerifyKeys>(*opened);
    }

    Page encrypted(uint32_t relnode, uint32_t blkno, unsigned seed) {
        Page in = heap_page(seed), out(8192);
        EXPECT_TRUE(cmk::data_page_encrypt(*keys->data_pages(1), 1, relnode, blkno, checksums, in.data(), out.data()));
        return out;
    }

    Page encrypted_wal(uint64_t pageaddr, bool long_header, unsigned seed) {
        Page in = wal_page(pageaddr, long_header, seed), out(8192);
        EXPECT_TRUE(cmk::wal_page_encrypt(*keys->wal(1), 1, in.data(), out.data()));
        return out;
    }

    std::string encrypted_temp_file(const std::string& rel, std::string plain) {
        uint64_t h = cmk::temp_file_path_hash(rel);
        for (size_t off = 0, unit = 0; off < plain.size(); off += 8192, unit++) {
            size_t len = std::min<size_t>(8192, plain.size() - off);
            auto* p = reinterpret_cast<uint8_t*>(&plain[off]);
            EXPECT_TRUE(keys->temp_files(1)->encrypt(h, unit, p, p, len));
        }
        return plain;
    }

    static std::string le32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

    // A cluster with something of every kind; pages encrypted with the keyring's generation 1.
    void populate() {
        open_keys();
        // base/5/16384: 4 pages in segment 0, 2 in segment 1 (blocks 4 and 5), an FSM fork.
        write_file("base/5/16384", {encrypted(16384, 0, 1), heap_page(2), zero_page(), encrypted(16384, 3, 3)});
        write_file("base/5/16384.1", {encrypted(16384, 4, 4), encrypted(16384, 5, 5)});
        write_file("base/5/16384_fsm", {heap_page(6)});
        write_file("base/5/16390", {encrypted(16390, 0, 7)});
        write_file("base/5/t3_16400", {encrypted(16400, 0, 8)});
        write_file("base/1/1259", {heap_page(9), heap_page(10)});
        write_file("global/1262", {heap_page(11)});
        write_text(data + "/base/5/pg_filenode.map", std::string(512, 'x'));
        write_text(data + "/base/5/PG_VERSION", "15\n");
        write_text(data + "/base/5/pg_internal.init", std::string(9000, 'y'));
        // A tablespace (a symbolic link, as initdb and CREATE TABLESPACE make it).
        fs::create_directories(tablespace.path() + "/PG_15_202209061/5");
        fs::create_directories(tablespace.path() + "/PG_16_202307071/5");
        fs::create_directories(tablespace.path() + "/PG_15_202209061/pgsql_tmp");
        fs::create_symlink(tablespace.path(), data + "/pg_tblspc/16500");
        write_text(tablespace.path() + "/PG_15_202209061/5/16501", concat({encrypted(16501, 0, 12), zero_page()}));
        write_text(tablespace.path() + "/PG_16_202307071/5/16502", concat({heap_page(13)}));
        write_text(tablespace.path() + "/PG_15_202209061/pgsql_tmp/pgsql_tmp80.1", std::string(100, 'z'));
        // WAL: a mixed segment (plaintext long header page, encrypted, zeros, plaintext) and an encrypted one.
        write_file("pg_wal/000000010000000000000001",
                   {wal_page(0x1000000, true, 1), encrypted_wal(0x1002000, false, 2), zero_page(), wal_page(0x1006000, false, 3)});
        write_file("pg_wal/000000010000000000000002",
                   {encrypted_wal(0x2000000, true, 4), encrypted_wal(0x2002000, false, 5)});
        write_file("pg_wal/00000002.history", {heap_page(14)});
        write_file("pg_wal/archive_status/000000010000000000000001.done", {});
        // Files without marks.
        write_text(data + "/base/pgsql_tmp/pgsql_tmp77.0", std::string(20000, 'a'));
        write_text(data + "/base/pgsql_tmp/pgsql_tmp77.0.fileset/o1of2.p0.0", std::string(300, 'b'));
        write_text(data + "/pg_replslot/slot1/xid-700-lsn-0-1000000.spill", std::string(5000, 'c'));
        write_text(data + "/pg_replslot/slot1/state", std::string(200, 'd'));
        write_text(data + "/pg_stat_tmp/pgss_query_texts.stat", "select 1\0select 2\0");
        write_text(data + "/pg_stat_tmp/pgstat.stat", "x");
        write_text(data + "/pg_notify/0000", std::string(16384, 'n'));
        write_text(data + "/pg_notify/junk", "j");
        // Two-phase and the pg_stat_statements dump: plaintext, encrypted, empty.
        write_text(data + "/pg_twophase/0000ABCD", le32(0x57F94534) + std::string(600, 'p'));
        write_text(data + "/pg_twophase/0000ABCE",
                   encrypted_temp_file("pg_twophase/0000ABCE", le32(0x57F94534) + std::string(9000, 'q')));
        write_text(data + "/pg_twophase/0000ABCF", "");
        write_text(data + "/pg_stat/pg_stat_statements.stat",
                   encrypted_temp_file("pg_stat/pg_stat_statements.stat", le32(0x20220408) + std::string(50, 'r')));
        write_text(data + "/pg_xact/0000", std::string(8192, 'u'));
    }

    cmk::VerifyReport scan(bool with_keys = false, uint32_t sample = 64) {
        cmk::VerifyOptions o;
        o.keys = with_keys ? keys.get() : nullptr;
        o.sample = sample;
        return cmk::verify_data_directory(data, o);
    }

    static const cmk::VerifyFile* find(const cmk::VerifyReport& r, const std::string& path) {
        for (const auto& f : r.files)
            if (f.path == path) return &f;
        return nullptr;
    }

    static std::string counts(const cmk::UnitCounts& u) {
        return std::to_string(u.encrypted) + "/" + std::to_string(u.plaintext) + "/" + std::to_string(u.empty) + "/" +
               std::to_string(u.unmarked);
    }

    void flip(const std::string& rel, size_t offset) {
        std::string s = read_text(data + "/" + rel);
        s[offset] = static_cast<char>(s[offset] ^ 0x40);
        write_text(data + "/" + rel, s);
    }
};

TEST_F(Verify, CountsEveryClassWithoutAKey) {
    populate();
    cmk::VerifyReport r = scan();
    EXPECT_TRUE(r.control.found);
    EXPECT_TRUE(r.control.data_checksums);
    EXPECT_TRUE(r.keyring_present);
    EXPECT_EQ(r.keyring_current_generation, 1u);
    EXPECT_FALSE(r.keys_checked);

    using C = cmk::VerifyClass;
    // Pages: 16384 (2 enc + 1 plain + 1 new, + 2 enc in .1), 16384_fsm 1 plain, 16390 1 enc,
    // t3_16400 1 enc, 1259 2 plain, 1262 1 plain, tablespace 16501 1 enc + 1 new.
    EXPECT_EQ(counts(r.totals(C::DataPages).units), "7/5/2/0");
    EXPECT_EQ(r.totals(C::DataPages).files, 8u);
    EXPECT_EQ(r.totals(C::DataPages).generations.at(1), 7u);
    EXPECT_EQ(counts(find(r, "base/5/16384")->units), "4/1/1/0");
    EXPECT_EQ(find(r, "base/5/16384")->files, 2u);
    EXPECT_EQ(find(r, "base/5/16384")->bytes, 6u * 8192);
    EXPECT_EQ(counts(find(r, "base/5/16384_fsm")->units), "0/1/0/0");
    EXPECT_EQ(counts(find(r, "base/5/t3_16400")->units), "1/0/0/0");
    EXPECT_EQ(counts(find(r, "global/1262")->units), "0/1/0/0");
    EXPECT_EQ(counts(find(r, "pg_tblspc/16500/PG_15_202209061/5/16501")->units), "1/0/1/0");
    EXPECT_EQ(find(r, "pg_tblspc/16500/PG_16_202307071/5/16502"), nullptr) << "another major version's directory";
    EXPECT_EQ(find(r, "base/5/16384.1"), nullptr) << "segments count under their relation";
    EXPECT_EQ(find(r, "base/5/pg_filenode.map"), nullptr);
    EXPECT_EQ(find(r, "global/pg_control"), nullptr);

    EXPECT_EQ(counts(r.totals(C::Wal).units), "3/2/1/0");
    EXPECT_EQ(r.totals(C::Wal).files, 2u);
    EXPECT_EQ(counts(find(r, "pg_wal/000000010000000000000001")->units), "1/2/1/0");
    EXPECT_EQ(counts(find(r, "pg_wal/000000010000000000000002")->units), "2/0/0/0");

    EXPECT_EQ(counts(r.totals(C::PgsqlTmp).units), "0/0/0/3");
    EXPECT_EQ(r.totals(C::PgsqlTmp).bytes, 20400u);
    EXPECT_NE(find(r, "base/pgsql_tmp/pgsql_tmp77.0.fileset/o1of2.p0.0"), nullptr);
    EXPECT_NE(find(r, "pg_tblspc/16500/PG_15_202209061/pgsql_tmp/pgsql_tmp80.1"), nullptr);
    EXPECT_EQ(counts(r.totals(C::ReplslotSpill).units), "0/0/0/1");
    EXPECT_EQ(r.totals(C::ReplslotSpill).bytes, 5000u);
    EXPECT_EQ(counts(r.totals(C::PgssQueryTexts).units), "0/0/0/1");
    EXPECT_EQ(counts(r.totals(C::NotifyQueue).units), "0/0/0/1");
    EXPECT_EQ(r.totals(C::NotifyQueue).bytes, 16384u);
    EXPECT_EQ(counts(r.totals(C::TwoPhase).units), "1/1/1/0");
    EXPECT_EQ(counts(find(r, "pg_twophase/0000ABCD")->units), "0/1/0/0");
    EXPECT_EQ(counts(r.totals(C::PgssDump).units), "1/0/0/0");

    // Plaintext: 5 data pages, 2 WAL pages, 1 two-phase file.
    EXPECT_EQ(cmk::verify_plaintext_units(r), 8u);
    EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitPlaintext);
    EXPECT_TRUE(r.problems.empty());
    EXPECT_TRUE(r.notes.empty()) << r.notes.front();

    // Files are ordered by class, then path.
    for (size_t i = 1; i < r.files.size(); i++)
        EXPECT_TRUE(r.files[i - 1].cls < r.files[i].cls ||
                    (r.files[i - 1].cls == r.files[i].cls && r.files[i - 1].path < r.files[i].path));
}

TEST_F(Verify, ExitStatusIsZeroOnlyWhenNothingMarkedIsPlaintext) {
    open_keys();
    write_file("base/5/16384", {encrypted(16384, 0, 1), zero_page()});
    write_file("pg_wal/000000010000000000000001", {encrypted_wal(0x1000000, true, 1), zero_page()});
    write_text(data + "/base/pgsql_tmp/pgsql_tmp1.0", std::string(10, 'x'));  // unmarked: no finding
    cmk::VerifyReport r = scan();
    EXPECT_EQ(cmk::verify_plaintext_units(r), 0u);
    EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitOk);

    // Each marked class alone makes it 3.
    for (auto [rel, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"base/5/16390", concat({heap_page(1)})},
             {"pg_wal/000000010000000000000002", concat({wal_page(0x2000000, true, 1)})},
             {"pg_twophase/00000100", le32(0x57F94534) + "abc"},
             {"pg_stat/pg_stat_statements.stat", le32(0x20220408) + "abc"}}) {
        write_text(data + "/" + rel, bytes);
        r = scan();
        EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitPlaintext) << rel;
        fs::remove(data + "/" + rel);
    }
    EXPECT_EQ(cmk::verify_exit_status(scan()), cmk::kVerifyExitOk);
}

TEST_F(Verify, ClusterWithoutCmkIsAllPlaintextAndNeedsNoKeyring) {
    write_file("global/1262", {heap_page(1)});
    write_file("base/1/1259", {heap_page(2), heap_page(3), zero_page()});
    write_file("pg_wal/000000010000000000000001", {wal_page(0x1000000, true, 1), wal_page(0x1002000, false, 2), zero_page()});
    cmk::VerifyReport r = scan();
    EXPECT_FALSE(r.keyring_present);
    EXPECT_EQ(counts(r.totals(cmk::VerifyClass::DataPages).units), "0/3/1/0");
    EXPECT_EQ(counts(r.totals(cmk::VerifyClass::Wal).units), "0/2/1/0");
    EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitPlaintext);
}

TEST_F(Verify, CheckKeysPassesOnAHealthyCluster) {
    populate();
    cmk::VerifyReport r = scan(true, 0);
    EXPECT_TRUE(r.keys_checked);
    for (const auto& p : r.problems) ADD_FAILURE() << p.path << " " << p.block << ": " << p.what;
    EXPECT_EQ(r.checks.data_pages_decrypted, 7u);
    EXPECT_EQ(r.checks.checksums_verified, 7u);
    EXPECT_EQ(r.checks.wal_pages_decrypted, 1u + 1u) << "short-header pages only";
    EXPECT_EQ(r.checks.files_decrypted, 2u);
    EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitPlaintext);
}

TEST_F(Verify, CheckKeysCatchesATamperedHeaderBlock) {
    populate();
    flip("base/5/16384", 3 * 8192 + 17);  // pd_special of block 3, inside the first cipher block
    cmk::VerifyReport r = scan(true);
    ASSERT_EQ(r.problem_count, 2u);  // its checksum, and its header after decryption
    EXPECT_EQ(r.problems[0].path, "base/5/16384");
    EXPECT_EQ(r.problems[0].block, 3);
    EXPECT_TRUE(contains(r.problems[0].what, "checksum mismatch")) << r.problems[0].what;
    EXPECT_TRUE(contains(r.problems[1].what, "bad page header")) << r.problems[1].what;
    EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitCheckFailed);
    // Without --check-keys the marks are all that is read.
    EXPECT_EQ(cmk::verify_exit_status(scan()), cmk::kVerifyExitPlaintext);
}

TEST_F(Verify, SegmentFilesDecryptWithTheirRelationBlockNumbers) {
    populate();
    // Block 4 is the first page of 16384.1; put it back as block 0's: it decrypts wrong.
    std::string seg1 = read_text(data + "/base/5/16384.1");
    std::string seg0 = read_text(data + "/base/5/16384");
    seg1.replace(0, 8192, seg0.substr(0, 8192));
    write_text(data + "/base/5/16384.1", seg1);
    cmk::VerifyReport r = scan(true);
    ASSERT_GE(r.problem_count, 1u);
    EXPECT_EQ(r.problems.back().path, "base/5/16384.1");
    EXPECT_EQ(r.problems.back().block, 0);
    EXPECT_TRUE(contains(r.problems.back().what, "block 4")) << r.problems.back().what;
}

TEST_F(Verify, ChecksumsOffAMidPageChangeNeedsTheSampleToReachIt) {
    checksums = false;
    write_control();
    open_keys();
    std::vector<Page> pages;
    for (uint32_t b = 0; b < 4; b++) pages.push_back(encrypted(16384, b, b));
    write_file("base/5/16384", pages);
    flip("base/5/16384", 3 * 8192 + 17);
    EXPECT_EQ(scan(true, 1).problem_count, 0u) << "a sample of one page per file checks block 0 only";
    EXPECT_EQ(scan(true, 2).problem_count, 0u) << "every 2nd page: blocks 0 and 2";
    cmk::VerifyReport r = scan(true, 0);
    ASSERT_EQ(r.problem_count, 1u);
    EXPECT_EQ(r.problems[0].block, 3);
    EXPECT_EQ(r.checks.checksums_verified, 0u);
    // A change deep inside the page, outside the header, shows only in the checksum.
    checksums = true;
    write_control();
    pages.clear();
    for (uint32_t b = 0; b < 4; b++) pages.push_back(encrypted(16384, b, b));
    write_file("base/5/16384", pages);
    flip("base/5/16384", 2 * 8192 + 5000);
    r = scan(true, 1);
    ASSERT_EQ(r.problem_count, 1u);
    EXPECT_EQ(r.problems[0].block, 2);
    EXPECT_TRUE(contains(r.problems[0].what, "checksum mismatch"));
}

TEST_F(Verify, CheckKeysCatchesPagesOfOtherRelationsKeysAndGenerations) {
    populate();
    // A page of 16390 copied into 16384 (same block number): wrong tweak.
    std::string other = read_text(data + "/base/5/16390");
    write_text(data + "/base/5/16384", other + read_text(data + "/base/5/16384").substr(8192));
    cmk::VerifyReport r = scan(true);
    ASSERT_EQ(r.problem_count, 1u);
    EXPECT_EQ(r.problems[0].path, "base/5/16384");
    EXPECT_TRUE(contains(r.problems[0].what, "bad page header"));

    // Generation 9 is not in the keyring.
    std::string s = read_text(data + "/base/5/16390");
    uint16_t flags;
    std::memcpy(&flags, &s[10], 2);
    flags = static_cast<uint16_t>((flags & 0x00FF) | 0x0900);
    std::memcpy(&s[10], &flags, 2);
    write_text(data + "/base/5/16390", s);
    r = scan(true);
    bool found = false;
    for (const auto& p : r.problems) found |= p.path == "base/5/16390" && contains(p.what, "generation 9");
    EXPECT_TRUE(found);
    EXPECT_EQ(r.totals(cmk::VerifyClass::DataPages).generations.at(9), 1u);
}

TEST_F(Verify, CheckKeysCatchesWalAndTwoPhaseDamage) {
    populate();
    flip("pg_wal/000000010000000000000002", 8192 + 21);  // padding of a short page header
    flip("pg_twophase/0000ABCE", 2);
    cmk::VerifyReport r = scan(true);
    ASSERT_EQ(r.problem_count, 2u);
    EXPECT_EQ(r.problems[0].cls, cmk::VerifyClass::Wal);
    EXPECT_EQ(r.problems[0].block, 1);
    EXPECT_TRUE(contains(r.problems[0].what, "bad WAL page header"));
    EXPECT_EQ(r.problems[1].path, "pg_twophase/0000ABCE");
    EXPECT_EQ(r.problems[1].block, -1);
    EXPECT_EQ(cmk::verify_exit_status(r), cmk::kVerifyExitCheckFailed);
}

TEST_F(Verify, ProblemsAreCountedBeyondTheKeptOnes) {
    populate();
    for (int b : {0, 3}) flip("base/5/16384", b * 8192 + 17);
    cmk::VerifyOptions o;
    o.keys = keys.get();
    o.max_problems = 1;
    cmk::VerifyReport r = cmk::verify_data_directory(data, o);
    EXPECT_EQ(r.problem_count, 4u);
    EXPECT_EQ(r.problems.size(), 1u);
}

TEST_F(Verify, PartialPagesAreNotedAndNotCounted) {
    write_text(data + "/base/5/16384", concat({heap_page(1)}) + std::string(100, 'x'));
    cmk::VerifyReport r = scan();
    EXPECT_EQ(counts(find(r, "base/5/16384")->units), "0/1/0/0");
    EXPECT_EQ(find(r, "base/5/16384")->bytes, 8292u);
    ASSERT_EQ(r.notes.size(), 1u);
    EXPECT_TRUE(contains(r.notes[0], "base/5/16384: 100 bytes")) << r.notes[0];
}

TEST_F(Verify, RefusesWhatIsNotAPostgres15DataDirectory) {
    cmk::Error e = expect_error([&] { cmk::verify_data_directory(tmp / "nothing", {}); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config));
    EXPECT_TRUE(contains(e.what(), "not a PostgreSQL data directory"));
    write_text(data + "/PG_VERSION", "16\n");
    e = expect_error([&] { cmk::verify_data_directory(data, {}); });
    EXPECT_TRUE(contains(e.what(), "PostgreSQL 16"));
}

TEST_F(Verify, WorksWithoutPgControlAndSaysSo) {
    fs::remove(data + "/global/pg_control");
    write_file("base/5/16384", {heap_page(1)});
    cmk::VerifyReport r = scan();
    EXPECT_FALSE(r.control.found);
    ASSERT_EQ(r.notes.size(), 1u);
    EXPECT_TRUE(contains(r.notes[0], "no global/pg_control"));
}

TEST_F(Verify, UnreadableFilesAreErrorsNotSilence) {
    if (::geteuid() == 0) GTEST_SKIP() << "root reads everything";
    write_file("base/5/16384", {heap_page(1)});
    ::chmod((data + "/base/5/16384").c_str(), 0);
    cmk::Error e = expect_error([&] { scan(); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Io));
}

TEST_F(Verify, InterruptionStopsTheScan) {
    populate();
    cmk::VerifyOptions o;
    int polls = 0;
    o.interrupted = [&] { return ++polls > 2; };
    cmk::Error e = expect_error([&] { cmk::verify_data_directory(data, o); });
    EXPECT_TRUE(contains(e.what(), "interrupted"));
}

TEST_F(Verify, CInterfaceGivesOneRowPerFile) {
    populate();
    cmk_error err;
    cmk_verify_result* res = cmk_verify_scan(data.c_str(), nullptr, nullptr, &err);
    ASSERT_NE(res, nullptr) << err.message;
    size_t n = cmk_verify_row_count(res);
    std::map<std::string, cmk_verify_row> rows;
    for (size_t i = 0; i < n; i++) {
        cmk_verify_row row;
        cmk_verify_get_row(res, i, &row);
        rows[row.relation] = row;
    }
    ASSERT_TRUE(rows.count("base/5/16384"));
    EXPECT_STREQ(rows["base/5/16384"].file_class, "data_pages");
    EXPECT_EQ(rows["base/5/16384"].encrypted, 4);
    EXPECT_EQ(rows["base/5/16384"].plaintext, 1);
    EXPECT_EQ(rows["base/5/16384"].empty, 1);
    EXPECT_STREQ(rows["pg_wal/000000010000000000000001"].file_class, "wal");
    EXPECT_EQ(rows["pg_wal/000000010000000000000001"].plaintext, 2);
    EXPECT_STREQ(rows["base/pgsql_tmp/pgsql_tmp77.0"].file_class, "pgsql_tmp");
    EXPECT_EQ(rows["base/pgsql_tmp/pgsql_tmp77.0"].unmarked, 1);
    EXPECT_EQ(rows["pg_twophase/0000ABCD"].plaintext, 1);
    cmk_verify_free(res);

    auto interrupt = [](void*) { return 1; };
    EXPECT_EQ(cmk_verify_scan(data.c_str(), interrupt, nullptr, &err), nullptr);
    EXPECT_TRUE(contains(err.message, "interrupted"));
    EXPECT_EQ(cmk_verify_scan((tmp / "none").c_str(), nullptr, nullptr, &err), nullptr);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG);
}

}  // namespace
