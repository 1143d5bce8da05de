// The local key provider: an RSA key in a PEM file (file_key_provider.h).
#include "file_key_provider.h"

#include "error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

namespace cmk {

namespace {

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct PkeyCtxFree { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

const char* kFileHint = "cmk.key_url = 'file:/path' must name a readable PEM file holding an RSA private key of 2048, 3072 or 4096 bits.";

Pkey load_private_key(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) {
        int e = errno;
        throw Error(ErrorKind::KeyUnavailable, "cannot open key encryption key file \"" + path + "\": " + std::strerror(e),
                    {}, kFileHint);
    }
    EVP_PKEY* raw = PEM_read_PrivateKey(f, nullptr, nullptr, const_cast<char*>(""));
    std::fclose(f);
    if (!raw)
        throw Error(ErrorKind::KeyUnavailable, "key encryption key file \"" + path + "\" does not hold a PEM private key",
                    {}, kFileHint);
    Pkey key(raw);
    if (EVP_PKEY_get_base_id(raw) != EVP_PKEY_RSA)
        throw Error(ErrorKind::KeyUnavailable, "key encryption key file \"" + path + "\" holds a " +
                    std::string(EVP_PKEY_get0_type_name(raw) ? EVP_PKEY_get0_type_name(raw) : "non-RSA") +
                    " key, not an RSA key", {}, kFileHint);
    int bits = EVP_PKEY_get_bits(raw);
    if (bits != 2048 && bits != 3072 && bits != 4096)
        throw Error(ErrorKind::KeyUnavailable, "key encryption key file \"" + path + "\" holds a " + std::to_string(bits) +
                    "-bit RSA key; cmk accepts 2048, 3072 or 4096 bits", {}, kFileHint);
    return key;
}

std::string fingerprint(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0) throw_openssl_error("cannot encode the public key");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(der, static_cast<size_t>(len), md, &mdlen, EVP_sha256(), nullptr);
    OPENSSL_free(der);
    if (ok != 1) throw_openssl_error("cannot hash the public key");
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < 16; i++) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

const EVP_MD* oaep_digest(const std::string& algorithm) {
    if (algorithm == "RSA-OAEP-256") return EVP_sha256();
    if (algorithm == "RSA-OAEP") return EVP_sha1();
    throw Error(ErrorKind::Config, "unsupported key wrap algorithm \"" + algorithm + "\"", {},
                "cmk.key_wrap_algorithm is RSA-OAEP-256 (default) or RSA-OAEP.");
}

PkeyCtx oaep_ctx(EVP_PKEY* key, const std::string& algorithm, bool encrypt) {
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx) throw_openssl_error("cannot allocate an RSA context");
    const EVP_MD* md = oaep_digest(algorithm);
    if ((encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get())) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) != 1)
        throw_openssl_error("cannot set up RSA-OAEP");
    return ctx;
}

class FileKeyProvider : public KeyProvider {
public:
    FileKeyProvider(const KeyUrl& url, const ProviderSettings& settings)
        : url_(url), algorithm_(settings.wrap_algorithm) {
        oaep_digest(algorithm_);
    }

    std::string name() const override { return "file"; }

    KeyProperties check_key() override {
        Pkey key = load_private_key(url_.path);
        KeyProperties props;
        props.base = url_.base;
        props.version = fingerprint(key.get());
        props.key_type = "RSA";
        props.key_size_bits = EVP_PKEY_get_bits(key.get());
        props.key_ops = {"wrapKey", "unwrapKey"};
        return props;
    }

    WrappedDek wrap(const SecureBytes& dek) override {
        Pkey key = load_private_key(url_.path);
        PkeyCtx ctx = oaep_ctx(key.get(), algorithm_, true);
        size_t outlen = 0;
        if (EVP_PKEY_encrypt(ctx.get(), nullptr, &outlen, dek.data(), dek.size()) != 1)
            throw_openssl_error("RSA-OAEP wrap failed");
        WrappedDek w;
        w.wrapped.resize(outlen);
        if (EVP_PKEY_encrypt(ctx.get(), w.wrapped.data(), &outlen, dek.data(), dek.size()) != 1)
            throw_openssl_error("RSA-OAEP wrap failed");
        w.wrapped.resize(outlen);
        w.kek_base = url_.base;
        w.kek_version = fingerprint(key.get());
        w.algorithm = algorithm_;
        return w;
    }

    SecureBytes unwrap(const WrappedDek& w) override {
        if (w.algorithm != "RSA-OAEP-256" && w.algorithm != "RSA-OAEP")
            throw Error(ErrorKind::KeyringCorrupt,
                        "keyring is corrupt: it names an unknown wrap algorithm \"" + w.algorithm + "\"", {},
                        "Restore pg_cmk/keyring from a backup of this data directory.");
        Pkey key = load_private_key(url_.path);
        std::string have = fingerprint(key.get());
        if (w.kek_version != have)
            throw Error(ErrorKind::WrongKey,
                        "the key in \"" + url_.path + "\" (fingerprint " + have +
                            ") is not the key encryption key that wrapped the keyring (fingerprint " + w.kek_version + ")",
                        "The keyring was wrapped by " + w.kek_base + ".",
                        "Put the original key back at that path, or point cmk.key_url at it.");
        // The key is the one that wrapped the DEK (same public key), so a
        // failure to unwrap means the wrapped value itself was altered.
        PkeyCtx ctx = oaep_ctx(key.get(), w.algorithm, false);
        size_t outlen = 0;
        SecureBytes out(EVP_PKEY_get_size(key.get()));
        outlen = out.size();
        if (EVP_PKEY_decrypt(ctx.get(), out.data(), &outlen, w.wrapped.data(), w.wrapped.size()) != 1)
            throw Error(ErrorKind::KeyringCorrupt,
                        "keyring is corrupt: its wrapped data encryption key does not unwrap with the key that wrapped it (fingerprint " +
                            have + ")",
                        {}, "Restore pg_cmk/keyring from a backup of this data directory.");
        out.resize(outlen);
        return out;
    }

private:
    KeyUrl url_;
    std::string algorithm_;
};

}  // namespace

std::unique_ptr<KeyProvider> make_file_key_provider(const KeyUrl& url, const ProviderSettings& settings) {
    return std::make_unique<FileKeyProvider>(url, settings);
}

std::string public_key_fingerprint_of_pem_file(const std::string& path) {
    Pkey key = load_private_key(path);
    return fingerprint(key.get());
}

}  // namespace cmk
