// The Azure Key Vault key provider against the local emulator (run through
// test/provider/run.sh, which prepares the identities and keys named here):
// every sign-in flow, token caching and refresh, the challenge flow, wrap and
// unwrap, every key condition, permission and sign-in errors, injected faults
// and retries, and what error messages may and may not contain.
#include "azure/credentials.h"
#include "azure/encoding.h"
#include "azure/key_vault_key_provider.h"
#include "error.h"
#include "key_provider.h"
#include "key_url.h"

#include "emulator.h"

#include <gtest/gtest.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace cmk;
using kvtest::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

kvtest::Emulator& emu() {
    static kvtest::Emulator e;
    return e;
}

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

std::string random_hex(size_t bytes) {
    std::vector<unsigned char> b(bytes);
    RAND_bytes(b.data(), static_cast<int>(b.size()));
    static const char hex[] = "0123456789abcdef";
    std::string s;
    for (auto c : b) {
        s += hex[c >> 4];
        s += hex[c & 15];
    }
    return s;
}

std::string text_of(const Error& e) { return std::string(e.what()) + "\n" + e.detail() + "\n" + e.hint(); }

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

class Kv : public ::testing::Test {
protected:
    using Env = std::map<std::string, std::string>;

    void SetUp() override {
        emu().admin("fault", {{"clear", true}});
        since_ = kvtest::Emulator::now_iso();
    }

    void TearDown() override {
        if (std::getenv("CMK_KV_SHOW_MESSAGES")) {  // to review what an operator would read
            for (const auto& e : errors_) std::printf("  error: %s\n", e.c_str());
            for (const auto& l : logs_) std::printf("  log:   %s\n", l.c_str());
        }
        emu().admin("fault", {{"clear", true}});
        emu().admin("set-vault", {{"access_policy", true}});
        emu().admin("set-token-lifetime", {{"seconds", 3600}});
    }

    static std::string secret() { return kvtest::env("CMK_KV_SECRET"); }

    // Every environment points the authority at the emulator and IMDS at a
    // closed loopback port, so that nothing ever reaches 169.254.169.254.
    Env base_env() const {
        return {{"AZURE_AUTHORITY_HOST", emu().url()}, {"AZURE_POD_IDENTITY_AUTHORITY_HOST", "https://127.0.0.1:1"}};
    }
    Env env_secret(const std::string& client = "app-secret", const std::string& tenant = "tenant-a",
                   std::string secret_value = {}) const {
        Env e = base_env();
        e["AZURE_TENANT_ID"] = tenant;
        e["AZURE_CLIENT_ID"] = client;
        e["AZURE_CLIENT_SECRET"] = secret_value.empty() ? secret() : secret_value;
        return e;
    }
    Env env_cert(bool encrypted = false) const {
        Env e = base_env();
        e["AZURE_TENANT_ID"] = "tenant-a";
        e["AZURE_CLIENT_ID"] = "app-cert";
        e["AZURE_CLIENT_CERTIFICATE_PATH"] = kvtest::env(encrypted ? "CMK_KV_CLIENT_CERT_ENC" : "CMK_KV_CLIENT_CERT");
        if (encrypted) e["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = kvtest::env("CMK_KV_CLIENT_CERT_PASSWORD");
        return e;
    }
    Env env_imds(const std::string& client = {}) const {
        Env e = base_env();
        e["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emu().url();
        if (!client.empty()) e["AZURE_CLIENT_ID"] = client;
        return e;
    }
    Env env_identity_endpoint(const std::string& client = {}, std::string header = {}) const {
        Env e = base_env();
        e["IDENTITY_ENDPOINT"] = emu().url() + "/msi/token";
        e["IDENTITY_HEADER"] = header.empty() ? kvtest::env("CMK_KV_IDENTITY_HEADER") : header;
        if (!client.empty()) e["AZURE_CLIENT_ID"] = client;
        return e;
    }
    Env env_wif(const char* file_var = "CMK_KV_FEDERATED_TOKEN_FILE") const {
        Env e = base_env();
        e["AZURE_TENANT_ID"] = "tenant-a";
        e["AZURE_CLIENT_ID"] = "app-wif";
        e["AZURE_FEDERATED_TOKEN_FILE"] = kvtest::env(file_var);
        return e;
    }

    ProviderSettings settings(Env env, const std::string& auth = "default") {
        ProviderSettings s;
        s.auth = auth;
        for (const auto& [name, value] : env) s.environment[name] = SecureString(value.c_str());
        s.ca_file = emu().ca();
        s.request_timeout_ms = 5000;
        s.retry_total_ms = 20000;
        s.log = [this](const std::string& line) { logs_.push_back(line); };
        return s;
    }

    std::string key_url(const std::string& name, const std::string& version = {}) const {
        return emu().url() + "/keys/" + name + (version.empty() ? "" : "/" + version);
    }

    std::unique_ptr<KeyProvider> provider(const std::string& url, const ProviderSettings& s) {
        return make_key_provider(parse_key_url(url), s);
    }

    static SecureBytes random_dek() {
        SecureBytes d(32);
        RAND_bytes(d.data(), 32);
        return d;
    }

    WrappedDek round_trip(KeyProvider& p) {
        SecureBytes dek = random_dek();
        WrappedDek w = p.wrap(dek);
        EXPECT_EQ(p.unwrap(w), dek);
        EXPECT_FALSE(w.wrapped.empty());
        return w;
    }

    template <typename F>
    Error error_of(F f) {
        try {
            f();
        } catch (const Error& e) {
            errors_.push_back(text_of(e));
            return e;
        }
        ADD_FAILURE() << "no cmk::Error was thrown";
        return Error(ErrorKind::Internal, "no error");
    }

    std::string unique(const std::string& prefix) const { return prefix + "-" + random_hex(6); }

    // A new application of tenant-a with its own secret and the given key permissions.
    std::string new_app(const json& permissions = json::array({"get", "wrapKey", "unwrapKey"})) {
        std::string id = unique("app");
        emu().add_identity(id, secret());
        if (!permissions.empty()) emu().grant(id, permissions);
        return id;
    }

    // Successful sign-ins of `caller` since the test started.
    int sign_ins(const std::string& caller) const {
        int n = 0;
        for (const auto& r : emu().audit(since_, caller, "Authentication"))
            if (r["result"] == "Success") n++;
        return n;
    }

    json audit(const std::string& caller = {}, const std::string& operation = {}) const {
        return emu().audit(since_, caller, operation);
    }

    int log_count(const std::string& needle) const {
        int n = 0;
        for (const auto& l : logs_)
            if (contains(l, needle)) n++;
        return n;
    }

    std::string all_logs() const {
        std::string s;
        for (const auto& l : logs_) s += l + "\n";
        return s;
    }

    std::vector<std::string> logs_;
    std::vector<std::string> errors_;
    std::string since_;
};

const azure::TokenCredential& credential_of(const KeyProvider& p) {
    return dynamic_cast<const azure::KeyVaultKeyProvider&>(p).credential();
}

// ======================================================================
// Sign-in flows
// ======================================================================

TEST_F(Kv, ClientSecretRoundTrip) {
    auto p = provider(key_url("kek"), settings(env_secret(), "client-secret"));
    EXPECT_EQ(p->name(), "azure-key-vault");
    round_trip(*p);
    EXPECT_EQ(credential_of(*p).name(), "ClientSecretCredential");
    EXPECT_GE(audit("app-secret", "KeyWrap").size(), 1u);
    EXPECT_GE(audit("app-secret", "KeyUnwrap").size(), 1u);
}

TEST_F(Kv, ClientCertificateRoundTrip) {
    auto p = provider(key_url("kek"), settings(env_cert(), "client-certificate"));
    round_trip(*p);
    EXPECT_EQ(credential_of(*p).name(), "ClientCertificateCredential");
    // The emulator records a certificate sign-in as client_credentials with acr=2.
    json a = audit("app-cert", "Authentication");
    ASSERT_GE(a.size(), 1u);
    EXPECT_TRUE(contains(a[0].value("detail", ""), "acr=2")) << a.dump();
}

TEST_F(Kv, ClientCertificateWithEncryptedKey) {
    auto p = provider(key_url("kek"), settings(env_cert(true), "client-certificate"));
    round_trip(*p);
    Env wrong = env_cert(true);
    wrong["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = "not-the-password";
    Error e = error_of([&] { provider(key_url("kek"), settings(wrong, "client-certificate")); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_FALSE(contains(text_of(e), "not-the-password"));
}

TEST_F(Kv, ManagedIdentityThroughImdsSystemAssigned) {
    auto p = provider(key_url("kek"), settings(env_imds(), "managed-identity"));
    round_trip(*p);
    json a = audit("mi-system", "Authentication");
    ASSERT_EQ(a.size(), 1u) << a.dump();
    EXPECT_EQ(a[0]["detail"], "imds");
    EXPECT_GE(audit("mi-system", "KeyWrap").size(), 1u);
}

TEST_F(Kv, ManagedIdentityThroughImdsUserAssigned) {
    auto p = provider(key_url("kek"), settings(env_imds("mi-user"), "managed-identity"));
    round_trip(*p);
    EXPECT_EQ(audit("mi-user", "Authentication").size(), 1u);
    EXPECT_EQ(audit("mi-system", "Authentication").size(), 0u);
}

TEST_F(Kv, ManagedIdentityThroughIdentityEndpoint) {
    auto p = provider(key_url("kek"), settings(env_identity_endpoint("mi-user"), "managed-identity"));
    round_trip(*p);
    json a = audit("mi-user", "Authentication");
    ASSERT_EQ(a.size(), 1u) << a.dump();
    EXPECT_EQ(a[0]["detail"], "msi");
}

TEST_F(Kv, ManagedIdentityErrors) {
    // An identity that is not assigned here.
    Error e = error_of([&] { provider(key_url("kek"), settings(env_imds("mi-nobody"), "managed-identity"))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable) << e.what();
    EXPECT_TRUE(contains(e.what(), "user-assigned managed identity mi-nobody")) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 400")) << e.what();
    EXPECT_TRUE(contains(e.detail(), "Identity not found")) << e.detail();
    // A wrong IDENTITY_HEADER.
    e = error_of([&] {
        provider(key_url("kek"), settings(env_identity_endpoint({}, "0000not-the-header0000"), "managed-identity"))->check_key();
    });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 401")) << e.what();
    EXPECT_FALSE(contains(text_of(e), "0000not-the-header0000"));
}

TEST_F(Kv, WorkloadIdentityRoundTrip) {
    auto p = provider(key_url("kek"), settings(env_wif(), "workload-identity"));
    round_trip(*p);
    EXPECT_EQ(credential_of(*p).name(), "WorkloadIdentityCredential");
    EXPECT_EQ(audit("app-wif", "Authentication").size(), 1u);
}

TEST_F(Kv, WorkloadIdentityWithAnotherSubjectIsRefused) {
    Error e = error_of([&] {
        provider(key_url("kek"), settings(env_wif("CMK_KV_FEDERATED_TOKEN_FILE_OTHER"), "workload-identity"))->check_key();
    });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "AADSTS700213")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "federated credential")) << e.hint();
    std::string token = kvtest::read_file(kvtest::env("CMK_KV_FEDERATED_TOKEN_FILE_OTHER"));
    EXPECT_FALSE(contains(text_of(e), token));
}

TEST_F(Kv, ExplicitFlowsNameMissingVariables) {
    Error e = error_of([&] { provider(key_url("kek"), settings(base_env(), "workload-identity")); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_TRUE(contains(e.what(), "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE")) << e.what();
    e = error_of([&] { provider(key_url("kek"), settings(base_env(), "client-certificate")); });
    EXPECT_TRUE(contains(e.what(), "AZURE_CLIENT_CERTIFICATE_PATH")) << e.what();
}

// ======================================================================
// DefaultAzureCredential: environment (secret, certificate), workload identity, managed identity
// ======================================================================

namespace {
std::string chain_choice(const KeyProvider& p) {
    const auto* chain = dynamic_cast<const azure::ChainedTokenCredential*>(&credential_of(p));
    if (!chain || !chain->selected()) return "none";
    const azure::TokenCredential* s = chain->selected();
    if (const auto* envc = dynamic_cast<const azure::EnvironmentCredential*>(s))
        return s->name() + "/" + (envc->selected() ? envc->selected()->name() : "none");
    return s->name();
}
}  // namespace

TEST_F(Kv, DefaultChainPicksEnvironmentSecretFirst) {
    Env e = env_secret();
    // Workload identity and IMDS are configured too: the environment wins.
    for (const auto& kv : env_wif()) e.insert(kv);
    e["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emu().url();
    auto p = provider(key_url("kek"), settings(e));
    round_trip(*p);
    EXPECT_EQ(chain_choice(*p), "EnvironmentCredential/ClientSecretCredential");
    EXPECT_EQ(audit("app-wif", "Authentication").size(), 0u);
    EXPECT_EQ(audit("mi-system", "Authentication").size(), 0u);
}

TEST_F(Kv, DefaultChainPicksEnvironmentCertificate) {
    auto p = provider(key_url("kek"), settings(env_cert()));
    round_trip(*p);
    EXPECT_EQ(chain_choice(*p), "EnvironmentCredential/ClientCertificateCredential");
}

TEST_F(Kv, DefaultChainPicksWorkloadIdentityBeforeManagedIdentity) {
    Env e = env_wif();
    e["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emu().url();
    auto p = provider(key_url("kek"), settings(e));
    round_trip(*p);
    EXPECT_EQ(chain_choice(*p), "WorkloadIdentityCredential");
    EXPECT_EQ(audit("mi-system", "Authentication").size(), 0u);
}

TEST_F(Kv, DefaultChainFallsBackToManagedIdentity) {
    auto p = provider(key_url("kek"), settings(env_imds()));
    round_trip(*p);
    EXPECT_EQ(chain_choice(*p), "ManagedIdentityCredential");
    EXPECT_EQ(audit("mi-system", "Authentication").size(), 1u);
    EXPECT_EQ(log_count("signed in with ManagedIdentityCredential"), 1) << all_logs();
}

TEST_F(Kv, DefaultChainWithNothingConfigured) {
    Error e = error_of([&] { provider(key_url("kek"), settings(base_env()))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Config) << e.what();
    for (const char* name : {"EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential"})
        EXPECT_TRUE(contains(e.what(), name)) << e.what();
}

TEST_F(Kv, DefaultChainReportsARejectedSecretInsteadOfMovingOn) {
    Env e = env_secret("app-secret", "tenant-a", "wrong-" + secret());
    e["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emu().url();  // a working managed identity would answer
    Error err = error_of([&] { provider(key_url("kek"), settings(e))->check_key(); });
    EXPECT_EQ(err.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(err.what(), "AADSTS7000215")) << err.what();
    EXPECT_EQ(audit("mi-system", "Authentication").size(), 0u);
}

// ======================================================================
// Token cache
// ======================================================================

TEST_F(Kv, OneTokenForSeveralOperations) {
    std::string app = new_app();
    auto p = provider(key_url("kek"), settings(env_secret(app)));
    p->check_key();
    WrappedDek w = p->wrap(random_dek());
    p->unwrap(w);
    p->wrap(random_dek());
    p->check_key();
    EXPECT_EQ(sign_ins(app), 1);
    EXPECT_EQ(log_count("acquired an access token"), 1) << all_logs();
}

TEST_F(Kv, TokenIsRefreshedAfterExpiry) {
    emu().admin("set-token-lifetime", {{"seconds", 4}});
    std::string app = new_app();
    auto p = provider(key_url("kek"), settings(env_secret(app)));
    p->check_key();
    p->check_key();
    EXPECT_EQ(sign_ins(app), 1);
    std::this_thread::sleep_for(milliseconds(4500));  // past the token's expiry
    WrappedDek w = p->wrap(random_dek());
    p->unwrap(w);
    EXPECT_EQ(sign_ins(app), 2);
    EXPECT_EQ(log_count("acquired an access token"), 2) << all_logs();
    // No request was refused for an expired token.
    for (const auto& r : audit(app))
        EXPECT_NE(r["status"], 401) << r.dump();
}

TEST_F(Kv, ManagedIdentityTokenIsCachedToo) {
    auto p = provider(key_url("kek"), settings(env_imds("mi-user"), "managed-identity"));
    round_trip(*p);
    round_trip(*p);
    EXPECT_EQ(audit("mi-user", "Authentication").size(), 1u);
}

// ======================================================================
// Challenge flow
// ======================================================================

TEST_F(Kv, ChallengeFlowFirstRequestIsUnauthenticated) {
    std::string app = new_app();
    auto p = provider(key_url("kek"), settings(env_secret(app)));
    p->check_key();
    p->check_key();
    json gets = audit({}, "KeyGet");
    // The first GET went without a token and got the 401 challenge; then two GETs with the token.
    ASSERT_GE(gets.size(), 3u) << gets.dump();
    EXPECT_EQ(gets[0]["status"], 401) << gets.dump();
    EXPECT_EQ(gets[0]["caller"], "");
    int ok = 0;
    for (const auto& r : gets)
        if (r["caller"] == app && r["status"] == 200) ok++;
    EXPECT_EQ(ok, 2);
    int challenged = 0;
    for (const auto& r : gets)
        if (r["status"] == 401) challenged++;
    EXPECT_EQ(challenged, 1) << "the learnt tenant and scope are reused";
}

TEST_F(Kv, ChallengeFlowWhenTheFirstRequestIsAnUnwrap) {
    auto p1 = provider(key_url("kek"), settings(env_secret()));
    WrappedDek w = p1->wrap(random_dek());
    // A fresh provider whose first request is an unwrap.
    std::string app = new_app();
    auto p2 = provider(key_url("kek"), settings(env_secret(app)));
    EXPECT_EQ(p2->unwrap(w).size(), 32u);
    json unwraps = audit({}, "KeyUnwrap");
    ASSERT_GE(unwraps.size(), 2u) << unwraps.dump();
    EXPECT_EQ(unwraps[unwraps.size() - 2]["status"], 401);
    EXPECT_EQ(unwraps.back()["status"], 200);
    EXPECT_EQ(unwraps.back()["caller"], app);
}

TEST_F(Kv, ChallengeForAnotherDomainIsRefused) {
    // The emulator's challenge names resource https://localhost; a vault
    // addressed as 127.0.0.1 is not within that domain: no token is requested.
    std::string app = new_app();
    std::string url = "https://127.0.0.1:" + emu().port() + "/keys/kek";
    Error e = error_of([&] { provider(url, settings(env_secret(app)))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Config) << e.what();
    EXPECT_TRUE(contains(e.what(), "refusing to authenticate")) << e.what();
    EXPECT_TRUE(contains(e.what(), "\"localhost\"")) << e.what();
    EXPECT_EQ(sign_ins(app), 0);
    e = error_of([&] { provider(url, settings(env_secret(app)))->wrap(random_dek()); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_EQ(sign_ins(app), 0);
}

TEST_F(Kv, WrongTenant) {
    // app-b lives in tenant-b; the vault belongs to tenant-a.
    Error e = error_of([&] { provider(key_url("kek"), settings(env_secret("app-b", "tenant-b")))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "belongs to tenant tenant-a")) << e.what();
    EXPECT_TRUE(contains(e.what(), "configured for tenant tenant-b")) << e.what();
    // Allowed to follow the vault's tenant, it is not registered there.
    Env allowed = env_secret("app-b", "tenant-b");
    allowed["AZURE_ADDITIONALLY_ALLOWED_TENANTS"] = "*";
    e = error_of([&] { provider(key_url("kek"), settings(allowed))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "AADSTS700016")) << e.what();
    EXPECT_TRUE(contains(e.what(), "not found in the tenant")) << e.what();
    // A managed identity of tenant-b gets a token the vault refuses (AKV10032).
    e = error_of([&] { provider(key_url("kek"), settings(env_imds("mi-b"), "managed-identity"))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "rejected the access token")) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 401")) << e.what();
    EXPECT_TRUE(contains(e.detail(), "AKV10032")) << e.detail();
}

// ======================================================================
// Wrap and unwrap
// ======================================================================

TEST_F(Kv, BothAlgorithmsRoundTrip) {
    for (const char* alg : {"RSA-OAEP-256", "RSA-OAEP"}) {
        ProviderSettings s = settings(env_secret());
        s.wrap_algorithm = alg;
        auto p = provider(key_url("kek-hsm"), s);
        WrappedDek w = round_trip(*p);
        EXPECT_EQ(w.algorithm, alg);
        EXPECT_EQ(w.wrapped.size(), 384u);  // 3072-bit key
        EXPECT_EQ(w.kek_base, key_url("kek-hsm"));
        // An unwrap follows the recorded algorithm, whatever the settings say now.
        ProviderSettings other = settings(env_secret());
        other.wrap_algorithm = std::string(alg) == "RSA-OAEP" ? "RSA-OAEP-256" : "RSA-OAEP";
        EXPECT_EQ(provider(key_url("kek-hsm"), other)->unwrap(w).size(), 32u);
    }
}

TEST_F(Kv, CheckKeyReportsProperties) {
    auto p = provider(key_url("kek-hsm"), settings(env_secret()));
    KeyProperties k = p->check_key();
    EXPECT_EQ(k.key_type, "RSA-HSM");
    EXPECT_EQ(k.key_size_bits, 3072);
    EXPECT_TRUE(k.enabled);
    EXPECT_EQ(k.version.size(), 32u);
    EXPECT_EQ(k.base, key_url("kek-hsm"));
}

TEST_F(Kv, WithoutVersionWrapUsesNewestAndUnwrapUsesRecordedVersion) {
    std::string name = unique("rot");
    std::string v1 = emu().create_key(name);
    auto p = provider(key_url(name), settings(env_secret()));
    SecureBytes dek1 = random_dek(), dek2 = random_dek();
    WrappedDek w1 = p->wrap(dek1);
    EXPECT_EQ(w1.kek_version, v1);
    std::string v2 = emu().rotate_key(name);
    ASSERT_NE(v1, v2);
    WrappedDek w2 = p->wrap(dek2);
    EXPECT_EQ(w2.kek_version, v2);
    EXPECT_EQ(p->check_key().version, v2);
    EXPECT_EQ(p->unwrap(w1), dek1);
    EXPECT_EQ(p->unwrap(w2), dek2);
    json unwraps = audit("app-secret", "KeyUnwrap");
    ASSERT_EQ(unwraps.size(), 2u);
    EXPECT_EQ(unwraps[0]["version"], v1);
    EXPECT_EQ(unwraps[1]["version"], v2);
}

TEST_F(Kv, WithVersionWrapUsesThatVersion) {
    std::string name = unique("ver");
    std::string v1 = emu().create_key(name);
    emu().rotate_key(name);
    auto p = provider(key_url(name, v1), settings(env_secret()));
    WrappedDek w = round_trip(*p);
    EXPECT_EQ(w.kek_version, v1);
    EXPECT_EQ(w.kek_base, key_url(name));
    EXPECT_EQ(p->check_key().version, v1);
    json wraps = audit("app-secret", "KeyWrap");
    ASSERT_EQ(wraps.size(), 1u);
    EXPECT_EQ(wraps[0]["version"], v1);
}

TEST_F(Kv, UnwrapWithTheWrongVersionIsWrongKey) {
    std::string name = unique("wv");
    emu().create_key(name);
    auto p = provider(key_url(name), settings(env_secret()));
    WrappedDek w = p->wrap(random_dek());
    w.kek_version = emu().rotate_key(name);
    Error e = error_of([&] { p->unwrap(w); });
    EXPECT_EQ(e.kind(), ErrorKind::WrongKey) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 400")) << e.what();
    // A DEK wrapped by another key is refused before any request.
    WrappedDek other = w;
    other.kek_base = key_url("kek");
    EXPECT_EQ(error_of([&] { p->unwrap(other); }).kind(), ErrorKind::WrongKey);
}

// ======================================================================
// Key conditions
// ======================================================================

TEST_F(Kv, DisabledKey) {
    std::string name = unique("dis");
    emu().create_key(name);
    auto p = provider(key_url(name), settings(env_secret()));
    WrappedDek w = p->wrap(random_dek());
    emu().admin("set-key", {{"name", name}, {"enabled", false}});
    for (auto op : std::vector<std::function<void()>>{[&] { p->check_key(); }, [&] { p->wrap(random_dek()); },
                                                       [&] { p->unwrap(w); }}) {
        Error e = error_of(op);
        EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
        EXPECT_TRUE(contains(e.what(), "is disabled")) << e.what();
        EXPECT_TRUE(contains(e.what(), "request id ")) << e.what();
    }
    emu().admin("set-key", {{"name", name}, {"enabled", true}});
    EXPECT_EQ(p->unwrap(w).size(), 32u);  // access returns with the key
}

TEST_F(Kv, ExpiredKey) {
    std::string name = unique("exp");
    emu().create_key(name);
    auto p = provider(key_url(name), settings(env_secret()));
    WrappedDek w = p->wrap(random_dek());
    emu().admin("set-key", {{"name", name}, {"exp", now_unix() - 60}});
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "expired at")) << e.what();
    e = error_of([&] { p->wrap(random_dek()); });
    EXPECT_TRUE(contains(e.what(), "expired at")) << e.what();
    // Key Vault still unwraps with an expired key ("Date-time controlled operations").
    EXPECT_EQ(p->unwrap(w).size(), 32u);
}

TEST_F(Kv, NotYetValidKey) {
    std::string name = unique("nbf");
    emu().create_key(name, {{"nbf", now_unix() + 3600}});
    auto p = provider(key_url(name), settings(env_secret()));
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "is not valid before")) << e.what();
    EXPECT_EQ(error_of([&] { p->wrap(random_dek()); }).kind(), ErrorKind::KeyUnavailable);
}

TEST_F(Kv, KeyOpsMissing) {
    std::string name = unique("ops");
    emu().create_key(name, {{"ops", json::array({"encrypt", "decrypt"})}});
    auto p = provider(key_url(name), settings(env_secret()));
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "does not permit wrapKey (its key_ops: encrypt, decrypt)")) << e.what();
    // unwrapKey taken away after wrapping: Key Vault refuses the unwrap.
    std::string n2 = unique("ops");
    emu().create_key(n2);
    auto p2 = provider(key_url(n2), settings(env_secret()));
    WrappedDek w = p2->wrap(random_dek());
    emu().admin("set-key", {{"name", n2}, {"ops", json::array({"wrapKey"})}});
    e = error_of([&] { p2->check_key(); });
    EXPECT_TRUE(contains(e.what(), "does not permit unwrapKey")) << e.what();
    e = error_of([&] { p2->unwrap(w); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "does not permit unwrapKey")) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 403")) << e.what();
}

TEST_F(Kv, EcKeyIsRefused) {
    std::string name = unique("ec");
    emu().create_key(name, {{"kty", "EC"}, {"crv", "P-256"}});
    Error e = error_of([&] { provider(key_url(name), settings(env_secret()))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "of type EC")) << e.what();
    e = error_of([&] { provider(key_url(name), settings(env_secret()))->wrap(random_dek()); });
    EXPECT_TRUE(contains(e.what(), "of type EC")) << e.what();
}

TEST_F(Kv, KeySizesAccepted) {
    // 2048 and 3072 are covered above; the emulator refuses other sizes, so a
    // wrong size is checked on a synthetic KeyBundle by the unit tests.
    std::string name = unique("k4096");
    emu().create_key(name, {{"size", 4096}});
    auto p = provider(key_url(name), settings(env_secret()));
    EXPECT_EQ(p->check_key().key_size_bits, 4096);
    EXPECT_EQ(round_trip(*p).wrapped.size(), 512u);
}

TEST_F(Kv, KeyNotFound) {
    auto p = provider(key_url(unique("missing")), settings(env_secret()));
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "was not found in the vault")) << e.what();
    EXPECT_TRUE(contains(e.what(), "code KeyNotFound")) << e.what();
    e = error_of([&] { provider(key_url("kek", "0123456789abcdef0123456789abcdef"), settings(env_secret()))->wrap(random_dek()); });
    EXPECT_TRUE(contains(e.what(), "/keys/kek/0123456789abcdef0123456789abcdef was not found")) << e.what();
}

TEST_F(Kv, DeletedKey) {
    std::string name = unique("del");
    emu().create_key(name);
    auto p = provider(key_url(name), settings(env_secret()));
    WrappedDek w = p->wrap(random_dek());
    emu().admin("delete-key", {{"name", name}});
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "was not found")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "recover")) << e.hint();
    e = error_of([&] { p->unwrap(w); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    emu().admin("recover-key", {{"name", name}});
    EXPECT_EQ(p->unwrap(w).size(), 32u);
}

// ======================================================================
// Permissions
// ======================================================================

TEST_F(Kv, PermissionDeniedByAccessPolicy) {
    std::string app = new_app(json::array({"get"}));
    auto p = provider(key_url("kek"), settings(env_secret(app)));
    EXPECT_NO_THROW(p->check_key());
    Error e = error_of([&] { p->wrap(random_dek()); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "access policy does not grant the 'wrapKey' key permission")) << e.what();
    EXPECT_TRUE(contains(e.what(), "inner code ForbiddenByPolicy")) << e.what();
    EXPECT_TRUE(contains(e.what(), "application " + app + " in tenant tenant-a")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "set-policy")) << e.hint();

    std::string none = new_app(json::array());
    e = error_of([&] { provider(key_url("kek"), settings(env_secret(none)))->check_key(); });
    EXPECT_TRUE(contains(e.what(), "'get' key permission")) << e.what();
}

TEST_F(Kv, PermissionDeniedByRbacReadsDifferently) {
    std::string app = new_app(json::array({"get"}));
    Error policy = error_of([&] { provider(key_url("kek"), settings(env_secret(app)))->wrap(random_dek()); });
    emu().admin("set-vault", {{"rbac", true}});
    Error rbac = error_of([&] { provider(key_url("kek"), settings(env_secret(app)))->wrap(random_dek()); });
    EXPECT_EQ(rbac.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(rbac.what(), "no Azure role assignment (RBAC) allows it")) << rbac.what();
    EXPECT_TRUE(contains(rbac.what(), "inner code ForbiddenByRbac")) << rbac.what();
    EXPECT_TRUE(contains(rbac.hint(), "Key Vault Crypto Service Encryption User")) << rbac.hint();
    EXPECT_FALSE(contains(policy.what(), "RBAC")) << policy.what();
    EXPECT_FALSE(contains(rbac.what(), "access policy")) << rbac.what();
    EXPECT_NE(policy.hint(), rbac.hint());
}

// ======================================================================
// Sign-in errors
// ======================================================================

TEST_F(Kv, WrongSecret) {
    std::string wrong = "wrong-" + random_hex(12);
    Error e = error_of([&] {
        provider(key_url("kek"), settings(env_secret("app-secret", "tenant-a", wrong), "client-secret"))->check_key();
    });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "invalid client secret")) << e.what();
    EXPECT_TRUE(contains(e.what(), "AADSTS7000215")) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 401")) << e.what();
    EXPECT_TRUE(contains(e.what(), "request id ")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "AZURE_CLIENT_SECRET")) << e.hint();
    EXPECT_FALSE(contains(text_of(e), wrong));
    EXPECT_FALSE(contains(text_of(e), secret()));
}

TEST_F(Kv, UnknownClient) {
    Error e = error_of([&] { provider(key_url("kek"), settings(env_secret("no-such-app"), "client-secret"))->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_TRUE(contains(e.what(), "AADSTS700016")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "AZURE_CLIENT_ID")) << e.hint();
}

// ======================================================================
// Faults and retries
// ======================================================================

TEST_F(Kv, LatencyBeyondTheRequestTimeoutIsRetried) {
    ProviderSettings s = settings(env_secret());
    s.request_timeout_ms = 1000;
    auto p = provider(key_url("kek"), s);
    p->check_key();  // signed in, challenge done
    emu().admin("fault", {{"op", "get"}, {"latency_ms", 2500}, {"count", 1}});
    EXPECT_NO_THROW(p->check_key());
    EXPECT_EQ(log_count("timed out"), 1) << all_logs();
    EXPECT_EQ(log_count("retry 1 of 3"), 1) << all_logs();
}

TEST_F(Kv, ThrottlingHonoursRetryAfter) {
    auto p = provider(key_url("kek"), settings(env_secret()));
    p->check_key();
    emu().admin("fault", {{"op", "wrapkey"}, {"status", 429}, {"retry_after", 2}, {"count", 1}});
    auto t0 = steady_clock::now();
    WrappedDek w = p->wrap(random_dek());
    auto elapsed = std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0).count();
    EXPECT_EQ(log_count("HTTP 429"), 1) << all_logs();
    EXPECT_EQ(log_count("server asked to retry after 2000 ms"), 1) << all_logs();
    EXPECT_EQ(log_count("in 2000 ms"), 1) << all_logs();
    // Sanity bounds only: the wait happened, and nothing hung.
    EXPECT_GE(elapsed, 1500);
    EXPECT_LT(elapsed, 30000);
    EXPECT_EQ(p->unwrap(w).size(), 32u);
}

TEST_F(Kv, ServerErrorsThenSuccess) {
    auto p = provider(key_url("kek"), settings(env_secret()));
    p->check_key();
    emu().admin("fault", {{"op", "get"}, {"status", 500}, {"count", 1}});
    emu().admin("fault", {{"op", "get"}, {"status", 503}, {"count", 1}});
    EXPECT_NO_THROW(p->check_key());
    EXPECT_EQ(log_count("HTTP 500"), 1) << all_logs();
    EXPECT_EQ(log_count("HTTP 503"), 1) << all_logs();
    EXPECT_EQ(log_count("retry 2 of 3"), 1) << all_logs();
    json gets = audit("", "KeyGet");
    int injected = 0;
    for (const auto& r : gets)
        if (r["result"] == "InjectedFault") injected++;
    EXPECT_EQ(injected, 2);
}

TEST_F(Kv, DroppedConnectionThenSuccess) {
    auto p = provider(key_url("kek"), settings(env_secret()));
    WrappedDek w = p->wrap(random_dek());
    // libcurl itself resends once when a reused connection turns out dead;
    // the second drop (on a fresh connection) is retried by the policy.
    emu().admin("fault", {{"op", "unwrapkey"}, {"drop", true}, {"count", 2}});
    EXPECT_EQ(p->unwrap(w).size(), 32u);
    EXPECT_GE(log_count("curl error"), 1) << all_logs();
    int dropped = 0;
    for (const auto& r : audit("", "KeyUnwrap"))
        if (r["result"] == "InjectedFault") dropped++;
    EXPECT_EQ(dropped, 2);
}

TEST_F(Kv, TokenEndpointUnavailableThenSuccess) {
    std::string app = new_app();
    auto p = provider(key_url("kek"), settings(env_secret(app)));
    emu().admin("fault", {{"op", "token"}, {"status", 503}, {"count", 1}});
    EXPECT_NO_THROW(p->check_key());
    EXPECT_EQ(sign_ins(app), 1);
    EXPECT_EQ(log_count("HTTP 503"), 1) << all_logs();
}

TEST_F(Kv, MalformedJsonIsAProtocolError) {
    auto p = provider(key_url("kek"), settings(env_secret()));
    p->check_key();
    emu().admin("fault", {{"op", "get"}, {"malformed", true}, {"count", 1}});
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Protocol) << e.what();
    EXPECT_TRUE(contains(e.what(), "malformed answer from Key Vault")) << e.what();
    EXPECT_TRUE(contains(e.what(), "request id ")) << e.what();

    WrappedDek w = p->wrap(random_dek());
    emu().admin("fault", {{"op", "unwrapkey"}, {"malformed", true}, {"count", 1}});
    EXPECT_EQ(error_of([&] { p->unwrap(w); }).kind(), ErrorKind::Protocol);

    auto fresh = provider(key_url("kek"), settings(env_secret(new_app())));
    emu().admin("fault", {{"op", "token"}, {"malformed", true}, {"count", 1}});
    e = error_of([&] { fresh->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Protocol) << e.what();
}

TEST_F(Kv, RetriesExhaustedWithinTheBudget) {
    ProviderSettings s = settings(env_secret());
    s.retry_total_ms = 2500;
    auto p = provider(key_url("kek"), s);
    p->check_key();
    emu().admin("fault", {{"op", "get"}, {"status", 503}, {"count", 100}});
    auto t0 = steady_clock::now();
    Error e = error_of([&] { p->check_key(); });
    auto elapsed = std::chrono::duration_cast<milliseconds>(steady_clock::now() - t0).count();
    EXPECT_EQ(e.kind(), ErrorKind::Transient) << e.what();
    EXPECT_TRUE(contains(e.what(), "HTTP 503")) << e.what();
    EXPECT_TRUE(contains(e.what(), "code ServiceUnavailable")) << e.what();
    EXPECT_TRUE(contains(e.what(), "attempts")) << e.what();
    EXPECT_TRUE(contains(e.what(), "request id ")) << e.what();
    EXPECT_EQ(log_count("not retrying"), 1) << all_logs();
    EXPECT_LT(elapsed, 2500 + 5000);  // the budget, plus the last request
}

TEST_F(Kv, RetriesExhaustedOnTimeouts) {
    ProviderSettings s = settings(env_secret());
    s.request_timeout_ms = 500;
    s.retry_total_ms = 1500;
    auto p = provider(key_url("kek"), s);
    p->check_key();
    emu().admin("fault", {{"op", "get"}, {"latency_ms", 1500}, {"count", 20}});
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Transient) << e.what();
    EXPECT_TRUE(contains(e.what(), "timed out")) << e.what();
    EXPECT_TRUE(contains(e.what(), "curl error 28")) << e.what();
}

TEST_F(Kv, VaultUnreachable) {
    ProviderSettings s = settings(env_secret());
    s.retry_total_ms = 1000;
    auto p = provider("https://localhost:1/keys/kek", s);
    Error e = error_of([&] { p->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Transient) << e.what();
    EXPECT_TRUE(contains(e.what(), "is unreachable")) << e.what();
    EXPECT_TRUE(contains(e.what(), "curl error 7")) << e.what();
}

TEST_F(Kv, TlsIsAlwaysVerified) {
    ProviderSettings s = settings(env_secret());
    s.ca_file.clear();  // the system store does not know the emulator's CA
    Error e = error_of([&] { provider(key_url("kek"), s)->check_key(); });
    EXPECT_EQ(e.kind(), ErrorKind::Config) << e.what();
    EXPECT_TRUE(contains(e.what(), "could not be verified")) << e.what();
}

// ======================================================================
// What messages contain
// ======================================================================

TEST_F(Kv, RequestIdOfTheFailedRequestIsInTheMessage) {
    std::string app = new_app(json::array({"get"}));
    Error e = error_of([&] { provider(key_url("kek"), settings(env_secret(app)))->wrap(random_dek()); });
    json wraps = audit(app, "KeyWrap");
    ASSERT_EQ(wraps.size(), 1u) << wraps.dump();
    EXPECT_EQ(wraps[0]["status"], 403);
    std::string rid = wraps[0]["requestId"];
    ASSERT_FALSE(rid.empty());
    EXPECT_TRUE(contains(e.what(), "request id " + rid)) << e.what();

    std::string wrong = "bad-" + random_hex(10);
    e = error_of([&] { provider(key_url("kek"), settings(env_secret(app, "tenant-a", wrong)))->check_key(); });
    json auth = audit(app, "Authentication");
    ASSERT_GE(auth.size(), 1u);
    EXPECT_TRUE(contains(e.what(), "request id " + auth.back()["requestId"].get<std::string>())) << e.what();
}

TEST_F(Kv, NoSecretTokenOrKeyMaterialInMessagesOrLogs) {
    std::string app = new_app(json::array({"get", "wrapKey"}));
    auto p = provider(key_url("kek"), settings(env_secret(app)));
    SecureBytes dek = random_dek();
    WrappedDek w = p->wrap(dek);
    std::vector<Error> errs;
    errs.push_back(error_of([&] { p->unwrap(w); }));  // denied: no unwrapKey
    errs.push_back(error_of([&] { provider(key_url(unique("nokey")), settings(env_secret(app)))->check_key(); }));
    emu().admin("fault", {{"op", "wrapkey"}, {"malformed", true}, {"count", 1}});
    errs.push_back(error_of([&] { p->wrap(dek); }));
    errs.push_back(error_of([&] {
        provider(key_url("kek"), settings(env_secret(app, "tenant-a", "wrong-" + secret())))->check_key();
    }));
    ASSERT_EQ(errs.size(), 4u);

    std::vector<std::string> sensitive;
    credential_of(*p).collect_sensitive(sensitive);  // the secret and the token in use
    ASSERT_GE(sensitive.size(), 2u);
    sensitive.push_back(secret());
    sensitive.push_back("wrong-" + secret());
    sensitive.push_back(azure::base64url_encode(dek.data(), dek.size()));
    sensitive.push_back(azure::base64url_encode(w.wrapped.data(), w.wrapped.size()));
    for (const auto& s : sensitive) {
        ASSERT_GE(s.size(), 16u);
        for (const auto& msg : errors_) EXPECT_FALSE(contains(msg, s)) << msg;
        for (const auto& line : logs_) EXPECT_FALSE(contains(line, s)) << line;
        // No token-looking text (a JWT starts with base64url of '{"').
        for (const auto& msg : errors_) EXPECT_FALSE(contains(msg, "eyJ")) << msg;
        for (const auto& line : logs_) EXPECT_FALSE(contains(line, "eyJ")) << line;
    }
}

}  // namespace
