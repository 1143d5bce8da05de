// Key URL limits (length, control characters, canonical file paths) and the
// key URL policy (cmk.allowed_key_urls): parsing, defaults and matching.
#include "error.h"
#include "key_url.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

using namespace core_test;

namespace {

bool allows(const std::string& policy, const std::string& url) {
    return cmk::KeyUrlPolicy::parse(policy).allows(cmk::parse_key_url(url));
}

}  // namespace

TEST(CoreKeyUrlLimits, LongestAcceptedAndRefusedWithoutQuoting) {
    std::string prefix = "file:/";
    std::string ok = prefix + std::string(cmk::kMaxKeyUrlBytes - prefix.size(), 'a');
    EXPECT_EQ(cmk::parse_key_url(ok).text.size(), 2048u);
    std::string huge = prefix + std::string(600 * 1024, 'a');
    cmk::Error e = expect_error([&] { cmk::parse_key_url(huge); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config));
    EXPECT_TRUE(contains(e.what(), "longer than 2048 bytes")) << e.what();
    EXPECT_LT(std::string(e.what()).size() + e.detail().size() + e.hint().size(), 400u) << "the URL is not quoted";
}

TEST(CoreKeyUrlLimits, ControlCharactersAreRefusedWithoutQuoting) {
    for (const std::string url : {std::string("file:/etc/k\n.pem"), std::string("https://v/keys/k\tx"),
                                  std::string("file:/etc/\x7f")}) {
        cmk::Error e = expect_error([&] { cmk::parse_key_url(url); });
        EXPECT_TRUE(contains(e.what(), "control character")) << e.what();
        EXPECT_FALSE(contains(e.what(), "/etc/k")) << e.what();
    }
}

TEST(CoreKeyUrlLimits, FilePathsMustBeCanonical) {
    for (const std::string url : {"file:/etc/cmk/../shadow", "file:/etc//kek.pem", "file:/etc/./kek.pem", "file:/etc/cmk/",
                                  "file:/etc/cmk/..", "file:/", "file:////etc/kek.pem"}) {
        cmk::Error e = expect_error([&] { cmk::parse_key_url(url); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config)) << url;
        EXPECT_TRUE(contains(e.what(), "malformed")) << url << ": " << e.what();
    }
    EXPECT_EQ(cmk::parse_key_url("file:/etc/cmk/..kek.pem").path, "/etc/cmk/..kek.pem");
    EXPECT_EQ(cmk::parse_key_url("file:///etc/cmk/kek.pem").path, "/etc/cmk/kek.pem");
}

TEST(CoreKeyUrlLimits, HostLongerThanADnsNameIsRefused) {
    // host[:port] is at most 253 + 6 bytes.
    EXPECT_THROW(cmk::parse_key_url("https://" + std::string(254, 'a') + ":84430/keys/k"), cmk::Error);
    EXPECT_NO_THROW(cmk::parse_key_url("https://" + std::string(253, 'a') + ":84430/keys/k"));
}

TEST(CoreKeyUrlPolicy, DefaultIsTheVaultOfTheKey) {
    cmk::KeyUrl kek = cmk::parse_key_url("https://Contoso.vault.azure.net/keys/kek/0123abcd");
    cmk::KeyUrlPolicy p = cmk::KeyUrlPolicy::of_key(kek);
    EXPECT_EQ(p.text(), "https://contoso.vault.azure.net");
    EXPECT_TRUE(p.allows(kek));
    EXPECT_TRUE(p.allows(cmk::parse_key_url("https://contoso.vault.azure.net/keys/other")));
    EXPECT_TRUE(p.allows(cmk::parse_key_url("https://CONTOSO.vault.azure.net/keys/kek/ffff")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("https://evil.vault.azure.net/keys/kek")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("https://contoso.vault.azure.net.evil.com/keys/kek")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("https://contoso.vault.azure.net:444/keys/kek")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("http://contoso.vault.azure.net/keys/kek")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("file:/var/lib/postgresql/15/main/server.key")));
}

TEST(CoreKeyUrlPolicy, DefaultOfAFileKeyIsItsDirectory) {
    cmk::KeyUrlPolicy p = cmk::KeyUrlPolicy::of_key(cmk::parse_key_url("file:/etc/cmk/kek.pem"));
    EXPECT_EQ(p.text(), "file:/etc/cmk/");
    EXPECT_TRUE(p.allows(cmk::parse_key_url("file:/etc/cmk/kek2.pem")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("file:/etc/cmk/sub/kek.pem"))) << "only the directory itself";
    EXPECT_FALSE(p.allows(cmk::parse_key_url("file:/etc/cmkx/kek.pem")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("file:/etc/kek.pem")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("https://localhost/keys/k")));
}

TEST(CoreKeyUrlPolicy, Entries) {
    EXPECT_TRUE(allows("https://a.vault.azure.net/keys/k", "https://a.vault.azure.net/keys/K/abc"));
    EXPECT_FALSE(allows("https://a.vault.azure.net/keys/k", "https://a.vault.azure.net/keys/k2"));
    EXPECT_TRUE(allows("https://a.vault.azure.net/keys/k/abc", "https://a.vault.azure.net/keys/k/ABC"));
    EXPECT_FALSE(allows("https://a.vault.azure.net/keys/k/abc", "https://a.vault.azure.net/keys/k/abd"));
    EXPECT_FALSE(allows("https://a.vault.azure.net/keys/k/abc", "https://a.vault.azure.net/keys/k"))
        << "a pinned version does not allow \"the newest\"";
    EXPECT_TRUE(allows("file:/etc/cmk/kek.pem", "file:/etc/cmk/kek.pem"));
    EXPECT_FALSE(allows("file:/etc/cmk/kek.pem", "file:/etc/cmk/kek2.pem"));
    EXPECT_TRUE(allows(" https://a.vault.azure.net/ , file:/etc/cmk/ ", "file:/etc/cmk/x.pem"));
    EXPECT_TRUE(allows("https://a.vault.azure.net/,file:/etc/cmk/", "https://a.vault.azure.net/keys/z"));
    EXPECT_TRUE(allows("*", "file:/anything.pem"));
    EXPECT_TRUE(allows("http://127.0.0.1:8443", "http://127.0.0.1:8443/keys/k"));
    EXPECT_FALSE(allows("http://127.0.0.1:8443", "https://127.0.0.1:8443/keys/k"));
    EXPECT_EQ(cmk::KeyUrlPolicy::parse(" https://a.vault.azure.net/ ,file:/etc/cmk/").text(),
              "https://a.vault.azure.net/, file:/etc/cmk/");
}

TEST(CoreKeyUrlPolicy, MalformedEntriesAreConfigErrorsNamingTheEntry) {
    for (const std::string policy : {"", " , ", "ftp://x", "file:relative/", "file:/etc/../x/", "https://", "https://a/b",
                                     "https://a b", "https://v/keys/bad_name", "/etc/cmk/"}) {
        cmk::Error e = expect_error([&] { cmk::KeyUrlPolicy::parse(policy); });
        EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config)) << policy;
        EXPECT_TRUE(contains(e.what(), "cmk.allowed_key_urls")) << policy << ": " << e.what();
    }
}

TEST(CoreKeyUrlPolicy, RefusalSaysWhatIsAllowed) {
    cmk::KeyUrlPolicy p = cmk::KeyUrlPolicy::parse("https://a.vault.azure.net");
    cmk::Error e = expect_error([&] { cmk::require_allowed(p, cmk::parse_key_url("file:/etc/shadow"), "the default"); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Config));
    EXPECT_TRUE(contains(e.what(), "\"file:/etc/shadow\" is not allowed by cmk.allowed_key_urls")) << e.what();
    EXPECT_TRUE(contains(e.detail(), "allows only https://a.vault.azure.net (the default)")) << e.detail();
    EXPECT_TRUE(contains(e.hint(), "postgresql.conf")) << e.hint();
    EXPECT_NO_THROW(cmk::require_allowed(p, cmk::parse_key_url("https://a.vault.azure.net/keys/k"), "x"));
}

// Found by fuzz/targets/key_url: the default policy was built by parsing
// text, so a directory name with a comma or spaces broke it apart.
TEST(CoreKeyUrlPolicy, DefaultOfAFileKeyWhoseDirectoryHasACommaOrSpaces) {
    cmk::KeyUrl kek = cmk::parse_key_url("file:/srv/keys, old /kek.pem");
    cmk::KeyUrlPolicy p = cmk::KeyUrlPolicy::of_key(kek);
    EXPECT_TRUE(p.allows(kek));
    EXPECT_TRUE(p.allows(cmk::parse_key_url("file:/srv/keys, old /kek2.pem")));
    EXPECT_FALSE(p.allows(cmk::parse_key_url("file:/srv/keys/kek2.pem")));
    EXPECT_EQ(p.text(), "file:/srv/keys, old /");
}
