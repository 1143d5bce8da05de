// The C interface used by the PostgreSQL glue (capi.h): results in plain
// structs, errors in cmk_error, never an exception.
#include "capi.h"
#include "temp_unit.h"

#include "file_key_provider.h"
#include "key_derivation.h"
#include "key_store.h"
#include "xts_cipher.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <ctime>
#include <memory>
#include <random>

using namespace core_test;

namespace {

struct Callback {
    int calls = 0;
    int answer = 0;
    static int fn(void* arg) {
        auto* self = static_cast<Callback*>(arg);
        self->calls++;
        return self->answer;
    }
};

struct XtsFree {
    void operator()(cmk_xts* x) const { cmk_xts_free(x); }
};
using Xts = std::unique_ptr<cmk_xts, XtsFree>;

class CoreCapi : public ::testing::Test {
protected:
    TempDir data, keys;
    Callback cb;
    std::unique_ptr<cmk_key_state> state = std::make_unique<cmk_key_state>();
    cmk_messages warnings{};
    cmk_error err{};

    std::string kek(int index = 0, const std::string& name = "kek.pem") {
        std::string path = keys / name;
        write_text(path, rsa_key(2048, index).pem);
        return path;
    }
    int open(const std::string& url, const cmk_provider_settings* settings = nullptr) {
        std::memset(state.get(), 0xA5, sizeof *state);  // garbage, as in fresh shared memory
        std::memset(&err, 0x5A, sizeof err);
        return cmk_core_open_keys(data.path().c_str(), url.c_str(), settings, &Callback::fn, &cb, state.get(), &warnings, &err);
    }
    void expect_ok(int rc) {
        EXPECT_EQ(rc, 0) << "kind " << err.kind << ": " << err.message;
        EXPECT_EQ(err.kind, CMK_OK);
        EXPECT_STREQ(err.message, "");
    }
    void expect_failed(int rc, cmk_error_kind kind, const std::string& message_part) {
        EXPECT_NE(rc, 0);
        EXPECT_EQ(err.kind, kind) << err.message;
        EXPECT_TRUE(contains(err.message, message_part)) << "\"" << err.message << "\" should contain \"" << message_part << "\"";
        // NUL-terminated within their buffers.
        EXPECT_LT(std::strlen(err.message), sizeof err.message);
        EXPECT_LT(std::strlen(err.detail), sizeof err.detail);
        EXPECT_LT(std::strlen(err.hint), sizeof err.hint);
    }
};

ByteVec random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    ByteVec b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
}

}  // namespace

// ---- cmk_core_open_keys -------------------------------------------------------

TEST_F(CoreCapi, OpenKeysFillsTheKeyState) {
    std::string path = kek();
    time_t before = std::time(nullptr);
    expect_ok(open("file:" + path));
    time_t after = std::time(nullptr);

    EXPECT_EQ(state->current_generation, 1u);
    EXPECT_EQ(state->n_slots, 1u);
    EXPECT_EQ(state->slots[0].generation, 1u);
    EXPECT_STREQ(state->provider, "file");
    EXPECT_EQ(std::string(state->kek_base), "file:" + path);
    EXPECT_EQ(std::string(state->kek_version), cmk::public_key_fingerprint_of_pem_file(path));
    EXPECT_STREQ(state->wrap_algorithm, "RSA-OAEP-256");
    EXPECT_EQ(state->keyring_created, 1);
    EXPECT_GE(state->created_at, static_cast<int64_t>(before));
    EXPECT_LE(state->created_at, static_cast<int64_t>(after));
    EXPECT_STREQ(warnings.warnings, "");
    EXPECT_EQ(cb.calls, 1);
    // Unused slots are cleared, not left as they were.
    for (size_t i = 1; i < CMK_MAX_GENERATIONS; i++) {
        ASSERT_EQ(state->slots[i].generation, 0u) << "slot " << i;
        ASSERT_EQ(ByteVec(state->slots[i].dek, state->slots[i].dek + CMK_DEK_BYTES), ByteVec(CMK_DEK_BYTES, 0)) << "slot " << i;
    }
    // The DEK in the slot is the keyring's (its check value matches).
    cmk::Keyring ring = cmk::decode_keyring(read_bytes(cmk::keyring_path(data.path())));
    EXPECT_EQ(cmk::derive_keys(state->slots[0].dek, CMK_DEK_BYTES).check_value, ring.current().check_value);
}

TEST_F(CoreCapi, SlotDekIsEqualAcrossTwoOpens) {
    std::string url = "file:" + kek();
    expect_ok(open(url));
    ByteVec first(state->slots[0].dek, state->slots[0].dek + CMK_DEK_BYTES);
    EXPECT_NE(first, ByteVec(CMK_DEK_BYTES, 0));
    expect_ok(open(url));
    EXPECT_EQ(state->keyring_created, 0);
    EXPECT_EQ(state->current_generation, 1u);
    EXPECT_EQ(state->n_slots, 1u);
    EXPECT_EQ(ByteVec(state->slots[0].dek, state->slots[0].dek + CMK_DEK_BYTES), first);
    EXPECT_EQ(cb.calls, 1) << "the callback is asked only when there is no keyring";
}

TEST_F(CoreCapi, SettingsAreHonouredAndZeroMeansDefault) {
    std::string url = "file:" + kek();
    cmk_provider_settings s{};
    s.wrap_algorithm = "RSA-OAEP";
    expect_ok(open(url, &s));
    EXPECT_STREQ(state->wrap_algorithm, "RSA-OAEP");

    TempDir other;
    cmk_provider_settings zero{};  // all NULL / 0: defaults
    cmk_key_state st2;
    ASSERT_EQ(cmk_core_open_keys(other.path().c_str(), url.c_str(), &zero, &Callback::fn, &cb, &st2, nullptr, &err), 0)
        << err.message;
    EXPECT_STREQ(st2.wrap_algorithm, "RSA-OAEP-256");
    zero.wrap_algorithm = "";  // empty string: default too
    TempDir third;
    ASSERT_EQ(cmk_core_open_keys(third.path().c_str(), url.c_str(), &zero, &Callback::fn, &cb, &st2, nullptr, &err), 0)
        << err.message;
    EXPECT_STREQ(st2.wrap_algorithm, "RSA-OAEP-256");
}

TEST_F(CoreCapi, WarningsAreReturnedOneALine) {
    std::string recorded = kek(0, "a.pem"), configured = kek(1, "b.pem");
    expect_ok(open("file:" + recorded));
    ByteVec dek(state->slots[0].dek, state->slots[0].dek + CMK_DEK_BYTES);
    expect_ok(open("file:" + configured));
    std::string w = warnings.warnings;
    EXPECT_TRUE(contains(w, recorded)) << w;
    EXPECT_TRUE(contains(w, configured)) << w;
    ASSERT_FALSE(w.empty());
    EXPECT_EQ(w.back(), '\n');
    EXPECT_EQ(ByteVec(state->slots[0].dek, state->slots[0].dek + CMK_DEK_BYTES), dek);
}

TEST_F(CoreCapi, MalformedUrlIsReportedAsConfig) {
    kek();
    expect_failed(open("file:relative/kek.pem"), CMK_ERR_CONFIG, "file:relative/kek.pem");
    EXPECT_FALSE(std::string(err.hint).empty()) << "a bad URL comes with a hint";
    expect_failed(open(""), CMK_ERR_CONFIG, "cmk.key_url");
    EXPECT_EQ(cb.calls, 0);
}

TEST_F(CoreCapi, NullKeyUrlIsNotSetNotACrash) {
    std::memset(&err, 0x5A, sizeof err);
    int rc = cmk_core_open_keys(data.path().c_str(), nullptr, nullptr, &Callback::fn, &cb, state.get(), &warnings, &err);
    expect_failed(rc, CMK_ERR_CONFIG, "not set");
}

TEST_F(CoreCapi, MissingKeyIsReportedAsKeyUnavailable) {
    std::string path = keys / "missing.pem";
    expect_failed(open("file:" + path), CMK_ERR_KEY_UNAVAILABLE, path);
    EXPECT_FALSE(std::string(err.hint).empty());
    EXPECT_FALSE(file_exists(data / "pg_cmk"));
}

TEST_F(CoreCapi, WrongKeyIsReportedAsWrongKey) {
    std::string path = kek(0);
    expect_ok(open("file:" + path));
    std::string fp = state->kek_version;
    kek(1);  // replaced by another key
    expect_failed(open("file:" + path), CMK_ERR_WRONG_KEY, fp);
    EXPECT_FALSE(std::string(err.hint).empty());
}

TEST_F(CoreCapi, CorruptKeyringIsReportedWithHint) {
    std::string url = "file:" + kek();
    expect_ok(open(url));
    std::string ring = cmk::keyring_path(data.path());
    cmk::Bytes b = read_bytes(ring);
    b[b.size() - 1] ^= 1;
    write_bytes(ring, b);
    expect_failed(open(url), CMK_ERR_KEYRING_CORRUPT, "keyring");
    EXPECT_TRUE(contains(err.hint, "backup")) << err.hint;
}

TEST_F(CoreCapi, MissingKeyringWithEncryptedDataIsCorruptAndCallbackGetsItsArgument) {
    std::string url = "file:" + kek();
    cb.answer = 1;
    expect_failed(open(url), CMK_ERR_KEYRING_CORRUPT, "missing");
    EXPECT_EQ(cb.calls, 1) << "the callback was not called with its arg";
    EXPECT_FALSE(std::string(err.detail).empty());
    EXPECT_FALSE(file_exists(data / "pg_cmk"));
}

TEST_F(CoreCapi, ErrorWithoutAnErrorStructIsStillAnError) {
    EXPECT_NE(cmk_core_open_keys(data.path().c_str(), "nonsense", nullptr, &Callback::fn, &cb, state.get(), nullptr, nullptr), 0);
    EXPECT_NE(cmk_core_check_key_url("nonsense", nullptr), 0);
}

TEST_F(CoreCapi, VeryLongMessagesAreTruncatedNotOverflowed) {
    // A key URL (within the length limit) longer than every buffer in cmk_error.
    std::string url = "file:relative/" + std::string(2000, 'x');
    std::memset(&err, 0x5A, sizeof err);
    int rc = cmk_core_open_keys(data.path().c_str(), url.c_str(), nullptr, &Callback::fn, &cb, state.get(), &warnings, &err);
    expect_failed(rc, CMK_ERR_CONFIG, "file:relative/xxxx");
    EXPECT_EQ(std::strlen(err.message), sizeof err.message - 1);
}

TEST(CoreCapiUrl, CheckKeyUrl) {
    cmk_error err;
    EXPECT_EQ(cmk_core_check_key_url("file:/etc/cmk/kek.pem", &err), 0);
    EXPECT_EQ(err.kind, CMK_OK);
    EXPECT_EQ(cmk_core_check_key_url("https://v.vault.azure.net/keys/k/0123abcd", &err), 0);
    EXPECT_EQ(cmk_core_check_key_url("https://v.managedhsm.azure.net/keys/k", &err), 0);
    EXPECT_NE(cmk_core_check_key_url("https://vault/nokeys/x", &err), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG);
    EXPECT_TRUE(contains(err.message, "https://vault/nokeys/x")) << err.message;
    EXPECT_NE(cmk_core_check_key_url(nullptr, &err), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG);
    EXPECT_NE(cmk_core_check_key_url("", &err), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG);
}

TEST(CoreCapiWipe, WipesExactlyTheGivenBytes) {
    uint8_t buf[64];
    std::memset(buf, 0xff, sizeof buf);
    cmk_core_wipe(buf + 8, 32);
    for (size_t i = 0; i < sizeof buf; i++) EXPECT_EQ(buf[i], (i >= 8 && i < 40) ? 0 : 0xff) << i;
    cmk_core_wipe(buf, 0);
}

// ---- cmk_xts_* ------------------------------------------------------------------

namespace {

const cmk_key_purpose kPurposes[] = {CMK_PURPOSE_DATA_PAGES, CMK_PURPOSE_WAL};

ByteVec test_dek(uint32_t seed = 1) { return random_bytes(CMK_DEK_BYTES, seed); }

Xts make_xts(const ByteVec& dek, cmk_key_purpose purpose) {
    cmk_error err;
    std::memset(&err, 0x5A, sizeof err);
    Xts x(cmk_xts_create(dek.data(), purpose, &err));
    EXPECT_NE(x.get(), nullptr) << err.message;
    EXPECT_EQ(err.kind, CMK_OK);
    return x;
}

}  // namespace

TEST(CoreCapiXts, RoundTripForEachPurpose) {
    ByteVec dek = test_dek();
    ByteVec pt = random_bytes(8176, 2);
    uint8_t tweak[CMK_XTS_TWEAK_BYTES] = {0x00, 0x40, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0};
    for (cmk_key_purpose p : kPurposes) {
        SCOPED_TRACE(p);
        Xts x = make_xts(dek, p);
        ASSERT_TRUE(x);
        ByteVec ct(pt.size()), back(pt.size());
        ASSERT_EQ(cmk_xts_encrypt(x.get(), pt.data(), ct.data(), pt.size(), tweak), 0);
        EXPECT_NE(ct, pt);
        ASSERT_EQ(cmk_xts_decrypt(x.get(), ct.data(), back.data(), ct.size(), tweak), 0);
        EXPECT_EQ(back, pt);
        // In place.
        ByteVec buf = pt;
        ASSERT_EQ(cmk_xts_encrypt(x.get(), buf.data(), buf.data(), buf.size(), tweak), 0);
        EXPECT_EQ(buf, ct);
        ASSERT_EQ(cmk_xts_decrypt(x.get(), buf.data(), buf.data(), buf.size(), tweak), 0);
        EXPECT_EQ(buf, pt);
        // WAL pages are 8192 - 16 too; any multiple of 16 works.
        ByteVec small(16, 0x11), small_ct(16);
        ASSERT_EQ(cmk_xts_encrypt(x.get(), small.data(), small_ct.data(), 16, tweak), 0);
    }
}

TEST(CoreCapiXts, DifferentPurposesGiveDifferentCiphertextForTheSameDekAndTweak) {
    ByteVec dek = test_dek(3);
    ByteVec pt(8176, 0);
    uint8_t tweak[CMK_XTS_TWEAK_BYTES] = {1};
    std::vector<ByteVec> cts;
    for (cmk_key_purpose p : kPurposes) {
        Xts x = make_xts(dek, p);
        ASSERT_TRUE(x);
        ByteVec ct(pt.size());
        ASSERT_EQ(cmk_xts_encrypt(x.get(), pt.data(), ct.data(), pt.size(), tweak), 0);
        cts.push_back(ct);
    }
    for (size_t i = 0; i < cts.size(); i++)
        for (size_t j = i + 1; j < cts.size(); j++) {
            EXPECT_NE(cts[i], cts[j]) << "purposes " << i << " and " << j;
            for (size_t blk = 0; blk < pt.size() / 16; blk++)
                ASSERT_NE(0, std::memcmp(cts[i].data() + 16 * blk, cts[j].data() + 16 * blk, 16))
                    << "purposes " << i << " and " << j << " share block " << blk;
        }
    // A WAL object cannot decrypt what a data-page object encrypted.
    Xts wal = make_xts(dek, CMK_PURPOSE_WAL);
    ByteVec back(pt.size());
    ASSERT_EQ(cmk_xts_decrypt(wal.get(), cts[0].data(), back.data(), back.size(), tweak), 0);
    EXPECT_NE(back, pt);
}

TEST(CoreCapiXts, EachPurposeUsesItsDerivedSubKey) {
    // cmk_xts_create(dek, purpose) must be XtsCipher(derive_keys(dek).<purpose>).
    ByteVec dek = test_dek(4);
    cmk::DerivedKeys keys = cmk::derive_keys(dek.data(), dek.size());
    const std::pair<cmk_key_purpose, const cmk::SecureBytes*> map[] = {
        {CMK_PURPOSE_DATA_PAGES, &keys.data_pages}, {CMK_PURPOSE_WAL, &keys.wal}};
    ByteVec pt = random_bytes(512, 5);
    uint8_t tweak[CMK_XTS_TWEAK_BYTES] = {9, 8, 7};
    for (const auto& [purpose, key] : map) {
        Xts x = make_xts(dek, purpose);
        cmk::XtsCipher ref(key->data());
        ByteVec a(pt.size()), b(pt.size());
        ASSERT_EQ(cmk_xts_encrypt(x.get(), pt.data(), a.data(), pt.size(), tweak), 0);
        ASSERT_TRUE(ref.encrypt(pt.data(), b.data(), pt.size(), tweak));
        EXPECT_EQ(a, b) << "purpose " << purpose;
    }
}

TEST(CoreCapiXts, SameDekAndPurposeGiveTheSameCipherInEveryObject) {
    // Every backend creates its own object from the DEK in shared memory:
    // they must agree.
    ByteVec dek = test_dek(6), pt = random_bytes(8176, 7);
    uint8_t tweak[CMK_XTS_TWEAK_BYTES] = {0xde, 0xad};
    Xts a = make_xts(dek, CMK_PURPOSE_DATA_PAGES), b = make_xts(dek, CMK_PURPOSE_DATA_PAGES);
    ByteVec ca(pt.size()), cb(pt.size());
    ASSERT_EQ(cmk_xts_encrypt(a.get(), pt.data(), ca.data(), pt.size(), tweak), 0);
    ASSERT_EQ(cmk_xts_encrypt(b.get(), pt.data(), cb.data(), pt.size(), tweak), 0);
    EXPECT_EQ(ca, cb);
    // Another DEK gives another cipher.
    Xts c = make_xts(test_dek(7), CMK_PURPOSE_DATA_PAGES);
    ByteVec cc(pt.size());
    ASSERT_EQ(cmk_xts_encrypt(c.get(), pt.data(), cc.data(), pt.size(), tweak), 0);
    EXPECT_NE(ca, cc);
}

TEST(CoreCapiXts, TooShortInputIsAnErrorCode) {
    Xts x = make_xts(test_dek(8), CMK_PURPOSE_WAL);
    uint8_t in[15] = {0}, out[15];
    uint8_t tweak[CMK_XTS_TWEAK_BYTES] = {0};
    EXPECT_NE(cmk_xts_encrypt(x.get(), in, out, sizeof in, tweak), 0);
    EXPECT_NE(cmk_xts_decrypt(x.get(), in, out, sizeof in, tweak), 0);
}

TEST(CoreCapiXts, FreeOfNullIsHarmless) { cmk_xts_free(nullptr); }

// ---- cmk_temp_* -----------------------------------------------------------------

TEST(CoreCapiTemp, UnitsAreTheCoresTempUnitCipherWithTheDerivedSubKeys) {
    ByteVec dek = test_dek(12);
    cmk::DerivedKeys keys = cmk::derive_keys(dek.data(), dek.size());
    cmk::TempUnitCipher ref(keys.temp_files.data(), keys.temp_tails.data());
    cmk_error err;
    cmk_temp_cipher* c = cmk_temp_cipher_create(dek.data(), &err);
    ASSERT_NE(c, nullptr) << err.message;
    const char* path = "base/pgsql_tmp/pgsql_tmp123.0";
    uint64_t h = cmk_temp_path_hash(path);
    EXPECT_EQ(h, cmk::temp_file_path_hash(path));
    for (size_t len : {1, 9, 15, 16, 100, 8192}) {
        ByteVec pt = random_bytes(len, 13), a(len), b(len), back(len);
        ASSERT_EQ(cmk_temp_unit_encrypt(c, h, 4, pt.data(), a.data(), len), 0);
        ASSERT_TRUE(ref.encrypt(h, 4, pt.data(), b.data(), len));
        EXPECT_EQ(a, b) << len;
        ASSERT_EQ(cmk_temp_unit_decrypt(c, h, 4, a.data(), back.data(), len), 0);
        EXPECT_EQ(back, pt) << len;
    }
    cmk_temp_cipher_free(c);
    cmk_temp_cipher_free(nullptr);
}

TEST(CoreCapiXts, WorksWithTheDekFromOpenKeys) {
    // The whole path the glue takes: open keys, then a cipher from slot 0.
    TempDir data, keys;
    std::string path = keys / "kek.pem";
    write_text(path, rsa_key(2048).pem);
    auto state = std::make_unique<cmk_key_state>();
    cmk_error err;
    ASSERT_EQ(cmk_core_open_keys(data.path().c_str(), ("file:" + path).c_str(), nullptr, [](void*) { return 0; }, nullptr,
                                 state.get(), nullptr, &err),
              0)
        << err.message;
    Xts x(cmk_xts_create(state->slots[0].dek, CMK_PURPOSE_DATA_PAGES, &err));
    ASSERT_TRUE(x) << err.message;
    ByteVec pt = random_bytes(8176, 9), ct(pt.size()), back(pt.size());
    uint8_t tweak[CMK_XTS_TWEAK_BYTES] = {1, 2, 3};
    ASSERT_EQ(cmk_xts_encrypt(x.get(), pt.data(), ct.data(), pt.size(), tweak), 0);
    // A second start decrypts what the first encrypted.
    auto state2 = std::make_unique<cmk_key_state>();
    ASSERT_EQ(cmk_core_open_keys(data.path().c_str(), ("file:" + path).c_str(), nullptr, [](void*) { return 1; }, nullptr,
                                 state2.get(), nullptr, &err),
              0)
        << err.message;
    Xts y(cmk_xts_create(state2->slots[0].dek, CMK_PURPOSE_DATA_PAGES, &err));
    ASSERT_EQ(cmk_xts_decrypt(y.get(), ct.data(), back.data(), ct.size(), tweak), 0);
    EXPECT_EQ(back, pt);
}
