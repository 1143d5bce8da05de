// The signed JWT that ClientCertificateCredential sends instead of a secret
// (Microsoft identity platform "certificate credentials": RFC 7523 client
// assertion). Header {"alg":"RS256","typ":"JWT","x5t":..,"x5t#S256":..}, the
// thumbprints being base64url SHA-1 and SHA-256 of the certificate's DER;
// claims aud = the token endpoint, iss = sub = client id, a fresh jti, nbf,
// iat and exp = now + 10 minutes (MSAL's lifetime). Signed with the
// certificate's RSA private key (RSASSA-PKCS1-v1_5 SHA-256) through EVP.
#pragma once
#include "core_guard.h"

#include <cstdint>
#include <memory>
#include <string>

typedef struct evp_pkey_st EVP_PKEY;

namespace cmk::azure {

class CertificateSigner {
public:
    // A PEM text holding the certificate and its private key (in any order,
    // as Azure CLI and Key Vault export them); the key may be encrypted with
    // `password`. `origin` names the file in messages. Throws Error(Config).
    static CertificateSigner from_pem(const std::string& pem, const std::string& password, const std::string& origin);
    static CertificateSigner from_pem_file(const std::string& path, const std::string& password);

    const std::string& x5t() const { return x5t_; }
    const std::string& x5t_s256() const { return x5t_s256_; }
    std::string header_json() const;
    std::string make_assertion(const std::string& audience, const std::string& client_id, int64_t now_unix) const;

private:
    std::shared_ptr<EVP_PKEY> key_;
    std::string x5t_;
    std::string x5t_s256_;
};

// base64url(header) "." base64url(payload) "." base64url(RS256 signature)
std::string sign_jwt_rs256(const std::string& header_json, const std::string& payload_json, EVP_PKEY* key);

}  // namespace cmk::azure
