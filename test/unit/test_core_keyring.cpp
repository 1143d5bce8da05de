// The keyring file: encode/decode, MAC, every kind of corruption, and the
// atomic file helpers.
#include "keyring.h"

#include "error.h"
#include "key_derivation.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

using namespace core_test;

namespace {

cmk::SecureBytes mac_key_of(uint8_t seed) {
    ByteVec dek(cmk::kDekBytes);
    for (size_t i = 0; i < dek.size(); i++) dek[i] = static_cast<uint8_t>(seed + 3 * i);
    return cmk::derive_keys(dek.data(), dek.size()).keyring_mac;
}

cmk::KeyringEntry make_entry(uint32_t generation, const std::string& algorithm, const std::string& base,
                             const std::string& version, size_t wrapped_len, uint8_t fill) {
    cmk::KeyringEntry e;
    e.generation = generation;
    e.created_at = 1700000000ull + generation * 86400ull;
    e.wrapped.algorithm = algorithm;
    e.wrapped.kek_base = base;
    e.wrapped.kek_version = version;
    e.wrapped.wrapped.resize(wrapped_len);
    for (size_t i = 0; i < wrapped_len; i++) e.wrapped.wrapped[i] = static_cast<uint8_t>(fill + i);
    for (size_t i = 0; i < e.check_value.size(); i++) e.check_value[i] = static_cast<uint8_t>(fill ^ (0x10 + i));
    return e;
}

// Three generations, three different KEKs/algorithms/sizes; current = 3.
cmk::Keyring sample_keyring() {
    cmk::Keyring k;
    k.current_generation = 3;
    k.entries.push_back(make_entry(1, "RSA-OAEP", "file:/etc/cmk/kek.pem", "0123456789abcdef0123456789abcdef", 256, 0x01));
    k.entries.push_back(make_entry(2, "RSA-OAEP-256", "https://myvault.vault.azure.net/keys/cmk-kek",
                                   "4d2f3c6a9b1e4f0e8a7b6c5d4e3f2a1b", 384, 0x40));
    k.entries.push_back(make_entry(3, "RSA-OAEP-256", "https://myhsm.managedhsm.azure.net/keys/cmk-kek-2",
                                   "feedfacefeedfacefeedfacefeedface", 512, 0x80));
    return k;
}

cmk::Keyring one_entry_keyring() {
    cmk::Keyring k;
    k.current_generation = 1;
    k.entries.push_back(make_entry(1, "RSA-OAEP-256", "file:/var/lib/kek.pem", "00112233445566778899aabbccddeeff", 256, 0x33));
    return k;
}

// Replaces the trailing HMAC with a correct one for the (modified) content,
// so that only the structural checks of decode_keyring can object.
cmk::Bytes remac(cmk::Bytes file, const cmk::SecureBytes& key) {
    ByteVec body(file.begin(), file.end() - 32);
    ByteVec mac = hmac_sha256(ByteVec(key.begin(), key.end()), body);
    std::copy(mac.begin(), mac.end(), file.end() - 32);
    return file;
}

void put_u16(cmk::Bytes& b, size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
}
void put_u32(cmk::Bytes& b, size_t at, uint32_t v) {
    put_u16(b, at, static_cast<uint16_t>(v >> 16));
    put_u16(b, at + 2, static_cast<uint16_t>(v));
}

void expect_same_keyring(const cmk::Keyring& a, const cmk::Keyring& b) {
    EXPECT_EQ(a.current_generation, b.current_generation);
    ASSERT_EQ(a.entries.size(), b.entries.size());
    for (size_t i = 0; i < a.entries.size(); i++) {
        const auto &x = a.entries[i], &y = b.entries[i];
        EXPECT_EQ(x.generation, y.generation) << "entry " << i;
        EXPECT_EQ(x.created_at, y.created_at) << "entry " << i;
        EXPECT_EQ(x.wrapped.algorithm, y.wrapped.algorithm) << "entry " << i;
        EXPECT_EQ(x.wrapped.kek_base, y.wrapped.kek_base) << "entry " << i;
        EXPECT_EQ(x.wrapped.kek_version, y.wrapped.kek_version) << "entry " << i;
        EXPECT_EQ(x.wrapped.wrapped, y.wrapped.wrapped) << "entry " << i;
        EXPECT_EQ(x.check_value, y.check_value) << "entry " << i;
    }
}

// decode_keyring must throw KeyringCorrupt whose message contains `what`.
void expect_corrupt(const cmk::Bytes& file, const std::string& what) {
    cmk::Error e = expect_error([&] { cmk::decode_keyring(file); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << kind_name(e.kind()) << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), what)) << "message \"" << e.what() << "\" should say \"" << what << "\"";
    EXPECT_FALSE(e.hint().empty()) << "a corrupt keyring should come with a hint: " << e.what();
}

struct Umask {
    explicit Umask(mode_t m) : old(::umask(m)) {}
    ~Umask() { ::umask(old); }
    mode_t old;
};

}  // namespace

// ---- encode / decode --------------------------------------------------------

TEST(CoreKeyring, RoundTripWithSeveralGenerations) {
    cmk::Keyring k = sample_keyring();
    cmk::SecureBytes key = mac_key_of(1);
    cmk::Bytes file = cmk::encode_keyring(k, key);
    cmk::Keyring back = cmk::decode_keyring(file);
    expect_same_keyring(k, back);
    EXPECT_NO_THROW(cmk::verify_keyring_mac(file, key));
    EXPECT_EQ(back.current().generation, 3u);
    EXPECT_EQ(back.entry(1).wrapped.algorithm, "RSA-OAEP");
    EXPECT_EQ(back.entry(2).wrapped.wrapped.size(), 384u);
    // Encoding is deterministic: the same keyring and key give the same bytes.
    EXPECT_EQ(cmk::encode_keyring(back, key), file);
}

// The file built by hand from the description in keyring.h (version 2, or
// the version 1 that older cmk wrote).
ByteVec hand_built(const cmk::Keyring& k, const cmk::SecureBytes& key, int version) {
    const cmk::KeyringEntry& e = k.entries[0];
    ByteVec want = bytes_of("CMKRING\n");
    auto u8 = [&](uint64_t v) { want.push_back(static_cast<uint8_t>(v)); };
    auto u16 = [&](uint64_t v) { u8(v >> 8); u8(v); };
    auto u32 = [&](uint64_t v) { u16(v >> 16); u16(v & 0xffff); };
    auto u64 = [&](uint64_t v) { u32(v >> 32); u32(v & 0xffffffff); };
    auto raw = [&](const std::string& s) { want.insert(want.end(), s.begin(), s.end()); };
    u16(version);   // format version
    u16(0);         // flags
    u32(1);         // current generation
    u32(1);         // entry count
    if (version >= 2) {
        u32(k.installed_timeline);
        u64(k.installed_lsn);
    }
    u32(1);   // generation
    u64(e.created_at);
    u8(e.wrapped.algorithm.size());
    raw(e.wrapped.algorithm);
    u16(e.wrapped.kek_base.size());
    raw(e.wrapped.kek_base);
    u16(e.wrapped.kek_version.size());
    raw(e.wrapped.kek_version);
    u16(e.wrapped.wrapped.size());
    want.insert(want.end(), e.wrapped.wrapped.begin(), e.wrapped.wrapped.end());
    want.insert(want.end(), e.check_value.begin(), e.check_value.end());
    if (version >= 2) u64(e.current_from_lsn);
    ByteVec mac = hmac_sha256(ByteVec(key.begin(), key.end()), want);
    want.insert(want.end(), mac.begin(), mac.end());
    return want;
}

TEST(CoreKeyring, LayoutIsTheDocumentedFormatVersion2) {
    cmk::Keyring k = one_entry_keyring();
    k.installed_timeline = 3;
    k.installed_lsn = 0x0000000102345678ull;
    k.entries[0].current_from_lsn = 0x0000000100200000ull;
    cmk::SecureBytes key = mac_key_of(2);
    cmk::Bytes got = cmk::encode_keyring(k, key);
    EXPECT_EQ(to_hex(got), to_hex(hand_built(k, key, 2)));
    EXPECT_EQ(cmk::kKeyringFormatVersion, 2);
    cmk::Keyring back = cmk::decode_keyring(got);
    EXPECT_EQ(back.installed_timeline, 3u);
    EXPECT_EQ(back.installed_lsn, 0x0000000102345678ull);
    EXPECT_EQ(back.entries[0].current_from_lsn, 0x0000000100200000ull);
}

TEST(CoreKeyring, FormatVersion1IsStillRead) {
    cmk::Keyring k = one_entry_keyring();
    cmk::SecureBytes key = mac_key_of(2);
    ByteVec v1 = hand_built(k, key, 1);
    cmk::Bytes file(v1.begin(), v1.end());
    cmk::Keyring back = cmk::decode_keyring(file);
    expect_same_keyring(k, back);
    EXPECT_EQ(back.installed_timeline, 0u);
    EXPECT_EQ(back.installed_lsn, 0u);
    EXPECT_EQ(back.entries[0].current_from_lsn, 0u);
    EXPECT_NO_THROW(cmk::verify_keyring_mac(file, key));
    // Written again, it becomes version 2 with the same contents.
    EXPECT_EQ(to_hex(cmk::encode_keyring(back, key)), to_hex(hand_built(k, key, 2)));
}

TEST(CoreKeyring, VerifyMacAcceptsTheRightKeyAndRejectsAWrongOne) {
    cmk::Bytes file = cmk::encode_keyring(sample_keyring(), mac_key_of(3));
    EXPECT_NO_THROW(cmk::verify_keyring_mac(file, mac_key_of(3)));
    for (uint8_t other : {4, 5, 200}) {
        cmk::Error e = expect_error([&] { cmk::verify_keyring_mac(file, mac_key_of(other)); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
        EXPECT_TRUE(contains(e.what(), "authentication code")) << e.what();
    }
    // An empty key is a wrong key too.
    cmk::Error e = expect_error([&] { cmk::verify_keyring_mac(file, cmk::SecureBytes()); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
}

TEST(CoreKeyring, VerifyMacOfAFileShorterThanAMac) {
    for (size_t n : {size_t(0), size_t(1), size_t(31)}) {
        cmk::Error e = expect_error([&] { cmk::verify_keyring_mac(cmk::Bytes(n, 0), mac_key_of(1)); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
        EXPECT_TRUE(contains(e.what(), "too short")) << e.what();
    }
}

TEST(CoreKeyring, EntryLookupOfAMissingGenerationIsCorrupt) {
    cmk::Keyring k = sample_keyring();
    EXPECT_EQ(k.entry(2).generation, 2u);
    cmk::Error e = expect_error([&] { k.entry(9); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt));
    EXPECT_TRUE(contains(e.what(), "9")) << e.what();
}

// ---- corruption -------------------------------------------------------------

TEST(CoreKeyring, TruncationAtEveryLengthIsDetected) {
    for (const cmk::Keyring& k : {one_entry_keyring(), sample_keyring()}) {
        cmk::Bytes file = cmk::encode_keyring(k, mac_key_of(6));
        for (size_t n = 0; n < file.size(); n++) {
            cmk::Bytes cut(file.begin(), file.begin() + n);
            try {
                cmk::decode_keyring(cut);
                ADD_FAILURE() << "a keyring truncated to " << n << " of " << file.size() << " bytes was accepted";
            } catch (const cmk::Error& e) {
                EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << n << ": " << e.what();
                EXPECT_TRUE(contains(e.what(), "truncated") || contains(e.what(), "too short"))
                    << "truncated to " << n << " bytes: \"" << e.what() << "\"";
            }
        }
    }
}

TEST(CoreKeyring, AFlippedBitAnywhereIsDetectedByDecodeOrByTheMac) {
    cmk::SecureBytes key = mac_key_of(7);
    cmk::Bytes file = cmk::encode_keyring(sample_keyring(), key);
    size_t by_decode = 0, by_mac = 0;
    for (size_t pos = 0; pos < file.size(); pos++) {
        for (int bit = 0; bit < 8; bit++) {
            cmk::Bytes bad = file;
            bad[pos] ^= static_cast<uint8_t>(1u << bit);
            bool decoded = false;
            try {
                cmk::decode_keyring(bad);
                decoded = true;
                cmk::verify_keyring_mac(bad, key);
                ADD_FAILURE() << "flipping bit " << bit << " of byte " << pos << " went unnoticed";
            } catch (const cmk::Error& e) {
                EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << "byte " << pos << " bit " << bit << ": " << e.what();
                EXPECT_TRUE(contains(e.what(), "keyring")) << e.what();
                (decoded ? by_mac : by_decode)++;
            }
        }
    }
    // Both defences take part: structure for the header and lengths, the MAC
    // for the rest.
    EXPECT_GT(by_decode, 0u);
    EXPECT_GT(by_mac, 0u);
}

TEST(CoreKeyring, BadMagic) {
    cmk::SecureBytes key = mac_key_of(8);
    cmk::Bytes file = cmk::encode_keyring(one_entry_keyring(), key);
    for (size_t pos = 0; pos < 8; pos++) {
        cmk::Bytes bad = file;
        bad[pos] ^= 0x20;
        expect_corrupt(remac(bad, key), "bad magic");
    }
    // Some other file put in its place.
    std::string pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
    expect_corrupt(bytes_of(pem), "bad magic");
}

TEST(CoreKeyring, UnknownFormatVersionIsNamed) {
    cmk::SecureBytes key = mac_key_of(9);
    cmk::Bytes file = cmk::encode_keyring(one_entry_keyring(), key);
    for (uint16_t v : {uint16_t(0), uint16_t(3), uint16_t(77), uint16_t(65535)}) {
        cmk::Bytes bad = file;
        put_u16(bad, 8, v);
        cmk::Error e = expect_error([&] { cmk::decode_keyring(remac(bad, key)); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
        EXPECT_TRUE(contains(e.what(), "version " + std::to_string(v))) << e.what();
        EXPECT_FALSE(e.hint().empty());
    }
}

TEST(CoreKeyring, UnknownFlags) {
    cmk::SecureBytes key = mac_key_of(10);
    cmk::Bytes bad = cmk::encode_keyring(one_entry_keyring(), key);
    put_u16(bad, 10, 1);
    expect_corrupt(remac(bad, key), "flags");
}

TEST(CoreKeyring, DuplicateGeneration) {
    cmk::Keyring k = sample_keyring();
    k.entries[2].generation = 1;  // generations 1, 2, 1
    k.current_generation = 2;
    expect_corrupt(cmk::encode_keyring(k, mac_key_of(11)), "generation 1 appears twice");
}

TEST(CoreKeyring, EntryCountZero) {
    cmk::Keyring k;
    k.current_generation = 1;
    expect_corrupt(cmk::encode_keyring(k, mac_key_of(12)), "entry count 0");
}

TEST(CoreKeyring, EntryCountAboveTheGenerationLimit) {
    cmk::SecureBytes key = mac_key_of(13);
    cmk::Bytes bad = cmk::encode_keyring(one_entry_keyring(), key);
    put_u32(bad, 16, cmk::kMaxGenerations + 1);
    expect_corrupt(remac(bad, key), "entry count 256");
}

TEST(CoreKeyring, GenerationOutOfRange) {
    for (uint32_t g : {0u, cmk::kMaxGenerations + 1, 0xffffffffu}) {
        cmk::Keyring k = one_entry_keyring();
        k.entries[0].generation = g;
        k.current_generation = g;
        expect_corrupt(cmk::encode_keyring(k, mac_key_of(14)), "generation " + std::to_string(g) + " out of range");
    }
}

TEST(CoreKeyring, CurrentGenerationMissing) {
    cmk::Keyring k = sample_keyring();
    k.current_generation = 7;
    expect_corrupt(cmk::encode_keyring(k, mac_key_of(15)), "no entry for key generation 7");
}

TEST(CoreKeyring, TrailingBytesAfterTheLastEntry) {
    cmk::SecureBytes key = mac_key_of(16);
    cmk::Bytes file = cmk::encode_keyring(sample_keyring(), key);
    for (size_t extra : {size_t(1), size_t(16), size_t(100)}) {
        cmk::Bytes bad = file;
        bad.insert(bad.end() - 32, extra, 0);
        expect_corrupt(remac(bad, key), "unexpected bytes after the last entry");
    }
}

TEST(CoreKeyring, EmptyKekOrWrappedKeyInAnEntry) {
    cmk::Keyring k = one_entry_keyring();
    k.entries[0].wrapped.kek_base.clear();
    expect_corrupt(cmk::encode_keyring(k, mac_key_of(17)), "entry 0 is empty");
    k = one_entry_keyring();
    k.entries[0].wrapped.wrapped.clear();
    expect_corrupt(cmk::encode_keyring(k, mac_key_of(17)), "entry 0 is empty");
}

// ---- files ------------------------------------------------------------------

TEST(CoreKeyringFiles, WriteAtomicallyThenReadBack) {
    TempDir dir;
    Umask um(022);
    std::string path = dir / "keyring";
    cmk::Bytes contents = cmk::encode_keyring(sample_keyring(), mac_key_of(20));
    cmk::write_file_atomically(path, contents, 0600);
    auto back = cmk::read_file_if_exists(path);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, contents);
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"keyring"}) << "a .tmp file was left behind";
}

TEST(CoreKeyringFiles, ReplacesAnExistingFileWhole) {
    TempDir dir;
    std::string path = dir / "keyring";
    cmk::Bytes big(5000, 0xab), small = {1, 2, 3};
    cmk::write_file_atomically(path, big, 0600);
    cmk::write_file_atomically(path, small, 0600);
    auto back = cmk::read_file_if_exists(path);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, small) << "old content must not survive (no in-place edit, no stale tail)";
    EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"keyring"});
}

TEST(CoreKeyringFiles, HonoursTheRequestedMode) {
    TempDir dir;
    Umask um(022);
    cmk::write_file_atomically(dir / "a", {1}, 0640);
    struct stat st;
    ASSERT_EQ(::stat((dir / "a").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST(CoreKeyringFiles, EmptyFileIsNotAMissingFile) {
    TempDir dir;
    cmk::write_file_atomically(dir / "empty", {}, 0600);
    auto back = cmk::read_file_if_exists(dir / "empty");
    ASSERT_TRUE(back.has_value());
    EXPECT_TRUE(back->empty());
}

TEST(CoreKeyringFiles, MissingFileReadsAsNullopt) {
    TempDir dir;
    EXPECT_FALSE(cmk::read_file_if_exists(dir / "no-such-file").has_value());
    EXPECT_FALSE(cmk::read_file_if_exists(dir / "no-such-dir/keyring").has_value());
}

TEST(CoreKeyringFiles, ReadingADirectoryIsAnIoErrorNamingThePath) {
    TempDir dir;
    cmk::Error e = expect_error([&] { cmk::read_file_if_exists(dir.path()); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Io)) << e.what();
    EXPECT_TRUE(contains(e.what(), dir.path())) << e.what();
}

TEST(CoreKeyringFiles, UnreadableFileIsAnIoErrorNotMissing) {
    if (::geteuid() == 0) GTEST_SKIP() << "root reads any file; permission checks cannot be tested as root";
    TempDir dir;
    std::string path = dir / "keyring";
    cmk::write_file_atomically(path, {1, 2, 3}, 0600);
    ASSERT_EQ(::chmod(path.c_str(), 0), 0);
    cmk::Error e = expect_error([&] { cmk::read_file_if_exists(path); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Io)) << e.what();
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
}

TEST(CoreKeyringFiles, ImplausiblyLargeFileIsRefused) {
    TempDir dir;
    std::string path = dir / "keyring";
    {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, (16 << 20) + 8192), 0);
        ::close(fd);
    }
    cmk::Error e = expect_error([&] { cmk::read_file_if_exists(path); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
}

TEST(CoreKeyringFiles, WriteIntoAMissingDirectoryFailsCleanly) {
    TempDir dir;
    std::string path = dir / "missing/keyring";
    cmk::Error e = expect_error([&] { cmk::write_file_atomically(path, {1, 2, 3}, 0600); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Io)) << e.what();
    EXPECT_TRUE(contains(e.what(), dir / "missing/keyring.tmp")) << e.what();
    EXPECT_TRUE(dir_entries(dir.path()).empty());
}

TEST(CoreKeyringFiles, RenameFailureRemovesTheTmpFile) {
    // The rename target is a non-empty directory: rename fails after the
    // .tmp was written. The .tmp must be removed and the error be Io.
    TempDir dir;
    std::string path = dir / "keyring";
    ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
    write_text(path + "/occupant", "x");
    cmk::Error e = expect_error([&] { cmk::write_file_atomically(path, {1, 2, 3}, 0600); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Io)) << e.what();
    EXPECT_TRUE(contains(e.what(), "rename")) << e.what();
    EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"keyring"}) << "the .tmp file was left behind";
}

TEST(CoreKeyringFiles, RelativePathWithoutDirectoryPart) {
    // write_file_atomically("keyring", ...) should write ./keyring and fsync
    // ".". It derives the directory with path.substr(0, find_last_of('/')),
    // which for a name without '/' is the whole name, so it fsyncs the file
    // itself opened with O_DIRECTORY and fails with ENOTDIR after the rename
    // has already happened (keyring.cpp, write_file_atomically).
    TempDir dir;
    char old_cwd[4096];
    ASSERT_NE(::getcwd(old_cwd, sizeof old_cwd), nullptr);
    ASSERT_EQ(::chdir(dir.path().c_str()), 0);
    struct Restore {
        const char* cwd;
        ~Restore() { (void)::chdir(cwd); }
    } restore{old_cwd};
    try {
        cmk::write_file_atomically("keyring", {1, 2, 3}, 0600);
    } catch (const cmk::Error& e) {
        ADD_FAILURE() << "write_file_atomically(\"keyring\") threw " << kind_name(e.kind()) << ": " << e.what();
    }
    auto back = cmk::read_file_if_exists(dir / "keyring");
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, (cmk::Bytes{1, 2, 3}));
    EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"keyring"});
}
