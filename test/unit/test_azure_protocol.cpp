// Pure parts of the Azure Key Vault provider (no emulator, no network beyond
// a refused loopback connection): base64url, the challenge parser and its
// domain check, the retry delays, token parsing and caching, tenant
// resolution, error mapping of Entra ID and Key Vault answers, key checks,
// redaction, and the HTTP client's refusals.
#include "azure/challenge.h"
#include "azure/credentials.h"
#include "azure/encoding.h"
#include "azure/key_bundle.h"
#include "azure/key_usability.h"
#include "azure/key_vault_error.h"
#include "azure/key_vault_key_provider.h"
#include "azure/redaction.h"
#include "azure/pipeline.h"
#include "azure/token_credential.h"
#include "error.h"
#include "http/http_client.h"
#include "key_url.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "secure_memory.h"

#include <chrono>
#include <string>

using namespace cmk;
using namespace cmk::azure;

namespace {

std::string str(const SecureBytes& b) { return std::string(b.begin(), b.end()); }

template <typename F>
Error catch_error(F f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "no cmk::Error thrown";
    return Error(ErrorKind::Internal, "none");
}

HttpResponse response(long status, const std::string& body, const std::string& request_id = "rid-123") {
    HttpResponse r;
    r.status = status;
    r.body = body;
    if (!request_id.empty()) r.headers.add("x-ms-request-id", request_id);
    return r;
}

std::string all_text(const Error& e) { return std::string(e.what()) + "\n" + e.detail() + "\n" + e.hint(); }

}  // namespace

// ---- encodings ----

TEST(AzureEncoding, Base64UrlRfc4648Vectors) {
    // RFC 4648 section 10 vectors, in the URL alphabet without padding.
    EXPECT_EQ(base64url_encode(""), "");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_encode("fo"), "Zm8");
    EXPECT_EQ(base64url_encode("foo"), "Zm9v");
    EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
    EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
    EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
    const uint8_t url_chars[] = {0xfb, 0xff, 0xbf};
    EXPECT_EQ(base64url_encode(url_chars, 3), "-_-_");
}

TEST(AzureEncoding, Base64UrlRoundTripAndRejects) {
    for (size_t n = 0; n < 70; n++) {
        std::string s;
        for (size_t i = 0; i < n; i++) s += static_cast<char>((i * 37 + n) & 0xff);
        auto d = base64url_decode(base64url_encode(s));
        ASSERT_TRUE(d.has_value());
        EXPECT_EQ(str(*d), s);
    }
    EXPECT_EQ(str(*base64url_decode("Zm9vYg==")), "foob");  // padding tolerated
    EXPECT_FALSE(base64url_decode("Zm9v!").has_value());
    EXPECT_FALSE(base64url_decode("Z").has_value());     // impossible length
    EXPECT_FALSE(base64url_decode("Zh").has_value());    // non-zero trailing bits
    EXPECT_FALSE(base64url_decode("Zg===").has_value());
}

TEST(AzureEncoding, UrlEncodeKeepsOnlyUnreserved) {
    EXPECT_EQ(url_encode("https://vault.azure.net/.default"), "https%3A%2F%2Fvault.azure.net%2F.default");
    EXPECT_EQ(url_encode("a b+c&d=e~_-."), "a%20b%2Bc%26d%3De~_-.");
}

TEST(AzureEncoding, UuidAndTime) {
    std::string u = random_uuid();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '4');
    EXPECT_NE(u, random_uuid());
    EXPECT_EQ(format_unix_time(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_unix_time(1700000000), "2023-11-14T22:13:20Z");
}

// ---- challenge ----

TEST(AzureChallenge, ParsesKeyVaultChallenge) {
    auto ch = parse_key_vault_challenge(
        "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", "
        "resource=\"https://vault.azure.net\"",
        "myvault.vault.azure.net");
    EXPECT_EQ(ch.tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
    EXPECT_EQ(ch.scope, "https://vault.azure.net/.default");
    EXPECT_EQ(ch.resource_host, "vault.azure.net");
}

TEST(AzureChallenge, AuthorizationUriAndScopeVariants) {
    auto ch = parse_key_vault_challenge(
        "Bearer authorization_uri=\"https://login.windows.net/tenant-x/\", scope=\"https://managedhsm.azure.net/.default\"",
        "myhsm.managedhsm.azure.net");
    EXPECT_EQ(ch.tenant, "tenant-x");
    EXPECT_EQ(ch.scope, "https://managedhsm.azure.net/.default");
    // resource with a trailing slash; several challenges; unquoted values; case of names.
    ch = parse_key_vault_challenge(
        "Basic realm=\"x\", BEARER Authorization=https://login.microsoftonline.com/t1, Resource=\"https://vault.azure.net/\"",
        "v.vault.azure.net:443");
    EXPECT_EQ(ch.tenant, "t1");
    EXPECT_EQ(ch.scope, "https://vault.azure.net/.default");
}

TEST(AzureChallenge, VaultNameWithPortMatchesItsDomain) {
    auto ch = parse_key_vault_challenge(
        "Bearer authorization=\"https://login.microsoftonline.com/tenant-a\", resource=\"https://vault.azure.net\"",
        "cmk-emulator.vault.azure.net:4443");
    EXPECT_EQ(ch.tenant, "tenant-a");
    EXPECT_EQ(ch.scope, "https://vault.azure.net/.default");
}

TEST(AzureChallenge, AResourceNamingTheVaultHostItselfIsRefused) {
    // The SDKs require a proper subdomain: https://localhost is not a domain
    // that localhost lies within.
    Error e = catch_error([] {
        parse_key_vault_challenge("Bearer authorization=\"https://localhost:4443/tenant-a\", resource=\"https://localhost\"",
                                  "localhost:4443");
    });
    EXPECT_EQ(e.kind(), ErrorKind::Config) << e.what();
}

TEST(AzureChallenge, RefusesResourceOutsideVaultDomain) {
    const std::string header = "Bearer authorization=\"https://login.microsoftonline.com/t\", resource=\"https://vault.azure.net\"";
    Error e = catch_error([&] { parse_key_vault_challenge(header, "evil.example.com"); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("not the vault's domain"), std::string::npos) << e.what();
    // Suffix without a label boundary is not a match.
    e = catch_error([&] { parse_key_vault_challenge(header, "notvault.azure.net.evil"); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    e = catch_error([&] { parse_key_vault_challenge(header, "xvault.azure.net"); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    e = catch_error([&] {
        parse_key_vault_challenge("Bearer authorization=\"https://h/t\", resource=\"https://localhost\"", "127.0.0.1:8443");
    });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
}

TEST(AzureChallenge, MalformedChallenges) {
    EXPECT_EQ(catch_error([] { parse_key_vault_challenge("Basic realm=\"x\"", "v.vault.azure.net"); }).kind(),
              ErrorKind::Protocol);
    EXPECT_EQ(catch_error([] {
                  parse_key_vault_challenge("Bearer authorization=\"https://login/t\"", "v.vault.azure.net");
              }).kind(),
              ErrorKind::Protocol);
    EXPECT_EQ(catch_error([] {
                  parse_key_vault_challenge("Bearer resource=\"https://vault.azure.net\"", "v.vault.azure.net");
              }).kind(),
              ErrorKind::Protocol);
    EXPECT_EQ(catch_error([] {
                  parse_key_vault_challenge("Bearer authorization=\"https://login.microsoftonline.com/\", resource=\"https://vault.azure.net\"",
                                            "v.vault.azure.net");
              }).kind(),
              ErrorKind::Protocol);
}

TEST(AzureChallenge, DomainBoundary) {
    EXPECT_TRUE(host_within_domain("a.vault.azure.net", "vault.azure.net"));
    EXPECT_FALSE(host_within_domain("vault.azure.net", "vault.azure.net"));
    EXPECT_TRUE(host_within_domain("A.Vault.Azure.NET:443", "vault.azure.net"));
    EXPECT_FALSE(host_within_domain("localhost:8443", "localhost"));
    EXPECT_FALSE(host_within_domain("avault.azure.net", "vault.azure.net"));
    EXPECT_FALSE(host_within_domain("vault.azure.net.evil.com", "vault.azure.net"));
    EXPECT_FALSE(host_within_domain("net", "vault.azure.net"));
    EXPECT_FALSE(host_within_domain("a.vault.azure.net", ""));
}

TEST(AzureChallenge, ParserKeepsQuotedCommas) {
    auto cs = parse_www_authenticate("Bearer error=\"invalid_token\", error_description=\"a, b \\\"c\\\"\", realm=r");
    ASSERT_EQ(cs.size(), 1u);
    EXPECT_EQ(cs[0].params["error_description"], "a, b \"c\"");
    EXPECT_EQ(cs[0].params["realm"], "r");
    EXPECT_EQ(tenant_from_authority("https://login.microsoftonline.com/common/oauth2"), "common");
    EXPECT_EQ(tenant_from_authority("not a url"), "");
}

// ---- retry policy ----

TEST(AzureRetry, ExponentialDelayMatchesAzureCoreDefaults) {
    RetryOptions o;
    EXPECT_EQ(o.max_retries, 3);
    EXPECT_EQ(exponential_delay(o, 1, 1.0).count(), 800);
    EXPECT_EQ(exponential_delay(o, 2, 1.0).count(), 1600);
    EXPECT_EQ(exponential_delay(o, 3, 1.0).count(), 3200);
    EXPECT_EQ(exponential_delay(o, 1, 0.8).count(), 640);
    EXPECT_EQ(exponential_delay(o, 1, 1.3).count(), 1040);
    EXPECT_EQ(exponential_delay(o, 40, 1.0).count(), 60000);  // capped by MaxRetryDelay
    for (int i = 0; i < 200; i++) {  // random jitter stays in [0.8, 1.3]
        auto d = exponential_delay(o, 2).count();
        EXPECT_GE(d, 1280);
        EXPECT_LE(d, 2080);
    }
}

TEST(AzureRetry, RetriableStatusCodes) {
    RetryOptions o;
    for (long s : {408, 429, 500, 502, 503, 504}) EXPECT_TRUE(retriable_status(o, s)) << s;
    for (long s : {200, 400, 401, 403, 404, 409, 501, 505}) EXPECT_FALSE(retriable_status(o, s)) << s;
}

TEST(AzureRetry, RetryAfterHeaders) {
    HttpHeaders h;
    EXPECT_FALSE(retry_after_delay(h, 0).has_value());
    h.add("Retry-After", "7");
    EXPECT_EQ(retry_after_delay(h, 0)->count(), 7000);
    h.add("x-ms-retry-after-ms", "250");
    EXPECT_EQ(retry_after_delay(h, 0)->count(), 250);  // milliseconds headers first
    h.add("Retry-After-Ms", "120");
    EXPECT_EQ(retry_after_delay(h, 0)->count(), 120);

    HttpHeaders date;
    date.add("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT");
    EXPECT_EQ(retry_after_delay(date, 1445412470)->count(), 10000);  // 10 s before that date
    HttpHeaders junk;
    junk.add("Retry-After", "soon");
    EXPECT_FALSE(retry_after_delay(junk, 0).has_value());
}

TEST(AzureRetry, BudgetStopsBeforeExceeding) {
    Budget b;
    b.total = std::chrono::milliseconds(1000);
    EXPECT_TRUE(b.allows_wait(std::chrono::milliseconds(500)));
    EXPECT_FALSE(b.allows_wait(std::chrono::milliseconds(1500)));
}

TEST(AzureRetry, TransportErrorIsTransientAndBounded) {
    ProviderSettings s;
    s.retry_total_ms = 0;  // no wait fits: a single attempt
    s.request_timeout_ms = 2000;
    std::vector<std::string> log;
    s.log = [&](const std::string& l) { log.push_back(l); };
    Pipeline p(s);
    HttpRequest req;
    req.url = "https://127.0.0.1:1/keys/x";  // nothing listens on port 1
    auto t0 = std::chrono::steady_clock::now();
    Error e = catch_error([&] { p.send(req, p.new_budget()); });
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
    EXPECT_NE(std::string(e.what()).find("curl error"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1 attempt"), std::string::npos) << e.what();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    ASSERT_EQ(log.size(), 1u);
    EXPECT_NE(log[0].find("not retrying"), std::string::npos) << log[0];
}

// ---- HTTP client ----

TEST(AzureHttp, HeadersAreCaseInsensitive) {
    HttpHeaders h;
    h.add("WWW-Authenticate", "Bearer a=1");
    h.add("www-authenticate", "Basic");
    EXPECT_EQ(*h.get("Www-Authenticate"), "Bearer a=1, Basic");
    h.set("WWW-AUTHENTICATE", "x");
    EXPECT_EQ(*h.get("www-authenticate"), "x");
    EXPECT_FALSE(h.get("x-ms-request-id").has_value());
}

TEST(AzureHttp, PlainHttpOnlyForLoopbackAndImds) {
    EXPECT_TRUE(plain_http_allowed("127.0.0.1"));
    EXPECT_TRUE(plain_http_allowed("LOCALHOST"));
    EXPECT_TRUE(plain_http_allowed("169.254.169.254"));
    EXPECT_FALSE(plain_http_allowed("myvault.vault.azure.net"));
    HttpClient c;
    HttpRequest r;
    r.url = "http://myvault.vault.azure.net/keys/k";
    Error e = catch_error([&] { c.send(r); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    r.url = "ftp://localhost/x";
    EXPECT_EQ(catch_error([&] { c.send(r); }).kind(), ErrorKind::Config);
}

TEST(AzureHttp, SplitUrl) {
    auto p = split_url("https://Vault.Azure.NET:8443/keys/a?api-version=7.4");
    EXPECT_EQ(p.scheme, "https");
    EXPECT_EQ(p.host, "vault.azure.net");
    EXPECT_EQ(p.port, "8443");
    EXPECT_EQ(p.path_and_query, "/keys/a?api-version=7.4");
    p = split_url("http://[::1]:80/x");
    EXPECT_EQ(p.host, "::1");
    EXPECT_EQ(url_for_messages("https://h/p?secret=1"), "https://h/p");
}

// ---- tokens ----

TEST(AzureToken, ParsesEntraImdsAndAppServiceAnswers) {
    auto now = SystemClock::now();
    auto t = parse_token_response(R"({"token_type":"Bearer","expires_in":3599,"access_token":"tok1"})", now);
    EXPECT_EQ(t.token, "tok1");
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t.expires_on - now).count(), 3599);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t.expires_on - t.refresh_after).count(), 300);
    t = parse_token_response(R"({"access_token":"tok2","expires_in":"3600","expires_on":"1"})", now);  // IMDS: strings
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t.expires_on - now).count(), 3600);
    int64_t on = static_cast<int64_t>(SystemClock::to_time_t(now)) + 1200;
    t = parse_token_response("{\"access_token\":\"tok3\",\"expires_on\":\"" + std::to_string(on) + "\"}", now);  // App Service
    auto left = std::chrono::duration_cast<std::chrono::seconds>(t.expires_on - now).count();
    EXPECT_GE(left, 1199);
    EXPECT_LE(left, 1200);
}

TEST(AzureToken, MalformedAnswersAreProtocolErrorsWithoutTheBody) {
    auto now = SystemClock::now();
    for (const char* body : {"{\"access_token\": \"secret-tok", "[]", "{\"expires_in\": 10}",
                             "{\"access_token\":\"secret-token-value\"}",
                             "{\"access_token\":\"secret-token-value\",\"expires_in\":\"soon\"}"}) {
        Error e = catch_error([&] { parse_token_response(body, now); });
        EXPECT_EQ(e.kind(), ErrorKind::Protocol) << body;
        EXPECT_EQ(all_text(e).find("secret-tok"), std::string::npos) << all_text(e);
    }
}

TEST(AzureToken, ShortLivedTokensRefreshAtHalfLife) {
    auto now = SystemClock::now();
    auto t = make_access_token("x", std::chrono::seconds(4), now);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(t.refresh_after - now).count(), 2000);
    t = make_access_token("x", std::chrono::seconds(3600), now);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t.refresh_after - now).count(), 3300);
}

TEST(AzureToken, CacheFetchesOncePerKeyAndOnForce) {
    TokenCache cache;
    int fetches = 0;
    auto fetch = [&] {
        fetches++;
        return make_access_token("t" + std::to_string(fetches), std::chrono::seconds(3600), SystemClock::now());
    };
    bool fetched = false;
    EXPECT_EQ(cache.get("a", false, fetch, &fetched).token, "t1");
    EXPECT_TRUE(fetched);
    EXPECT_EQ(cache.get("a", false, fetch, &fetched).token, "t1");
    EXPECT_FALSE(fetched);
    EXPECT_EQ(cache.get("b", false, fetch).token, "t2");
    EXPECT_EQ(cache.get("a", true, fetch).token, "t3");
    auto expired = [&] {
        fetches++;
        return make_access_token("e", std::chrono::seconds(0), SystemClock::now());
    };
    cache.get("c", false, expired);
    cache.get("c", false, expired);
    EXPECT_EQ(fetches, 5);
}

TEST(AzureToken, TenantResolution) {
    EXPECT_EQ(resolve_tenant("t1", "", {}, "X"), "t1");
    EXPECT_EQ(resolve_tenant("t1", "T1", {}, "X"), "t1");
    EXPECT_EQ(resolve_tenant("t1", "t2", {"t3", "t2"}, "X"), "t2");
    EXPECT_EQ(resolve_tenant("t1", "t2", {"*"}, "X"), "t2");
    Error e = catch_error([] { resolve_tenant("t1", "t2", {}, "ClientSecretCredential"); });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    EXPECT_NE(std::string(e.what()).find("tenant t2"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("tenant t1"), std::string::npos);
    EXPECT_EQ(split_tenant_list(" a; b,c ;"), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(AzureToken, EntraErrorsNameTheAadstsCodeAndAdvice) {
    std::string body =
        R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[7000215],"trace_id":"trace-1"})";
    Error e = catch_error([&] {
        throw_token_error(response(401, body), 1, "ClientSecretCredential", "application app-1 in tenant t", "https://login/t/oauth2/v2.0/token");
    });
    EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable);
    std::string m = e.what();
    EXPECT_NE(m.find("invalid client secret"), std::string::npos) << m;
    EXPECT_NE(m.find("AADSTS7000215"), std::string::npos) << m;
    EXPECT_NE(m.find("HTTP 401"), std::string::npos) << m;
    EXPECT_NE(m.find("request id rid-123"), std::string::npos) << m;
    EXPECT_NE(e.hint().find("AZURE_CLIENT_SECRET"), std::string::npos);
    EXPECT_EQ(e.detail().find("Trace ID"), std::string::npos) << e.detail();  // first line only

    e = catch_error([&] {
        throw_token_error(response(400, R"({"error":"unauthorized_client","error_description":"AADSTS700016: Application not found","error_codes":[700016]})", ""),
                          1, "C", "w", "https://e");
    });
    EXPECT_NE(std::string(e.what()).find("not found in the tenant"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("request id none"), std::string::npos) << e.what();

    e = catch_error([&] {
        throw_token_error(response(503, R"({"error":"temporarily_unavailable","error_description":"AADSTS90006: busy"})"), 4,
                          "C", "w", "https://e");
    });
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
    EXPECT_NE(std::string(e.what()).find("after 4 attempts"), std::string::npos) << e.what();

    e = catch_error([&] { throw_token_error(response(400, "<html>"), 1, "C", "w", "https://e"); });
    EXPECT_EQ(e.kind(), ErrorKind::Protocol);
}

TEST(AzureToken, AuthorityHost) {
    EXPECT_EQ(authority_host_from(""), "https://login.microsoftonline.com");
    EXPECT_EQ(authority_host_from("https://login.microsoftonline.us/"), "https://login.microsoftonline.us");
    EXPECT_EQ(catch_error([] { authority_host_from("http://login.example.com"); }).kind(), ErrorKind::Config);
    EXPECT_EQ(token_endpoint("https://h", "t 1"), "https://h/t%201/oauth2/v2.0/token");
}

// ---- Key Vault answers ----

namespace {
// An RSA modulus of `bits` bits (top bit set), base64url.
std::string modulus(int bits) {
    std::string n(static_cast<size_t>((bits + 7) / 8), '\x5a');
    n[0] = static_cast<char>(0x80 >> ((8 - bits % 8) % 8));
    return base64url_encode(n);
}

std::string bundle(const std::string& kty, int bits, const std::string& ops, const std::string& attrs) {
    return R"({"key":{"kid":"https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef","kty":")" + kty +
           R"(","key_ops":)" + ops + R"(,"n":")" + modulus(bits) + R"(","e":"AQAB"},"attributes":)" + attrs + "}";
}
}  // namespace

TEST(AzureKeyVault, ParsesKeyBundle) {
    KeyProperties p = parse_key_bundle(
        bundle("RSA-HSM", 3072, R"(["wrapKey","unwrapKey"])", R"({"enabled":true,"nbf":100,"exp":2000000000,"created":1})"),
        "https://v.vault.azure.net/keys/k");
    EXPECT_EQ(p.version, "0123456789abcdef0123456789abcdef");
    EXPECT_EQ(p.key_type, "RSA-HSM");
    EXPECT_EQ(p.key_size_bits, 3072);
    EXPECT_TRUE(p.enabled);
    EXPECT_EQ(*p.not_before, 100);
    EXPECT_EQ(*p.expires, 2000000000);
    EXPECT_NO_THROW(check_key_usable(p, 1000));
    // A leading zero byte in n does not count.
    std::string z = bundle("RSA", 2048, R"(["wrapKey","unwrapKey"])", "{}");
    EXPECT_EQ(parse_key_bundle(z, "b").key_size_bits, 2048);
    EXPECT_EQ(catch_error([] { parse_key_bundle("{\"key\":{}}", "b"); }).kind(), ErrorKind::Protocol);
    EXPECT_EQ(catch_error([] { parse_key_bundle("{\"key\":", "b"); }).kind(), ErrorKind::Protocol);
    // nbf/exp that are no time (fuzzing found 1.9e52, which was cast to int64_t: undefined behaviour).
    for (const char* attrs : {R"({"exp":1.9e52})", R"({"nbf":-1e300})", R"({"exp":18446744073709551615})",
                              R"({"exp":-9223372036854775808})"}) {
        std::string b = bundle("RSA", 2048, R"(["wrapKey","unwrapKey"])", attrs);
        Error e = catch_error([&] { parse_key_bundle(b, "b"); });
        EXPECT_EQ(e.kind(), ErrorKind::Protocol) << attrs;
        EXPECT_NE(std::string(e.what()).find("is not a time in unix seconds"), std::string::npos) << attrs;
    }
    EXPECT_EQ(*parse_key_bundle(bundle("RSA", 2048, R"(["wrapKey"])", R"({"exp":2000000000.5})"), "b").expires, 2000000000);
}

TEST(AzureKeyVault, EveryKeyConditionIsNamed) {
    const std::string ok_ops = R"(["encrypt","wrapKey","unwrapKey"])";
    struct Case {
        std::string body;
        const char* expect;
    } cases[] = {
        {bundle("EC", 2048, ok_ops, "{}"), "of type EC"},
        {bundle("RSA", 1024, ok_ops, "{}"), "has 1024 bits"},
        {bundle("RSA", 2047, ok_ops, "{}"), "has 2047 bits"},
        {bundle("RSA", 2048, ok_ops, R"({"enabled":false})"), "is disabled"},
        {bundle("RSA", 2048, ok_ops, R"({"nbf":5000})"), "is not valid before 1970-01-01T01:23:20Z"},
        {bundle("RSA", 2048, ok_ops, R"({"exp":999})"), "expired at 1970-01-01T00:16:39Z"},
        {bundle("RSA", 2048, R"(["encrypt","decrypt","unwrapKey"])", "{}"), "does not permit wrapKey (its key_ops: encrypt, decrypt, unwrapKey)"},
        {bundle("RSA", 2048, R"(["wrapKey"])", "{}"), "does not permit unwrapKey"},
    };
    for (const auto& c : cases) {
        KeyProperties p = parse_key_bundle(c.body, "https://v.vault.azure.net/keys/k");
        Error e = catch_error([&] { check_key_usable(p, 1000); });
        EXPECT_EQ(e.kind(), ErrorKind::KeyUnavailable) << c.expect;
        EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef"),
                  std::string::npos);
    }
}

TEST(AzureKeyVault, ErrorMapping) {
    struct Case {
        long status;
        std::string body;
        KeyVaultOp op;
        ErrorKind kind;
        const char* expect;
    } cases[] = {
        {403, R"({"error":{"code":"Forbidden","message":"no keys get permission","innererror":{"code":"ForbiddenByPolicy"}}})",
         KeyVaultOp::Get, ErrorKind::KeyUnavailable, "access policy does not grant the 'get' key permission"},
        {403, R"({"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}})",
         KeyVaultOp::WrapKey, ErrorKind::KeyUnavailable, "no Azure role assignment (RBAC) allows it"},
        {403, R"({"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}})",
         KeyVaultOp::Get, ErrorKind::KeyUnavailable, "is disabled"},
        {403, R"({"error":{"code":"Forbidden","message":"Operation wrapKey is not allowed on an expired key."}})",
         KeyVaultOp::WrapKey, ErrorKind::KeyUnavailable, "has expired"},
        {403, R"({"error":{"code":"Forbidden","message":"x","innererror":{"code":"KeyOperationForbidden"}}})",
         KeyVaultOp::UnwrapKey, ErrorKind::KeyUnavailable, "does not permit unwrapKey"},
        {404, R"({"error":{"code":"KeyNotFound","message":"A key with (name/id) k was not found"}})", KeyVaultOp::Get,
         ErrorKind::KeyUnavailable, "was not found in the vault"},
        {400, R"({"error":{"code":"BadParameter","message":"Unwrap failed"}})", KeyVaultOp::UnwrapKey, ErrorKind::WrongKey,
         "not wrapped by this key version"},
        {400, R"({"error":{"code":"BadParameter","message":"bad"}})", KeyVaultOp::WrapKey, ErrorKind::Config, "as invalid"},
        {429, R"({"error":{"code":"Throttled","message":"slow down"}})", KeyVaultOp::WrapKey, ErrorKind::Transient, "throttling"},
        {503, "not json", KeyVaultOp::Get, ErrorKind::Transient, "unavailable"},
        {418, "not json", KeyVaultOp::Get, ErrorKind::Protocol, "body is not JSON"},
    };
    for (const auto& c : cases) {
        Error e = catch_error([&] {
            throw_key_vault_error(response(c.status, c.body, "req-42"), 1, c.op, "https://v/keys/k/1", "application a in tenant t");
        });
        EXPECT_EQ(e.kind(), c.kind) << e.what();
        EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("HTTP " + std::to_string(c.status)), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("request id req-42"), std::string::npos) << e.what();
    }
    Error e = catch_error([&] {
        throw_key_vault_error(response(403, R"({"error":{"code":"Forbidden","message":"m","innererror":{"code":"ForbiddenByPolicy"}}})"), 1,
                              KeyVaultOp::Get, "k", "w");
    });
    EXPECT_NE(std::string(e.what()).find("code Forbidden, inner code ForbiddenByPolicy"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("set-policy"), std::string::npos);
}

TEST(AzureKeyVault, Redaction) {
    EXPECT_EQ(redact("a secret-value-1 b secret-value-1", {"secret-value-1", "short"}), "a [REDACTED] b [REDACTED]");
    EXPECT_EQ(redact("short stays", {"short"}), "short stays");
}

// ---- provider and credential setup (no network) ----

TEST(AzureProviderSetup, ConfigErrors) {
    ProviderSettings s;
    s.environment = {{"AZURE_TENANT_ID", "t"}};
    s.auth = "client-secret";
    KeyUrl url = parse_key_url("https://v.vault.azure.net/keys/k");
    Error e = catch_error([&] { make_key_provider(url, s); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"), std::string::npos) << e.what();

    s.auth = "magic";
    EXPECT_EQ(catch_error([&] { make_key_provider(url, s); }).kind(), ErrorKind::Config);

    s.auth = "client-certificate";
    s.environment = {{"AZURE_TENANT_ID", "t"}, {"AZURE_CLIENT_ID", "c"}, {"AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent/c.pem"}};
    e = catch_error([&] { make_key_provider(url, s); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/c.pem"), std::string::npos) << e.what();

    s.auth = "default";
    s.wrap_algorithm = "RSA1_5";
    EXPECT_EQ(catch_error([&] { make_key_provider(url, s); }).kind(), ErrorKind::Config);
    s.wrap_algorithm = "RSA-OAEP";
    s.environment = {{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "https://127.0.0.1:1"}};
    auto p = make_key_provider(url, s);
    EXPECT_EQ(p->name(), "azure-key-vault");

    KeyUrl plain = parse_key_url("http://v.vault.azure.net/keys/k");
    EXPECT_EQ(catch_error([&] { make_key_provider(plain, s); }).kind(), ErrorKind::Config);
    EXPECT_NO_THROW(make_key_provider(parse_key_url("http://127.0.0.1:9/keys/k"), s));
}

TEST(AzureProviderSetup, DefaultChainWithNothingConfiguredIsConfigError) {
    ProviderSettings s;
    s.environment = {{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "https://127.0.0.1:1"}};  // nothing listens there
    s.retry_total_ms = 0;
    auto cred = make_credential("default", AzureEnvironment(s.environment), std::make_shared<Pipeline>(s));
    TokenRequestContext ctx;
    ctx.scopes = {"https://vault.azure.net/.default"};
    Error e = catch_error([&] { cred->get_token(ctx); });
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    std::string m = e.what();
    EXPECT_NE(m.find("EnvironmentCredential"), std::string::npos) << m;
    EXPECT_NE(m.find("WorkloadIdentityCredential"), std::string::npos) << m;
    EXPECT_NE(m.find("ManagedIdentityCredential"), std::string::npos) << m;
}

TEST(AzureKeyVault, ParsesRecoveryLevel) {
    KeyProperties p = parse_key_bundle(bundle("RSA", 2048, R"(["wrapKey","unwrapKey"])",
                                              R"({"enabled":true,"recoveryLevel":"Recoverable+Purgeable","recoverableDays":90})"),
                                       "https://v.vault.azure.net/keys/k");
    ASSERT_TRUE(p.recovery_level.has_value());
    EXPECT_EQ(*p.recovery_level, "Recoverable+Purgeable");
    EXPECT_EQ(*p.recoverable_days, 90);
    KeyProperties none = parse_key_bundle(bundle("RSA", 2048, R"(["wrapKey"])", "{}"), "b");
    EXPECT_FALSE(none.recovery_level.has_value());
    EXPECT_EQ(catch_error([] { parse_key_bundle(bundle("RSA", 2048, "[]", R"({"recoveryLevel":7})"), "b"); }).kind(),
              ErrorKind::Protocol);
}

// The unwrap answer's value (the DEK) is taken out of the body without a
// JSON parser's heap buffers; the parser sees a placeholder of its length.
TEST(AzureUnwrapAnswer, ValueIsTakenOutOfTheBodyAndReplacedByAPlaceholder) {
    cmk::SecureString redacted;
    cmk::SecureString body = R"( { "kid" : "https://v.vault.azure.net/keys/k/1", "extra": {"a": [1, "x\"}", {}]}, "value":"QUJDRA" } )";
    auto v = take_string_member(body, "value", &redacted);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(std::string(v->data(), v->size()), "QUJDRA");
    EXPECT_TRUE(cmk::secure_memory::contains(v->data()) || v->size() < 16);  // short strings may live inline
    std::string r(redacted.data(), redacted.size());
    EXPECT_EQ(r.find("QUJDRA"), std::string::npos);
    EXPECT_NE(r.find("\"value\":\"AAAAAA\""), std::string::npos) << r;
    auto j = nlohmann::json::parse(r);
    EXPECT_EQ(j["value"], "AAAAAA");
    EXPECT_EQ(j["kid"], "https://v.vault.azure.net/keys/k/1");

    auto none = [](const char* text) {
        cmk::SecureString b = text, red;
        return !take_string_member(b, "value", &red).has_value();
    };
    EXPECT_TRUE(none(R"({"kid":"x"})"));                         // no value
    EXPECT_TRUE(none(R"({"value":12})"));                        // not a string
    EXPECT_TRUE(none(R"({"value":"QU\u004a"})"));                // an escape
    EXPECT_TRUE(none(R"({"value":"QUJD","value":"QUJD"})"));     // twice
    EXPECT_TRUE(none(R"(["value","QUJD"])"));                    // not an object
    EXPECT_TRUE(none(R"({"value":"QUJD")"));                     // unterminated
    EXPECT_TRUE(none(R"({"kid":"a" "value":"QUJD"})"));          // not JSON
    cmk::SecureString b = R"({"values":"x","value":"QUJD"})", red;
    auto only = take_string_member(b, "value", &red);
    ASSERT_TRUE(only.has_value());
    EXPECT_EQ(std::string(only->data(), only->size()), "QUJD");  // "values" is another member
}
