// Replays the fuzz targets' corpora (fuzz/corpus/<target>/, seeds and every
// input that libFuzzer found worth keeping, including regression inputs of
// fixed findings) through the same target functions, without sanitizers:
// each input must run to the end (no crash, no failed invariant). The
// corpora are read relative to the tree's root, where the tests run.
#include <gtest/gtest.h>

#include <dirent.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

int cmk_fuzz_keyring(const uint8_t* data, size_t size);
int cmk_fuzz_key_url(const uint8_t* data, size_t size);
int cmk_fuzz_challenge(const uint8_t* data, size_t size);
int cmk_fuzz_token(const uint8_t* data, size_t size);
int cmk_fuzz_key_vault_json(const uint8_t* data, size_t size);
int cmk_fuzz_verify(const uint8_t* data, size_t size);

namespace {

size_t replay(const std::string& target, int (*fn)(const uint8_t*, size_t)) {
    std::string dir = "fuzz/corpus/" + target;
    DIR* d = ::opendir(dir.c_str());
    EXPECT_NE(d, nullptr) << "no corpus at " << dir << " (run the unit tests from the tree's root)";
    if (!d) return 0;
    size_t n = 0;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::ifstream f(dir + "/" + name, std::ios::binary);
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        SCOPED_TRACE(dir + "/" + name);
        EXPECT_EQ(fn(bytes.data(), bytes.size()), 0);
        n++;
    }
    ::closedir(d);
    return n;
}

}  // namespace

TEST(FuzzCorpora, Keyring) { EXPECT_GT(replay("keyring", cmk_fuzz_keyring), 0u); }
TEST(FuzzCorpora, KeyUrl) { EXPECT_GT(replay("key_url", cmk_fuzz_key_url), 0u); }
TEST(FuzzCorpora, Challenge) { EXPECT_GT(replay("challenge", cmk_fuzz_challenge), 0u); }
TEST(FuzzCorpora, Token) { EXPECT_GT(replay("token", cmk_fuzz_token), 0u); }
TEST(FuzzCorpora, KeyVaultJson) { EXPECT_GT(replay("key_vault_json", cmk_fuzz_key_vault_json), 0u); }
TEST(FuzzCorpora, Verify) { EXPECT_GT(replay("verify", cmk_fuzz_verify), 0u); }
