// The certificate's signed JWT client assertion (client_assertion.h).
#include "azure/client_assertion.h"

#include "azure/encoding.h"
#include "error.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

namespace cmk::azure {

namespace {

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::string digest_b64url(const std::vector<unsigned char>& der, const EVP_MD* md) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(der.data(), der.size(), out, &len, md, nullptr) != 1) throw_openssl_error("cannot hash the certificate");
    return base64url_encode(out, len);
}

int password_cb(char* buf, int size, int, void* userdata) {
    const std::string* pw = static_cast<const std::string*>(userdata);
    if (!pw || pw->empty() || static_cast<int>(pw->size()) > size) return 0;
    std::memcpy(buf, pw->data(), pw->size());
    return static_cast<int>(pw->size());
}

}  // namespace

CertificateSigner CertificateSigner::from_pem_file(const std::string& path, const std::string& password) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        int e = errno;
        throw Error(ErrorKind::Config, "cannot read the client certificate \"" + path + "\" (AZURE_CLIENT_CERTIFICATE_PATH): " +
                                           std::strerror(e));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string pem = ss.str();
    CertificateSigner s = from_pem(pem, password, path);
    wipe(pem);
    return s;
}

CertificateSigner CertificateSigner::from_pem(const std::string& pem, const std::string& password, const std::string& origin) {
    const std::string hint =
        "AZURE_CLIENT_CERTIFICATE_PATH must name a PEM file holding the certificate and its RSA private key "
        "(encrypted keys need AZURE_CLIENT_CERTIFICATE_PASSWORD).";
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) throw_openssl_error("cannot read the client certificate");
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        ERR_clear_error();
        throw Error(ErrorKind::Config, "client certificate file \"" + origin + "\" holds no PEM certificate", {}, hint);
    }
    std::unique_ptr<BIO, BioFree> kbio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!kbio) throw_openssl_error("cannot read the client certificate");
    EVP_PKEY* raw = PEM_read_bio_PrivateKey(kbio.get(), nullptr, password_cb, const_cast<std::string*>(&password));
    if (!raw) {
        ERR_clear_error();
        throw Error(ErrorKind::Config,
                    "client certificate file \"" + origin + "\" holds no readable private key" +
                        (password.empty() ? " (if it is encrypted, set AZURE_CLIENT_CERTIFICATE_PASSWORD)"
                                          : " (wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?)"),
                    {}, hint);
    }
    CertificateSigner s;
    s.key_.reset(raw, EVP_PKEY_free);
    if (EVP_PKEY_get_base_id(raw) != EVP_PKEY_RSA)
        throw Error(ErrorKind::Config, "the private key in \"" + origin + "\" is not an RSA key (RS256 client assertions need RSA)",
                    {}, hint);
    if (X509_check_private_key(cert.get(), raw) != 1) {
        ERR_clear_error();
        throw Error(ErrorKind::Config, "the private key in \"" + origin + "\" does not belong to its certificate", {}, hint);
    }
    int len = i2d_X509(cert.get(), nullptr);
    if (len <= 0) throw_openssl_error("cannot encode the client certificate");
    std::vector<unsigned char> der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    i2d_X509(cert.get(), &p);
    s.x5t_ = digest_b64url(der, EVP_sha1());
    s.x5t_s256_ = digest_b64url(der, EVP_sha256());
    return s;
}

std::string CertificateSigner::header_json() const {
    nlohmann::json h = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5t", x5t_}, {"x5t#S256", x5t_s256_}};
    return h.dump();
}

std::string CertificateSigner::make_assertion(const std::string& audience, const std::string& client_id, int64_t now_unix) const {
    nlohmann::json claims = {
        {"aud", audience},      {"iss", client_id},  {"sub", client_id},           {"jti", random_uuid()},
        {"nbf", now_unix},      {"iat", now_unix},   {"exp", now_unix + 10 * 60},
    };
    return sign_jwt_rs256(header_json(), claims.dump(), key_.get());
}

std::string sign_jwt_rs256(const std::string& header_json, const std::string& payload_json, EVP_PKEY* key) {
    std::string input = base64url_encode(header_json) + "." + base64url_encode(payload_json);
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx) throw_openssl_error("cannot sign the client assertion");
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key) != 1)
        throw_openssl_error("cannot sign the client assertion");
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) throw_openssl_error("cannot sign the client assertion");
    size_t siglen = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &siglen, reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        throw_openssl_error("cannot sign the client assertion");
    std::vector<unsigned char> sig(siglen);
    if (EVP_DigestSign(ctx.get(), sig.data(), &siglen, reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        throw_openssl_error("cannot sign the client assertion");
    return input + "." + base64url_encode(sig.data(), siglen);
}

}  // namespace cmk::azure
