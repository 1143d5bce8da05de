// ClientCertificateCredential's client assertion: RS256 JWT with x5t and
// x5t#S256 headers, checked against a certificate made here with OpenSSL.
#include "azure/client_assertion.h"
#include "azure/encoding.h"
#include "error.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

using namespace cmk;
using namespace cmk::azure;

namespace {

struct Material {
    std::string cert_pem;
    std::string key_pem;
    std::string encrypted_key_pem;
    std::vector<unsigned char> der;
    std::shared_ptr<EVP_PKEY> key;
};

Material make_material(const char* kind = "RSA") {
    Material m;
    EVP_PKEY* k = std::string(kind) == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                             : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    m.key.reset(k, EVP_PKEY_free);
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("cmk test client"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, k, EVP_sha256());
    auto to_string = [](BIO* b) {
        char* p = nullptr;
        long n = BIO_get_mem_data(b, &p);
        std::string s(p, static_cast<size_t>(n));
        BIO_free(b);
        return s;
    };
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    m.cert_pem = to_string(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    m.key_pem = to_string(b);
    b = BIO_new(BIO_s_mem());
    const char pw[] = "pem-password";
    PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), pw, sizeof pw - 1, nullptr, nullptr);
    m.encrypted_key_pem = to_string(b);
    int len = i2d_X509(x, nullptr);
    m.der.resize(static_cast<size_t>(len));
    unsigned char* p = m.der.data();
    i2d_X509(x, &p);
    X509_free(x);
    return m;
}

std::string digest(const std::vector<unsigned char>& der, const EVP_MD* md) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(der.data(), der.size(), out, &n, md, nullptr);
    return base64url_encode(out, n);
}

std::vector<std::string> split(const std::string& s, char c) {
    std::vector<std::string> out(1);
    for (char ch : s) {
        if (ch == c)
            out.emplace_back();
        else
            out.back() += ch;
    }
    return out;
}

nlohmann::json decode_part(const std::string& part) {
    auto b = base64url_decode(part);
    EXPECT_TRUE(b.has_value());
    return nlohmann::json::parse(std::string(b->begin(), b->end()));
}

}  // namespace

TEST(AzureClientAssertion, SignedJwtHasThumbprintsClaimsAndValidSignature) {
    Material m = make_material();
    // Key first, then certificate: order in the file does not matter.
    CertificateSigner s = CertificateSigner::from_pem(m.key_pem + m.cert_pem, "", "test.pem");
    EXPECT_EQ(s.x5t(), digest(m.der, EVP_sha1()));
    EXPECT_EQ(s.x5t_s256(), digest(m.der, EVP_sha256()));

    const std::string aud = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token";
    std::string jwt = s.make_assertion(aud, "client-1", 1700000000);
    auto parts = split(jwt, '.');
    ASSERT_EQ(parts.size(), 3u);
    auto header = decode_part(parts[0]);
    EXPECT_EQ(header["alg"], "RS256");
    EXPECT_EQ(header["typ"], "JWT");
    EXPECT_EQ(header["x5t"], s.x5t());
    EXPECT_EQ(header["x5t#S256"], s.x5t_s256());
    auto claims = decode_part(parts[1]);
    EXPECT_EQ(claims["aud"], aud);
    EXPECT_EQ(claims["iss"], "client-1");
    EXPECT_EQ(claims["sub"], "client-1");
    EXPECT_EQ(claims["nbf"], 1700000000);
    EXPECT_EQ(claims["exp"], 1700000600);
    EXPECT_EQ(claims["jti"].get<std::string>().size(), 36u);
    EXPECT_NE(decode_part(split(s.make_assertion(aud, "client-1", 1700000000), '.')[1])["jti"], claims["jti"]);

    // The signature verifies with the certificate's public key (PKCS#1 v1.5, SHA-256).
    auto sig = base64url_decode(parts[2]);
    ASSERT_TRUE(sig.has_value());
    std::string input = parts[0] + "." + parts[1];
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ASSERT_EQ(EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, m.key.get()), 1);
    EXPECT_EQ(EVP_DigestVerify(ctx, sig->data(), sig->size(), reinterpret_cast<const unsigned char*>(input.data()), input.size()), 1);
    EVP_MD_CTX_free(ctx);
}

TEST(AzureClientAssertion, EncryptedKeyNeedsThePassword) {
    Material m = make_material();
    std::string pem = m.cert_pem + m.encrypted_key_pem;
    EXPECT_NO_THROW(CertificateSigner::from_pem(pem, "pem-password", "enc.pem"));
    try {
        CertificateSigner::from_pem(pem, "", "enc.pem");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Config);
        EXPECT_NE(std::string(e.what()).find("AZURE_CLIENT_CERTIFICATE_PASSWORD"), std::string::npos) << e.what();
    }
    try {
        CertificateSigner::from_pem(pem, "pw-Not-This-One", "enc.pem");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Config);
        EXPECT_EQ(std::string(e.what()).find("pw-Not-This-One"), std::string::npos) << "the password must not be echoed";
    }
}

TEST(AzureClientAssertion, RejectsMissingPartsMismatchAndNonRsa) {
    Material a = make_material(), b = make_material(), ec = make_material("EC");
    auto kind_of = [](const std::string& pem) {
        try {
            CertificateSigner::from_pem(pem, "", "x.pem");
        } catch (const Error& e) {
            return e.kind();
        }
        return ErrorKind::Internal;
    };
    EXPECT_EQ(kind_of(a.key_pem), ErrorKind::Config);              // no certificate
    EXPECT_EQ(kind_of(a.cert_pem), ErrorKind::Config);             // no key
    EXPECT_EQ(kind_of(a.cert_pem + b.key_pem), ErrorKind::Config);  // key of another certificate
    EXPECT_EQ(kind_of(ec.cert_pem + ec.key_pem), ErrorKind::Config);
    try {
        CertificateSigner::from_pem_file("/nonexistent/client.pem", "");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Config);
        EXPECT_NE(std::string(e.what()).find("AZURE_CLIENT_CERTIFICATE_PATH"), std::string::npos);
    }
}
