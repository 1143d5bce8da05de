// Writes the seed corpora of fuzz/corpus/<target>/ (run by fuzz/run.sh
// --seeds; the files are in the repository). Seeds are well-formed inputs
// of each parser, and for verify, pages and files encrypted with the
// fixture's key (fuzz/targets/fuzz_fixture.h) so that the fuzzer starts
// from inputs that reach the decrypting checks.
#include "targets/fuzz_fixture.h"

#include "data_page.h"
#include "key_derivation.h"
#include "keyring.h"
#include "temp_unit.h"
#include "wal_page.h"
#include "xts_cipher.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::string root;

void put(const std::string& target, const std::string& name, const void* p, size_t n) {
    std::string dir = root + "/" + target;
    ::mkdir(root.c_str(), 0755);
    ::mkdir(dir.c_str(), 0755);
    FILE* f = std::fopen((dir + "/" + name).c_str(), "wb");
    if (!f || std::fwrite(p, 1, n, f) != n) std::perror(name.c_str());
    std::fclose(f);
}
void put(const std::string& target, const std::string& name, const std::string& s) { put(target, name, s.data(), s.size()); }
void put(const std::string& target, const std::string& name, const std::vector<uint8_t>& v) { put(target, name, v.data(), v.size()); }

void keyring_seeds() {
    cmk::Bytes v2 = cmk_fuzz::fixture_keyring_file();
    put("keyring", "v2_one_generation", v2);
    cmk::OpenedKeys keys = cmk_fuzz::fixture_keys();
    cmk::Keyring k = keys.keyring;
    k.installed_timeline = 2;
    k.installed_lsn = 0x3000028;
    cmk::KeyringEntry e = k.entries[0];
    e.generation = 4;
    e.current_from_lsn = 0x2000100;
    e.wrapped.kek_base = "https://myvault.vault.azure.net/keys/kek";
    e.wrapped.wrapped.assign(384, 0x17);
    k.entries.push_back(e);
    k.current_generation = 4;
    cmk::SecureBytes mac(32, 0x33);
    put("keyring", "v2_two_generations", cmk::encode_keyring(k, mac));
    // Version 1: the same layout without the installed and current-from fields.
    cmk::Bytes v1 = cmk::encode_keyring(keys.keyring, mac);
    v1[9] = 1;
    v1.erase(v1.begin() + 20, v1.begin() + 32);          // installed timeline and LSN
    v1.erase(v1.end() - 32 - 8, v1.end() - 32);          // the entry's current-from LSN
    put("keyring", "v1_one_generation", v1);
    put("keyring", "truncated", std::vector<uint8_t>(v2.begin(), v2.begin() + 40));
}

void key_url_seeds() {
    const char* urls[] = {"file:/etc/cmk/kek.pem", "https://myvault.vault.azure.net/keys/kek",
                          "https://myvault.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef",
                          "https://myhsm.managedhsm.azure.net/keys/kek", "https://cmk-emulator.vault.azure.net:8443/keys/k",
                          "https://contoso.vault.azure.net, file:/etc/cmk/", "https://contoso.vault.azure.net/keys/kek/*",
                          "file:relative.pem", "http://127.0.0.1:8080/keys/kek", "https://[::1]:443/keys/kek"};
    int i = 0;
    for (const char* u : urls) put("key_url", "url" + std::to_string(i++), u);
}

void challenge_seeds() {
    const char* c[] = {
        "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"https://vault.azure.net\"",
        "Bearer authorization_uri=\"https://login.windows.net/tenant\", resource=\"https://vault.azure.net\"",
        "Bearer authorization=\"https://login.microsoftonline.com/t\", scope=\"https://vault.azure.net/.default\"",
        "Basic realm=\"x\", Bearer authorization=\"https://login.cmk-emulator.test:8443/t\", resource=\"https://vault.azure.net\"",
        "Bearer error=\"invalid_token\", error_description=\"The access token expired\", authorization=\"https://a/b\"",
        "Negotiate"};
    int i = 0;
    for (const char* s : c) put("challenge", "c" + std::to_string(i++), s);
}

void token_seeds() {
    put("token", "ok", "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,\"access_token\":\"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.c2lnbmF0dXJl\"}");
    put("token", "expires_on", "{\"access_token\":\"abc.def.ghi\",\"expires_on\":\"1800003600\",\"resource\":\"https://vault.azure.net\",\"token_type\":\"Bearer\"}");
    put("token", "error", "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\",\"error_codes\":[7000215],\"timestamp\":\"2026-01-01 00:00:00Z\",\"trace_id\":\"x\",\"correlation_id\":\"y\"}");
    put("token", "jwt", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhIiwic3ViIjoiYSJ9.QUJD");
    put("token", "tenants", "tenant-a;tenant-b,*");
}

void key_vault_json_seeds() {
    put("key_vault_json", "bundle",
        "{\"key\":{\"kid\":\"https://myvault.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef\",\"kty\":\"RSA-HSM\","
        "\"key_ops\":[\"wrapKey\",\"unwrapKey\",\"encrypt\",\"decrypt\"],\"n\":\"" + std::string(342, 'A') + "w\",\"e\":\"AQAB\"},"
        "\"attributes\":{\"enabled\":true,\"nbf\":1700000000,\"exp\":1900000000,\"created\":1700000000,\"updated\":1700000000,"
        "\"recoveryLevel\":\"Recoverable\",\"recoverableDays\":90}}");
    put("key_vault_json", "error", "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Operation unwrapKey is not permitted on this key.\",\"innererror\":{\"code\":\"KeyOperationForbidden\"}}}");
    put("key_vault_json", "retry_after", "120");
}

void verify_seeds() {
    cmk::SecureBytes dek = cmk_fuzz::fixture_dek();
    cmk::DerivedKeys d = cmk::derive_keys(dek.data(), dek.size());
    cmk::XtsCipher data_cipher(d.data_pages.data());
    cmk::XtsCipher wal_cipher(d.wal.data());
    cmk::TempUnitCipher temp_cipher(d.temp_files.data(), d.temp_tails.data());
    auto with_selector = [](uint8_t sel, const std::vector<uint8_t>& body) {
        std::vector<uint8_t> out{sel};
        out.insert(out.end(), body.begin(), body.end());
        return out;
    };

    // A heap-like page: header, one line pointer, a tuple of text.
    std::vector<uint8_t> page(8192, 0);
    auto put16 = [&](std::vector<uint8_t>& p, size_t at, uint16_t v) { p[at] = v & 0xff; p[at + 1] = v >> 8; };
    put16(page, 12, 28);     // pd_lower
    put16(page, 14, 8000);   // pd_upper
    put16(page, 16, 8192);   // pd_special
    put16(page, 18, 8196);   // pd_pagesize_version
    std::memcpy(page.data() + 8000, "cmk fuzz seed tuple", 19);
    std::vector<uint8_t> enc(8192);
    cmk::data_page_encrypt(data_cipher, cmk_fuzz::kFixtureGeneration, cmk_fuzz::kFixtureRelfilenode, 0, true, page.data(), enc.data());
    std::vector<uint8_t> two = enc;
    std::vector<uint8_t> enc1(8192);
    cmk::data_page_encrypt(data_cipher, cmk_fuzz::kFixtureGeneration, cmk_fuzz::kFixtureRelfilenode, 1, true, page.data(), enc1.data());
    two.insert(two.end(), enc1.begin(), enc1.end());
    put("verify", "data_encrypted_2_pages", with_selector(0, two));
    put("verify", "data_plaintext", with_selector(0, page));
    put("verify", "data_new", with_selector(0, std::vector<uint8_t>(8192, 0)));

    // WAL: a long-header first page and a short-header page, encrypted.
    std::vector<uint8_t> wal(2 * 8192, 0);
    auto put32 = [&](size_t at, uint32_t v) { for (int i = 0; i < 4; i++) wal[at + i] = static_cast<uint8_t>(v >> (8 * i)); };
    auto put64 = [&](size_t at, uint64_t v) { for (int i = 0; i < 8; i++) wal[at + i] = static_cast<uint8_t>(v >> (8 * i)); };
    wal[0] = 0x10; wal[1] = 0xD1; wal[2] = 0x02;   // magic, XLP_LONG_HEADER
    put32(4, 1);
    put64(8, 0x1000000);
    put64(16, 7300000000000000000ull);
    put32(24, 16 << 20);
    put32(28, 8192);
    wal[8192] = 0x10; wal[8193] = 0xD1;
    put32(8192 + 4, 1);
    put64(8192 + 8, 0x1000000 + 8192);
    for (size_t i = 40; i < 8192; i++) wal[i] = static_cast<uint8_t>(i);
    std::vector<uint8_t> wal_enc(wal.size());
    cmk::wal_page_encrypt(wal_cipher, cmk_fuzz::kFixtureGeneration, wal.data(), wal_enc.data());
    cmk::wal_page_encrypt(wal_cipher, cmk_fuzz::kFixtureGeneration, wal.data() + 8192, wal_enc.data() + 8192);
    put("verify", "wal_encrypted", with_selector(3, wal_enc));
    put("verify", "wal_plaintext", with_selector(3, wal));

    // A two-phase file and a pg_stat_statements dump, encrypted, with their magic.
    std::vector<uint8_t> twophase(300, 0x61);
    twophase[0] = 0x34; twophase[1] = 0x45; twophase[2] = 0xF9; twophase[3] = 0x57;
    std::vector<uint8_t> tp_enc(twophase.size());
    temp_cipher.encrypt(cmk::temp_file_path_hash("pg_twophase/0000ABCD"), 0, twophase.data(), tp_enc.data(), tp_enc.size());
    put("verify", "twophase_encrypted", with_selector(4, tp_enc));
    std::vector<uint8_t> pgss(9000, 0x62);
    pgss[0] = 0x08; pgss[1] = 0x04; pgss[2] = 0x22; pgss[3] = 0x20;
    std::vector<uint8_t> pgss_enc(pgss.size());
    uint64_t h = cmk::temp_file_path_hash("pg_stat/pg_stat_statements.stat");
    temp_cipher.encrypt(h, 0, pgss.data(), pgss_enc.data(), 8192);
    temp_cipher.encrypt(h, 1, pgss.data() + 8192, pgss_enc.data() + 8192, pgss.size() - 8192);
    put("verify", "pgss_dump_encrypted", with_selector(5, pgss_enc));
    put("verify", "spill", with_selector(6, std::vector<uint8_t>(100, 0x63)));
    put("verify", "pg_control", cmk_fuzz::fixture_pg_control(true));
}

}  // namespace

int main(int argc, char** argv) {
    root = argc > 1 ? argv[1] : "fuzz/corpus";
    keyring_seeds();
    key_url_seeds();
    challenge_seeds();
    token_seeds();
    key_vault_json_seeds();
    verify_seeds();
    return 0;
}
