// Rotation's checks, in their order (key_lifecycle.h rewrap_keyring): the
// server owner's policy before anything is read, possession of the current
// key, the new key's vault safety, and errors about a file: target that do
// not tell which files exist. Also the policy at start and vault safety.
#include "capi.h"

#include "error.h"
#include "key_safety.h"
#include "key_store.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <memory>

using namespace core_test;

namespace {

class CoreRotation : public ::testing::Test {
protected:
    TempDir data, keys, other;
    std::unique_ptr<cmk_key_state> state = std::make_unique<cmk_key_state>();
    cmk_messages messages{};
    cmk_error err{};
    cmk_provider_settings settings{};

    std::string kek(int index, const std::string& name, const TempDir& dir) {
        std::string path = dir / name;
        write_text(path, rsa_key(2048, index).pem);
        return path;
    }
    static int no_data(void*) { return 0; }
    int open(const std::string& url) {
        return cmk_core_open_keys(data.path().c_str(), url.c_str(), &settings, &no_data, nullptr, state.get(), &messages, &err);
    }
    int rewrap(const std::string& url) {
        uint8_t* bytes = nullptr;
        size_t len = 0;
        int rc = cmk_core_rewrap_keyring(data.path().c_str(), state.get(), url.c_str(), &settings, &bytes, &len, &messages, &err);
        cmk_core_free(bytes);
        return rc;
    }
};

}  // namespace

TEST_F(CoreRotation, PolicyRefusesBeforeAnythingIsRead) {
    std::string current = kek(0, "kek.pem", keys);
    ASSERT_EQ(open("file:" + current), 0) << err.message;
    std::string elsewhere = kek(1, "kek.pem", other);
    // Even with the current key gone (possession would fail), the policy answers first.
    ASSERT_EQ(::unlink(current.c_str()), 0);
    EXPECT_NE(rewrap("file:" + elsewhere), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG) << err.message;
    EXPECT_TRUE(contains(err.message, "is not allowed by cmk.allowed_key_urls")) << err.message;
    EXPECT_TRUE(contains(err.detail, "allows only file:" + keys.path() + "/")) << err.detail;
    EXPECT_TRUE(contains(err.detail, "directory of the key that wraps the keyring")) << err.detail;
    for (const std::string url : {"https://127.0.0.1:9/keys/k", "file:/etc/passwd"}) {
        EXPECT_NE(rewrap(url), 0);
        EXPECT_EQ(err.kind, CMK_ERR_CONFIG) << url << ": " << err.message;
    }
}

TEST_F(CoreRotation, ExplicitPolicyAllowsMore) {
    std::string current = kek(0, "kek.pem", keys);
    ASSERT_EQ(open("file:" + current), 0) << err.message;
    std::string elsewhere = kek(1, "kek.pem", other);
    std::string policy = "file:" + keys.path() + "/, file:" + elsewhere;
    settings.allowed_key_urls = policy.c_str();
    EXPECT_EQ(rewrap("file:" + elsewhere), 0) << err.message;
    EXPECT_NE(rewrap("file:" + other.path() + "/kek2.pem"), 0);
    EXPECT_TRUE(contains(err.detail, "set in postgresql.conf")) << err.detail;
}

TEST_F(CoreRotation, PossessionOfTheCurrentKeyComesBeforeTheNewKey) {
    std::string current = kek(0, "kek.pem", keys);
    ASSERT_EQ(open("file:" + current), 0) << err.message;
    std::string next = kek(1, "next.pem", keys);
    kek(2, "kek.pem", keys);  // the current key file now holds another key
    EXPECT_NE(rewrap("file:" + next), 0);
    EXPECT_EQ(err.kind, CMK_ERR_WRONG_KEY) << err.message;
    EXPECT_TRUE(contains(err.message, "the key that wraps the keyring, file:" + current + ", did not unwrap key generation 1"))
        << err.message;
    EXPECT_TRUE(contains(err.detail, "cannot be rotated away from")) << err.detail;
    kek(0, "kek.pem", keys);  // back
    EXPECT_EQ(rewrap("file:" + next), 0) << err.message;
}

TEST_F(CoreRotation, FileTargetErrorsDoNotTellWhichFilesExist) {
    std::string current = kek(0, "kek.pem", keys);
    ASSERT_EQ(open("file:" + current), 0) << err.message;
    write_text(keys / "notakey.pem", "hello\n");
    write_text(keys / "ec.pem", generate_ec_p256().pem);
    write_text(keys / "unreadable.pem", rsa_key(2048, 1).pem);
    ::chmod((keys / "unreadable.pem").c_str(), 0);
    std::string first;
    for (const std::string name : {"missing.pem", "notakey.pem", "ec.pem", "unreadable.pem"}) {
        std::string url = "file:" + keys.path() + "/" + name;
        if (name == "unreadable.pem" && ::geteuid() == 0) continue;  // root reads it
        EXPECT_NE(rewrap(url), 0) << name;
        std::string said = std::string(err.message) + "|" + err.detail + "|" + err.hint + "|" + std::to_string(err.kind);
        if (first.empty()) first = said;
        EXPECT_EQ(said, first) << name;
    }
    EXPECT_TRUE(contains(first, "the key file is missing, unreadable, or not a PEM file holding an RSA private key")) << first;
}

TEST_F(CoreRotation, StartRefusesAKeyringOutsideTheExplicitPolicy) {
    std::string current = kek(0, "kek.pem", keys);
    ASSERT_EQ(open("file:" + current), 0) << err.message;
    ASSERT_EQ(::unlink(current.c_str()), 0);  // nothing is read before the policy answers
    std::string policy = "file:" + other.path() + "/";
    settings.allowed_key_urls = policy.c_str();
    EXPECT_NE(open("file:" + current), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG) << err.message;
    EXPECT_TRUE(contains(err.message, "the keyring is wrapped by a key outside the policy")) << err.message;
    EXPECT_TRUE(contains(err.hint, "cmk.allowed_key_urls")) << err.hint;
}

TEST_F(CoreRotation, FirstStartRefusesAConfiguredKeyOutsideTheExplicitPolicy) {
    std::string current = kek(0, "kek.pem", keys);
    std::string policy = "https://v.vault.azure.net";
    settings.allowed_key_urls = policy.c_str();
    EXPECT_NE(open("file:" + current), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG) << err.message;
    EXPECT_FALSE(file_exists(data / "pg_cmk")) << "nothing written";
}

TEST(CoreKeyAllowed, CapiDefaultAndExplicit) {
    cmk_error err;
    EXPECT_EQ(cmk_core_check_key_allowed(nullptr, "https://v.vault.azure.net/keys/k", "https://v.vault.azure.net/keys/j/ab", &err), 0);
    EXPECT_NE(cmk_core_check_key_allowed("", "https://v.vault.azure.net/keys/k", "file:/var/lib/x.pem", &err), 0);
    EXPECT_EQ(err.kind, CMK_ERR_CONFIG);
    EXPECT_TRUE(contains(err.detail, "allows only https://v.vault.azure.net (the default")) << err.detail;
    EXPECT_EQ(cmk_core_check_key_allowed("file:/var/lib/", "https://v.vault.azure.net/keys/k", "file:/var/lib/x.pem", &err), 0);
    EXPECT_NE(cmk_core_check_key_allowed("nonsense", "https://v.vault.azure.net/keys/k", "file:/var/lib/x.pem", &err), 0);
    EXPECT_EQ(cmk_core_check_key_policy("https://a.vault.azure.net, file:/etc/cmk/", &err), 0);
    EXPECT_NE(cmk_core_check_key_policy("https://a b", &err), 0);
    EXPECT_TRUE(contains(err.message, "cmk.allowed_key_urls entry \"https://a b\" is malformed")) << err.message;
}

TEST(CoreKeySafety, RecoveryLevels) {
    for (const char* ok : {"Recoverable", "Recoverable+ProtectedSubscription", "CustomizedRecoverable",
                           "CustomizedRecoverable+ProtectedSubscription"})
        EXPECT_TRUE(cmk::recovery_level_is_protected(ok)) << ok;
    for (const char* bad : {"Purgeable", "Recoverable+Purgeable", "CustomizedRecoverable+Purgeable", "", "recoverable",
                            "Recoverable+Something", "Unknown"})
        EXPECT_FALSE(cmk::recovery_level_is_protected(bad)) << bad;
}

TEST(CoreKeySafety, RequirePurgeProtection) {
    cmk::KeyUrl vault = cmk::parse_key_url("https://v.vault.azure.net/keys/k");
    cmk::KeyProperties p;
    p.base = vault.base;
    p.version = "abc";
    p.recovery_level = "Recoverable+Purgeable";
    cmk::Error e = expect_error([&] { cmk::require_purge_protection(vault, p, false); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config));
    EXPECT_TRUE(contains(e.what(), "https://v.vault.azure.net/keys/k/abc is in a vault without purge protection (recoveryLevel \"Recoverable+Purgeable\")"))
        << e.what();
    EXPECT_TRUE(contains(e.hint(), "cmk.require_purge_protection = off")) << e.hint();
    EXPECT_NO_THROW(cmk::require_purge_protection(vault, p, true)) << "the owner allowed it";
    p.recovery_level = "Purgeable";
    EXPECT_TRUE(contains(expect_error([&] { cmk::require_purge_protection(vault, p, false); }).what(),
                         "without soft delete and purge protection"));
    p.recovery_level.reset();
    EXPECT_TRUE(contains(expect_error([&] { cmk::require_purge_protection(vault, p, false); }).what(), "no recoveryLevel"));
    p.recovery_level = "CustomizedRecoverable";
    EXPECT_NO_THROW(cmk::require_purge_protection(vault, p, false));
    cmk::KeyProperties file;
    EXPECT_NO_THROW(cmk::require_purge_protection(cmk::parse_key_url("file:/etc/k.pem"), file, false)) << "a file key has none";
}
