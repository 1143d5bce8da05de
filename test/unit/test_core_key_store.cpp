// Start-up of the key hierarchy (open_or_create_keys) with the file KEK
// provider, and cmk.key_url parsing.
#include "key_store.h"

#include "error.h"
#include "file_key_provider.h"
#include "key_derivation.h"
#include "key_url.h"
#include "keyring.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

using namespace core_test;

namespace {

// Decrypts with plain OpenSSL (RSA-OAEP with `md` for both OAEP and MGF1), to
// check that what the core writes is standard RSA-OAEP(-256), as Key Vault's
// unwrapKey expects.
ByteVec rsa_oaep_decrypt(const std::string& pem, const EVP_MD* md, const ByteVec& in) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!key) throw std::runtime_error("cannot read test key");
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr);
    size_t outlen = 0;
    ByteVec out;
    bool ok = ctx && EVP_PKEY_decrypt_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
              EVP_PKEY_decrypt(ctx, nullptr, &outlen, in.data(), in.size()) == 1;
    if (ok) {
        out.resize(outlen);
        ok = EVP_PKEY_decrypt(ctx, out.data(), &outlen, in.data(), in.size()) == 1;
        out.resize(outlen);
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    if (!ok) throw std::runtime_error("RSA-OAEP decryption failed");
    return out;
}

// Byte ranges of the fields of a keyring file (format version 2, see keyring.h).
struct Field {
    std::string name;
    size_t begin, end;
};

std::vector<Field> keyring_fields(const cmk::Bytes& f) {
    std::vector<Field> out;
    size_t p = 0;
    auto add = [&](const std::string& name, size_t len) {
        out.push_back({name, p, p + len});
        p += len;
    };
    auto u16_at = [&](size_t at) { return static_cast<size_t>(f.at(at) << 8 | f.at(at + 1)); };
    add("magic", 8);
    add("format version", 2);
    add("flags", 2);
    add("current generation", 4);
    size_t count = static_cast<size_t>(f.at(16)) << 24 | static_cast<size_t>(f.at(17)) << 16 | u16_at(18);
    add("entry count", 4);
    add("installed timeline", 4);
    add("installed lsn", 8);
    for (size_t i = 0; i < count; i++) {
        add("generation", 4);
        add("created at", 8);
        size_t alen = f.at(p);
        add("algorithm length", 1);
        add("algorithm", alen);
        size_t blen = u16_at(p);
        add("kek base length", 2);
        add("kek base", blen);
        size_t vlen = u16_at(p);
        add("kek version length", 2);
        add("kek version", vlen);
        size_t wlen = u16_at(p);
        add("wrapped dek length", 2);
        add("wrapped dek", wlen);
        add("key check value", cmk::kKcvBytes);
        add("current from lsn", 8);
    }
    add("mac", 32);
    EXPECT_EQ(p, f.size()) << "keyring_fields does not cover the file";
    return out;
}

const Field& field_named(const std::vector<Field>& fields, const std::string& name) {
    for (const auto& f : fields)
        if (f.name == name) return f;
    throw std::runtime_error("no field " + name);
}

class CoreKeyStore : public ::testing::Test {
protected:
    TempDir data;  // stands for $PGDATA
    TempDir keys;  // where the KEK files live (outside the data directory)
    int exists_calls = 0;
    bool encrypted_data = false;

    std::string key_file(const std::string& name, const std::string& pem) {
        std::string path = keys / name;
        write_text(path, pem);
        ::chmod(path.c_str(), 0600);
        return path;
    }
    std::string kek(unsigned bits = 2048, int index = 0, const std::string& name = "kek.pem") {
        return key_file(name, rsa_key(bits, index).pem);
    }
    std::string keyring() const { return cmk::keyring_path(data.path()); }

    cmk::OpenedKeys open(const std::string& url, const cmk::ProviderSettings& settings = {}) {
        return cmk::open_or_create_keys(data.path(), url, settings, [this] {
            exists_calls++;
            return encrypted_data;
        });
    }
    cmk::Error open_error(const std::string& url, const cmk::ProviderSettings& settings = {}) {
        return expect_error([&] { open(url, settings); });
    }
    // The data directory was left exactly as it was (empty).
    void expect_data_dir_untouched() { EXPECT_TRUE(dir_entries(data.path()).empty()) << "the data directory was modified"; }
};

}  // namespace

TEST(CoreKeyStorePaths, KeyringPath) { EXPECT_EQ(cmk::keyring_path("/var/lib/pg/data"), "/var/lib/pg/data/pg_cmk/keyring"); }

// ---- first start, second start -----------------------------------------------

TEST_F(CoreKeyStore, FirstStartCreatesTheKeyring) {
    std::string kek_path = kek();
    time_t before = std::time(nullptr);
    cmk::OpenedKeys k = open("file:" + kek_path);
    time_t after = std::time(nullptr);

    EXPECT_TRUE(k.created);
    EXPECT_EQ(k.provider_name, "file");
    EXPECT_TRUE(k.warnings.empty());
    EXPECT_EQ(exists_calls, 1) << "a cluster without a keyring must be asked whether it holds encrypted pages";
    ASSERT_EQ(k.generations.size(), 1u);
    EXPECT_EQ(k.generations[0].generation, 1u);
    ASSERT_EQ(k.generations[0].dek.size(), cmk::kDekBytes);

    // The file: pg_cmk/ (0700) and pg_cmk/keyring (0600), nothing else.
    struct stat st;
    ASSERT_EQ(::stat(keyring().c_str(), &st), 0) << "no keyring at " << keyring();
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(::stat((data / "pg_cmk").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_EQ(dir_entries(data / "pg_cmk"), std::vector<std::string>{"keyring"});

    // Its content is what was returned.
    cmk::Bytes file = read_bytes(keyring());
    cmk::Keyring ring = cmk::decode_keyring(file);
    EXPECT_EQ(ring.current_generation, 1u);
    ASSERT_EQ(ring.entries.size(), 1u);
    const cmk::KeyringEntry& e = ring.current();
    EXPECT_EQ(e.wrapped.algorithm, "RSA-OAEP-256");
    EXPECT_EQ(e.wrapped.kek_base, "file:" + kek_path);
    EXPECT_EQ(e.wrapped.kek_version, cmk::public_key_fingerprint_of_pem_file(kek_path));
    EXPECT_EQ(e.wrapped.kek_version.size(), 32u);
    EXPECT_EQ(e.wrapped.wrapped.size(), 256u);
    EXPECT_GE(e.created_at, static_cast<uint64_t>(before));
    EXPECT_LE(e.created_at, static_cast<uint64_t>(after));
    EXPECT_EQ(k.keyring.current().wrapped.wrapped, e.wrapped.wrapped);

    // Authenticated with the MAC sub-key of generation 1; check value matches.
    cmk::DerivedKeys dk = cmk::derive_keys(k.generations[0].dek.data(), k.generations[0].dek.size());
    EXPECT_NO_THROW(cmk::verify_keyring_mac(file, dk.keyring_mac));
    EXPECT_EQ(e.check_value, dk.check_value);

    // The wrapped DEK is standard RSA-OAEP with SHA-256 (what Key Vault does).
    ByteVec dek = rsa_oaep_decrypt(rsa_key(2048).pem, EVP_sha256(), e.wrapped.wrapped);
    EXPECT_TRUE(same_bytes(dek, k.generations[0].dek));
}

TEST_F(CoreKeyStore, SecondStartOpensTheSameKeyringAndDek) {
    std::string url = "file:" + kek();
    cmk::OpenedKeys first = open(url);
    cmk::Bytes file = read_bytes(keyring());
    exists_calls = 0;
    encrypted_data = true;  // irrelevant once a keyring exists
    cmk::OpenedKeys second = open(url);
    EXPECT_FALSE(second.created);
    EXPECT_EQ(exists_calls, 0) << "the callback is asked only when there is no keyring";
    EXPECT_EQ(second.provider_name, "file");
    EXPECT_TRUE(second.warnings.empty());
    ASSERT_EQ(second.generations.size(), 1u);
    EXPECT_EQ(second.generations[0].generation, 1u);
    EXPECT_EQ(second.generations[0].dek, first.generations[0].dek);
    EXPECT_EQ(read_bytes(keyring()), file) << "opening must never rewrite the keyring";
    EXPECT_EQ(dir_entries(data / "pg_cmk"), std::vector<std::string>{"keyring"});
}

TEST_F(CoreKeyStore, EachClusterGetsItsOwnDek) {
    std::string url = "file:" + kek();
    cmk::OpenedKeys a = open(url);
    TempDir other;
    cmk::OpenedKeys b = cmk::open_or_create_keys(other.path(), url, {}, [] { return false; });
    EXPECT_NE(a.generations[0].dek, b.generations[0].dek);
}

TEST_F(CoreKeyStore, Rsa3072Key) {
    std::string url = "file:" + kek(3072);
    cmk::OpenedKeys a = open(url), b = open(url);
    EXPECT_EQ(a.keyring.current().wrapped.wrapped.size(), 384u);
    EXPECT_EQ(a.generations[0].dek, b.generations[0].dek);
}

TEST_F(CoreKeyStore, Rsa4096Key) {
    std::string url = "file:" + kek(4096);
    cmk::OpenedKeys a = open(url), b = open(url);
    EXPECT_EQ(a.keyring.current().wrapped.wrapped.size(), 512u);
    EXPECT_EQ(a.generations[0].dek, b.generations[0].dek);
    EXPECT_TRUE(same_bytes(rsa_oaep_decrypt(rsa_key(4096).pem, EVP_sha256(), a.keyring.current().wrapped.wrapped),
                           a.generations[0].dek));
}

TEST_F(CoreKeyStore, TraditionalRsaPemFormatIsAccepted) {
    // "BEGIN RSA PRIVATE KEY", as written by older `openssl genrsa`.
    std::string path = key_file("kek-traditional.pem", rsa_key(2048).traditional_pem);
    ASSERT_TRUE(contains(read_text(path), "BEGIN RSA PRIVATE KEY"));
    cmk::OpenedKeys a = open("file:" + path), b = open("file:" + path);
    EXPECT_EQ(a.generations[0].dek, b.generations[0].dek);
}

TEST_F(CoreKeyStore, FileUrlWithThreeSlashes) {
    std::string path = kek();
    cmk::OpenedKeys a = open("file://" + path);
    EXPECT_EQ(a.keyring.current().wrapped.kek_base, "file:" + path);
    cmk::OpenedKeys b = open("file:" + path);
    EXPECT_TRUE(b.warnings.empty()) << "file:///p and file:/p name the same key";
    EXPECT_EQ(a.generations[0].dek, b.generations[0].dek);
}

// ---- unusable KEK files ---------------------------------------------------------

namespace {
void expect_key_unavailable(const cmk::Error& e, const std::string& path) {
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyUnavailable)) << kind_name(e.kind()) << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), path)) << "message should name " << path << ": " << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
}
}  // namespace

TEST_F(CoreKeyStore, Rsa1024KeyIsRejected) {
    std::string path = key_file("kek-1024.pem", rsa_key(1024).pem);
    cmk::Error e = open_error("file:" + path);
    expect_key_unavailable(e, path);
    EXPECT_TRUE(contains(e.what(), "1024")) << e.what();
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, EcKeyIsRejected) {
    std::string path = key_file("kek-ec.pem", generate_ec_p256().pem);
    cmk::Error e = open_error("file:" + path);
    expect_key_unavailable(e, path);
    EXPECT_TRUE(contains(e.what(), "not an RSA key")) << e.what();
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, NonPemFileIsRejected) {
    std::string path = key_file("kek.txt", "this is not a key\n");
    expect_key_unavailable(open_error("file:" + path), path);
    std::string der = keys / "kek.der";
    write_bytes(der, ByteVec{0x30, 0x82, 0x04, 0xa4, 0x02, 0x01, 0x00});
    expect_key_unavailable(open_error("file:" + der), der);
    std::string empty = key_file("empty.pem", "");
    expect_key_unavailable(open_error("file:" + empty), empty);
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, PublicKeyOnlyIsRejected) {
    std::string path = key_file("kek-public.pem", rsa_key(2048).public_pem);
    cmk::Error e = open_error("file:" + path);
    expect_key_unavailable(e, path);
    EXPECT_TRUE(contains(e.what(), "private key")) << e.what();
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, MissingKeyFileIsRejected) {
    std::string path = keys / "does-not-exist.pem";
    cmk::Error e = open_error("file:" + path);
    expect_key_unavailable(e, path);
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, KeyFileThatIsADirectoryIsRejected) {
    std::string path = keys / "a-directory.pem";
    ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
    expect_key_unavailable(open_error("file:" + path), path);
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, UnreadableKeyFileIsRejected) {
    if (::geteuid() == 0) GTEST_SKIP() << "root reads any file; chmod 000 cannot be tested as root";
    std::string path = kek();
    ASSERT_EQ(::chmod(path.c_str(), 0), 0);
    expect_key_unavailable(open_error("file:" + path), path);
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, KeyFileRemovedAfterTheKeyringWasCreated) {
    std::string path = kek();
    open("file:" + path);
    cmk::Bytes file = read_bytes(keyring());
    ASSERT_EQ(::unlink(path.c_str()), 0);
    expect_key_unavailable(open_error("file:" + path), path);
    EXPECT_EQ(read_bytes(keyring()), file);
}

// ---- wrong key, tampered keyring ----------------------------------------------

TEST_F(CoreKeyStore, DifferentRsaKeyAtTheSamePathIsWrongKey) {
    std::string path = kek(2048, 0);
    std::string fp_original = cmk::public_key_fingerprint_of_pem_file(path);
    open("file:" + path);
    cmk::Bytes file = read_bytes(keyring());
    kek(2048, 1);  // another key, same file name
    std::string fp_replacement = cmk::public_key_fingerprint_of_pem_file(path);
    ASSERT_NE(fp_original, fp_replacement);

    cmk::Error e = open_error("file:" + path);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::WrongKey)) << kind_name(e.kind()) << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), fp_original)) << "should name the keyring's fingerprint: " << e.what();
    EXPECT_TRUE(contains(e.what(), fp_replacement)) << "should name the file's fingerprint: " << e.what();
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
    EXPECT_EQ(read_bytes(keyring()), file) << "a wrong key must not lead to a new keyring";

    kek(2048, 0);  // the original key comes back: everything works again
    EXPECT_NO_THROW(open("file:" + path));
}

class CoreKeyStoreTamper : public CoreKeyStore {
protected:
    std::string url;
    cmk::Bytes original;
    std::vector<Field> fields;

    void SetUp() override {
        url = "file:" + kek();
        open(url);
        original = read_bytes(keyring());
        fields = keyring_fields(original);
    }
    cmk::Error open_with_flip(size_t pos, uint8_t mask = 0x01) {
        cmk::Bytes bad = original;
        bad.at(pos) ^= mask;
        write_bytes(keyring(), bad);
        cmk::Error e = open_error(url);
        EXPECT_EQ(read_bytes(keyring()), bad) << "the keyring was rewritten after tampering at byte " << pos;
        EXPECT_EQ(dir_entries(data / "pg_cmk"), std::vector<std::string>{"keyring"});
        return e;
    }
    cmk::Error open_with_flip_in(const std::string& field, size_t offset = 0, uint8_t mask = 0x01) {
        const Field& f = field_named(fields, field);
        EXPECT_LT(offset, f.end - f.begin);
        return open_with_flip(f.begin + offset, mask);
    }
};

TEST_F(CoreKeyStoreTamper, CreationTimeIsCaughtByTheMac) {
    cmk::Error e = open_with_flip_in("created at", 7);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << kind_name(e.kind()) << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), "authentication code")) << e.what();
}

TEST_F(CoreKeyStoreTamper, KeyCheckValue) {
    cmk::Error e = open_with_flip_in("key check value", 3);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << kind_name(e.kind()) << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), "check value")) << e.what();
}

TEST_F(CoreKeyStoreTamper, Mac) {
    cmk::Error e = open_with_flip_in("mac", 31, 0x80);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << kind_name(e.kind()) << ": " << e.what();
}

TEST_F(CoreKeyStoreTamper, HeaderFields) {
    for (const char* f : {"magic", "format version", "flags", "current generation", "entry count", "generation"}) {
        cmk::Error e = open_with_flip_in(f, 0, 0x04);
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << f << ": " << kind_name(e.kind()) << ": " << e.what();
    }
}

TEST_F(CoreKeyStoreTamper, WrappedDekIsKeyringCorruptNotWrongKey) {
    // The KEK file is the right one (its fingerprint matches the keyring's
    // kek_version), only the wrapped DEK bytes in the keyring were altered.
    // That is a corrupt keyring; reporting WrongKey ("the key in ... cannot
    // unwrap") sends the operator looking for another key that does not exist.
    for (size_t offset : {size_t(0), size_t(100), size_t(255)}) {
        cmk::Error e = open_with_flip_in("wrapped dek", offset);
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt))
            << "wrapped DEK byte " << offset << " altered: got " << kind_name(e.kind()) << ": " << e.what();
    }
}

TEST_F(CoreKeyStoreTamper, AlgorithmIsKeyringCorruptNotConfig) {
    // "RSA-OAEP-256" altered in the keyring is not a configuration problem:
    // cmk.key_wrap_algorithm plays no part in opening an existing keyring.
    cmk::Error e = open_with_flip_in("algorithm", 11);  // "RSA-OAEP-256" -> "RSA-OAEP-257"
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << "got " << kind_name(e.kind()) << ": " << e.what();
}

TEST_F(CoreKeyStoreTamper, EveryByteOfTheKeyringIsProtected) {
    // Flip one bit of every byte: opening must fail every time, and never
    // regenerate or rewrite the keyring (checked in open_with_flip). Where the
    // altered byte is the recorded KEK reference (its URL or fingerprint), the
    // MAC cannot be checked before the KEK is used, so a KEK error is an
    // acceptable answer; everywhere else the answer must be KeyringCorrupt.
    // (The wrapped DEK and the algorithm have their own tests above.)
    std::map<std::string, std::map<std::string, int>> kinds_by_field;
    for (const Field& f : fields) {
        for (size_t pos = f.begin; pos < f.end; pos++) {
            cmk::Error e = open_with_flip(pos);
            kinds_by_field[f.name][kind_name(e.kind())]++;
            bool kek_reference = f.name == "kek base" || f.name == "kek version";
            bool own_test = f.name == "wrapped dek" || f.name == "algorithm";
            if (kek_reference) {
                EXPECT_TRUE(e.kind() == cmk::ErrorKind::KeyringCorrupt || e.kind() == cmk::ErrorKind::WrongKey ||
                            e.kind() == cmk::ErrorKind::KeyUnavailable || e.kind() == cmk::ErrorKind::Config)
                    << f.name << " byte " << pos << ": " << kind_name(e.kind()) << ": " << e.what();
            } else if (!own_test) {
                EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt))
                    << f.name << " byte " << pos << ": " << kind_name(e.kind()) << ": " << e.what();
            }
        }
    }
    for (const auto& [field, kinds] : kinds_by_field) {
        std::string line;
        for (const auto& [kind, n] : kinds) line += " " + kind + "=" + std::to_string(n);
        RecordProperty(field, line);
    }
}

TEST_F(CoreKeyStoreTamper, KeyringReplacedByGarbage) {
    write_text(keyring(), "garbage");
    cmk::Error e = open_error(url);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
    write_text(keyring(), "");
    e = open_error(url);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
    EXPECT_EQ(read_text(keyring()), "") << "an empty keyring must not be replaced by a new one";
}

// ---- missing keyring -------------------------------------------------------------

TEST_F(CoreKeyStore, MissingKeyringWithEncryptedDataIsCorruptAndCreatesNothing) {
    std::string url = "file:" + kek();
    encrypted_data = true;
    cmk::Error e = open_error(url);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << kind_name(e.kind()) << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), keyring())) << e.what();
    EXPECT_FALSE(e.hint().empty());
    EXPECT_EQ(exists_calls, 1);
    EXPECT_FALSE(file_exists(keyring()));
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, MissingKeyringAfterItWasCreatedWithEncryptedData) {
    std::string url = "file:" + kek();
    open(url);
    ASSERT_EQ(::unlink(keyring().c_str()), 0);
    encrypted_data = true;
    cmk::Error e = open_error(url);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
    EXPECT_FALSE(file_exists(keyring()));
    EXPECT_TRUE(dir_entries(data / "pg_cmk").empty());
}

TEST_F(CoreKeyStore, LeftoverKeyringTmpWithoutKeyringIsCorrupt) {
    // A crash between writing keyring.tmp and renaming it: do not guess.
    std::string url = "file:" + kek();
    ASSERT_EQ(::mkdir((data / "pg_cmk").c_str(), 0700), 0);
    write_text(data / "pg_cmk/keyring.tmp", "partial");
    cmk::Error e = open_error(url);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
    EXPECT_TRUE(contains(e.what(), "keyring.tmp")) << e.what();
    EXPECT_FALSE(file_exists(keyring()));
    EXPECT_EQ(read_text(data / "pg_cmk/keyring.tmp"), "partial");
}

TEST_F(CoreKeyStore, EmptyPgCmkDirectoryIsAFirstStart) {
    std::string url = "file:" + kek();
    ASSERT_EQ(::mkdir((data / "pg_cmk").c_str(), 0700), 0);
    cmk::OpenedKeys k = open(url);
    EXPECT_TRUE(k.created);
    EXPECT_TRUE(file_exists(keyring()));
}

// ---- configuration ----------------------------------------------------------------

TEST_F(CoreKeyStore, EmptyOrMalformedKeyUrlIsAConfigError) {
    kek();
    for (const std::string url : {"", "foo", "file:relative/path", "https://vault/nokeys/x", "file:", "https://",
                                  "ftp://vault.vault.azure.net/keys/k"}) {
        cmk::Error e = open_error(url);
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config)) << "\"" << url << "\": " << kind_name(e.kind()) << ": " << e.what();
        if (!url.empty()) {
            EXPECT_TRUE(contains(e.what(), "\"" + url + "\"")) << "message should quote the URL: " << e.what();
        }
        EXPECT_TRUE(contains(e.what(), "cmk.key_url")) << e.what();
    }
    EXPECT_EQ(exists_calls, 0) << "a bad setting is reported before anything is looked at";
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, MalformedKeyUrlIsAConfigErrorEvenWithAKeyring) {
    std::string path = kek();
    open("file:" + path);
    cmk::Error e = open_error("file:relative/path");
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config)) << e.what();
}

TEST_F(CoreKeyStore, RsaOaep256AndRsaOaepBothRoundTrip) {
    struct Case {
        const char* algorithm;
        const EVP_MD* md;
    };
    for (const Case& c : {Case{"RSA-OAEP-256", EVP_sha256()}, Case{"RSA-OAEP", EVP_sha1()}}) {
        SCOPED_TRACE(c.algorithm);
        TempDir dir;
        std::string url = "file:" + kek();
        cmk::ProviderSettings s;
        s.wrap_algorithm = c.algorithm;
        cmk::OpenedKeys a = cmk::open_or_create_keys(dir.path(), url, s, [] { return false; });
        EXPECT_EQ(a.keyring.current().wrapped.algorithm, c.algorithm);
        cmk::Keyring ring = cmk::decode_keyring(read_bytes(cmk::keyring_path(dir.path())));
        EXPECT_EQ(ring.current().wrapped.algorithm, c.algorithm);
        EXPECT_TRUE(same_bytes(rsa_oaep_decrypt(rsa_key(2048).pem, c.md, ring.current().wrapped.wrapped), a.generations[0].dek))
            << "not standard " << c.algorithm;
        // Reopen with the same setting, and with the other one: the keyring's
        // recorded algorithm is what unwraps it.
        cmk::OpenedKeys b = cmk::open_or_create_keys(dir.path(), url, s, [] { return true; });
        EXPECT_EQ(b.generations[0].dek, a.generations[0].dek);
        cmk::ProviderSettings other;
        other.wrap_algorithm = std::string(c.algorithm) == "RSA-OAEP" ? "RSA-OAEP-256" : "RSA-OAEP";
        cmk::OpenedKeys d = cmk::open_or_create_keys(dir.path(), url, other, [] { return true; });
        EXPECT_EQ(d.generations[0].dek, a.generations[0].dek);
    }
}

TEST_F(CoreKeyStore, UnsupportedWrapAlgorithmIsAConfigError) {
    cmk::ProviderSettings s;
    s.wrap_algorithm = "RSA1_5";
    cmk::Error e = open_error("file:" + kek(), s);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config)) << e.what();
    EXPECT_TRUE(contains(e.what(), "RSA1_5")) << e.what();
    expect_data_dir_untouched();
}

TEST_F(CoreKeyStore, ConfiguredUrlNamingAnotherFileWarnsAndUsesTheRecordedKey) {
    std::string recorded = kek(2048, 0, "kek-a.pem");
    std::string configured = kek(2048, 1, "kek-b.pem");  // a different, valid key
    cmk::OpenedKeys first = open("file:" + recorded);
    cmk::OpenedKeys k = open("file:" + configured);
    EXPECT_FALSE(k.created);
    ASSERT_EQ(k.warnings.size(), 1u);
    EXPECT_TRUE(contains(k.warnings[0], configured)) << k.warnings[0];
    EXPECT_TRUE(contains(k.warnings[0], recorded)) << k.warnings[0];
    EXPECT_EQ(k.generations[0].dek, first.generations[0].dek);
    EXPECT_EQ(k.keyring.current().wrapped.kek_base, "file:" + recorded);

    // Also when the configured file does not exist at all.
    cmk::OpenedKeys m = open("file:" + (keys / "nowhere.pem"));
    ASSERT_EQ(m.warnings.size(), 1u);
    EXPECT_EQ(m.generations[0].dek, first.generations[0].dek);
}

// ---- several generations ---------------------------------------------------------

namespace {
struct Generation {
    uint32_t number;
    cmk::SecureBytes dek;
    cmk::KeyringEntry entry;
};

Generation make_generation(uint32_t number, const std::string& kek_path, const std::string& algorithm = "RSA-OAEP-256") {
    cmk::ProviderSettings s;
    s.wrap_algorithm = algorithm;
    auto provider = cmk::make_file_key_provider(cmk::parse_key_url("file:" + kek_path), s);
    Generation g{number, cmk::generate_dek(), {}};
    g.entry.generation = number;
    g.entry.created_at = 1700000000 + number;
    g.entry.wrapped = provider->wrap(g.dek);
    g.entry.check_value = cmk::derive_keys(g.dek.data(), g.dek.size()).check_value;
    return g;
}
}  // namespace

TEST_F(CoreKeyStore, OpensEveryGenerationWrappedByDifferentKeks) {
    // Generation 1 wrapped by an old KEK file, generation 2 (current) by the
    // new one, with another algorithm: both must be unwrapped at start.
    std::string old_kek = kek(2048, 1, "old.pem"), new_kek = kek(2048, 0, "new.pem");
    Generation g1 = make_generation(1, old_kek, "RSA-OAEP"), g2 = make_generation(2, new_kek);
    cmk::Keyring ring;
    ring.current_generation = 2;
    ring.entries = {g1.entry, g2.entry};
    ASSERT_EQ(::mkdir((data / "pg_cmk").c_str(), 0700), 0);
    cmk::write_file_atomically(keyring(), cmk::encode_keyring(ring, cmk::derive_keys(g2.dek.data(), 32).keyring_mac), 0600);

    cmk::OpenedKeys k = open("file:" + new_kek);
    EXPECT_FALSE(k.created);
    EXPECT_TRUE(k.warnings.empty());
    EXPECT_EQ(k.keyring.current_generation, 2u);
    ASSERT_EQ(k.generations.size(), 2u);
    std::map<uint32_t, cmk::SecureBytes> got;
    for (const auto& g : k.generations) got[g.generation] = g.dek;
    EXPECT_EQ(got[1], g1.dek);
    EXPECT_EQ(got[2], g2.dek);
    EXPECT_EQ(k.generations[0].generation, 2u) << "the current generation comes first";
}

TEST_F(CoreKeyStore, MacMustBeKeyedWithTheCurrentGeneration) {
    std::string path = kek();
    Generation g1 = make_generation(1, path), g2 = make_generation(2, path);
    cmk::Keyring ring;
    ring.current_generation = 2;
    ring.entries = {g1.entry, g2.entry};
    ASSERT_EQ(::mkdir((data / "pg_cmk").c_str(), 0700), 0);
    // MAC'd with generation 1's key: not acceptable.
    cmk::write_file_atomically(keyring(), cmk::encode_keyring(ring, cmk::derive_keys(g1.dek.data(), 32).keyring_mac), 0600);
    cmk::Error e = open_error("file:" + path);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
}

TEST_F(CoreKeyStore, OlderGenerationWithABadCheckValueIsCorrupt) {
    std::string path = kek();
    Generation g1 = make_generation(1, path), g2 = make_generation(2, path);
    g1.entry.check_value[0] ^= 1;
    cmk::Keyring ring;
    ring.current_generation = 2;
    ring.entries = {g1.entry, g2.entry};
    ASSERT_EQ(::mkdir((data / "pg_cmk").c_str(), 0700), 0);
    cmk::write_file_atomically(keyring(), cmk::encode_keyring(ring, cmk::derive_keys(g2.dek.data(), 32).keyring_mac), 0600);
    cmk::Error e = open_error("file:" + path);
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
    EXPECT_TRUE(contains(e.what(), "generation 1")) << e.what();
}

TEST_F(CoreKeyStore, UnwrapAndCheckRejectsAnEntryOfAnotherDek) {
    std::string path = kek();
    Generation g1 = make_generation(1, path), g2 = make_generation(1, path);
    auto provider = cmk::make_file_key_provider(cmk::parse_key_url("file:" + path), {});
    EXPECT_EQ(cmk::unwrap_and_check(*provider, g1.entry), g1.dek);
    cmk::KeyringEntry mixed = g1.entry;
    mixed.check_value = g2.entry.check_value;
    cmk::Error e = expect_error([&] { cmk::unwrap_and_check(*provider, mixed); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt)) << e.what();
}

// ---- cmk.key_url parsing -----------------------------------------------------------

TEST(CoreKeyUrl, FileUrls) {
    cmk::KeyUrl u = cmk::parse_key_url("file:/etc/cmk/kek.pem");
    EXPECT_EQ(u.kind, cmk::KeyUrl::Kind::File);
    EXPECT_EQ(u.path, "/etc/cmk/kek.pem");
    EXPECT_EQ(u.base, "file:/etc/cmk/kek.pem");
    EXPECT_EQ(u.text, "file:/etc/cmk/kek.pem");
    EXPECT_TRUE(u.version.empty());
    EXPECT_EQ(u.with_version("abcdef"), "file:/etc/cmk/kek.pem") << "a file KEK has no version in its URL";

    cmk::KeyUrl v = cmk::parse_key_url("file:///etc/cmk/kek.pem");
    EXPECT_EQ(v.path, "/etc/cmk/kek.pem");
    EXPECT_EQ(v.base, u.base);
    EXPECT_EQ(v.text, "file:///etc/cmk/kek.pem");
}

TEST(CoreKeyUrl, KeyVaultIdentifierWithoutVersion) {
    cmk::KeyUrl u = cmk::parse_key_url("https://contoso-vault.vault.azure.net/keys/cmk-kek");
    EXPECT_EQ(u.kind, cmk::KeyUrl::Kind::KeyVault);
    EXPECT_EQ(u.scheme, "https");
    EXPECT_EQ(u.host, "contoso-vault.vault.azure.net");
    EXPECT_EQ(u.key_name, "cmk-kek");
    EXPECT_TRUE(u.version.empty());
    EXPECT_EQ(u.base, "https://contoso-vault.vault.azure.net/keys/cmk-kek");
    EXPECT_EQ(u.with_version(""), u.base);
    EXPECT_EQ(u.with_version("0123456789abcdef0123456789abcdef"),
              "https://contoso-vault.vault.azure.net/keys/cmk-kek/0123456789abcdef0123456789abcdef");
}

TEST(CoreKeyUrl, KeyVaultIdentifierWithVersion) {
    const std::string id = "https://contoso-vault.vault.azure.net/keys/cmk-kek/78deebed173b48e48f55abf87ed4cf71";
    cmk::KeyUrl u = cmk::parse_key_url(id);
    EXPECT_EQ(u.kind, cmk::KeyUrl::Kind::KeyVault);
    EXPECT_EQ(u.key_name, "cmk-kek");
    EXPECT_EQ(u.version, "78deebed173b48e48f55abf87ed4cf71");
    EXPECT_EQ(u.base, "https://contoso-vault.vault.azure.net/keys/cmk-kek");
    EXPECT_EQ(u.with_version(u.version), id);
}

TEST(CoreKeyUrl, TrailingSlashIsIgnored) {
    cmk::KeyUrl u = cmk::parse_key_url("https://v.vault.azure.net/keys/k/");
    EXPECT_EQ(u.key_name, "k");
    EXPECT_TRUE(u.version.empty());
    EXPECT_EQ(u.base, "https://v.vault.azure.net/keys/k");
}

TEST(CoreKeyUrl, ManagedHsm) {
    cmk::KeyUrl u = cmk::parse_key_url("https://contoso-hsm.managedhsm.azure.net/keys/hsm-kek/4f3e2d1c0b0a09080706050403020100");
    EXPECT_EQ(u.kind, cmk::KeyUrl::Kind::KeyVault);
    EXPECT_EQ(u.host, "contoso-hsm.managedhsm.azure.net");
    EXPECT_EQ(u.key_name, "hsm-kek");
    EXPECT_EQ(u.version, "4f3e2d1c0b0a09080706050403020100");
    EXPECT_EQ(u.base, "https://contoso-hsm.managedhsm.azure.net/keys/hsm-kek");
}

TEST(CoreKeyUrl, OtherCloudsAndEmulator) {
    for (const std::string host : {"v.vault.azure.cn", "v.vault.usgovcloudapi.net", "v.vault.microsoftazure.de",
                                   "h.managedhsm.usgovcloudapi.net", "localhost:8443", "127.0.0.1:9443"}) {
        cmk::KeyUrl u = cmk::parse_key_url("https://" + host + "/keys/kek");
        EXPECT_EQ(u.kind, cmk::KeyUrl::Kind::KeyVault) << host;
        EXPECT_EQ(u.host, host);
        EXPECT_EQ(u.key_name, "kek");
        EXPECT_EQ(u.base, "https://" + host + "/keys/kek");
    }
    cmk::KeyUrl e = cmk::parse_key_url("http://127.0.0.1:8080/keys/kek/abc123");
    EXPECT_EQ(e.scheme, "http");
    EXPECT_EQ(e.host, "127.0.0.1:8080");
    EXPECT_EQ(e.version, "abc123");
    EXPECT_EQ(e.base, "http://127.0.0.1:8080/keys/kek");
}

TEST(CoreKeyUrl, KeyNamesAtTheLengthLimit) {
    std::string name127(127, 'a'), name128(128, 'a');
    EXPECT_EQ(cmk::parse_key_url("https://v.vault.azure.net/keys/" + name127).key_name, name127);
    cmk::Error e = expect_error([&] { cmk::parse_key_url("https://v.vault.azure.net/keys/" + name128); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config));
    EXPECT_EQ(cmk::parse_key_url("https://v.vault.azure.net/keys/Key-1-A").key_name, "Key-1-A");
}

TEST(CoreKeyUrl, InvalidKeyNamesAndVersions) {
    struct Case {
        std::string url;
        std::string says;  // the message must contain this
    };
    const Case cases[] = {
        {"https://v.vault.azure.net/keys/my_key", "invalid key name \"my_key\""},
        {"https://v.vault.azure.net/keys/my.key", "invalid key name \"my.key\""},
        {"https://v.vault.azure.net/keys/my%20key", "invalid key name"},
        {"https://v.vault.azure.net/keys/k?api-version=7.4", "invalid key name"},
        {"https://v.vault.azure.net/keys/k#x", "invalid key name"},
        {"https://v.vault.azure.net/keys//version", "invalid key name \"\""},
        {"https://v.vault.azure.net/keys/k/not-a-version", "invalid key version \"not-a-version\""},
        {"https://v.vault.azure.net/keys/k/v1/extra", "invalid key version \"v1/extra\""},
        {"https://v.vault.azure.net/keys/k/" + std::string(65, 'a'), "invalid key version"},
        {"https://v.vault.azure.net/secrets/k", "malformed"},
        {"https://v.vault.azure.net/keys", "malformed"},
        {"https://v.vault.azure.net", "malformed"},
        {"https:///keys/k", "malformed"},
        {"https://user@v.vault.azure.net/keys/k", "malformed"},
        {"file:relative/kek.pem", "malformed"},
        {"file://host/etc/kek.pem", "malformed"},
        {"kek.pem", "malformed"},
        {"/etc/kek.pem", "malformed"},
        {"", "not set"},
    };
    for (const Case& c : cases) {
        cmk::Error e = expect_error([&] { cmk::parse_key_url(c.url); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config)) << c.url << ": " << e.what();
        EXPECT_TRUE(contains(e.what(), c.says)) << "\"" << c.url << "\" gave \"" << e.what() << "\", expected it to say \"" << c.says << "\"";
    }
    // 64 alphanumerics is still a version.
    EXPECT_EQ(cmk::parse_key_url("https://v.vault.azure.net/keys/k/" + std::string(64, 'f')).version, std::string(64, 'f'));
}
