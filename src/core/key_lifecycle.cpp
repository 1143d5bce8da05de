#include "key_lifecycle.h"

#include "error.h"

#include <openssl/crypto.h>

namespace cmk {

namespace {

const SecureBytes& dek_of(const std::vector<UnwrappedGeneration>& deks, uint32_t generation) {
    for (const auto& g : deks)
        if (g.generation == generation) return g.dek;
    throw Error(ErrorKind::Internal, "key generation " + std::to_string(generation) + " is not unwrapped");
}

bool same(const SecureBytes& a, const SecureBytes& b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

KekCheck check_kek(const Keyring& keyring, const SecureBytes& current_dek, const ProviderSettings& settings,
                   bool want_newest) {
    const KeyringEntry& cur = keyring.current();
    KeyUrl base = parse_key_url(cur.wrapped.kek_base);
    KeyUrl exact = parse_key_url(base.with_version(cur.wrapped.kek_version));
    auto provider = make_key_provider(exact, settings);
    KekCheck out;
    out.current = provider->check_key();
    SecureBytes dek = unwrap_and_check(*provider, cur);
    if (!same(dek, current_dek))
        throw Error(ErrorKind::KeyringCorrupt, "the keyring's current key no longer matches the key the server uses",
                    "pg_cmk/keyring was replaced while the server ran.", "Restore the keyring that belongs to this data directory.");
    out.newest_version = out.current.version;
    if (want_newest && base.kind == KeyUrl::Kind::KeyVault) {
        try {
            auto latest = make_key_provider(base, settings);
            out.newest_version = latest->check_key().version;
        } catch (const Error&) {
            // The newest version is unusable (disabled, not yet valid): stay.
        }
    }
    return out;
}

Keyring rewrap_keyring(const Keyring& keyring, const std::vector<UnwrappedGeneration>& deks,
                       const std::string& new_key_url, const ProviderSettings& settings) {
    KeyUrl target = parse_key_url(new_key_url);
    auto provider = make_key_provider(target, settings);
    Keyring out = keyring;
    for (auto& e : out.entries) {
        const SecureBytes& dek = dek_of(deks, e.generation);
        DerivedKeys keys = derive_keys(dek.data(), dek.size());
        if (CRYPTO_memcmp(keys.check_value.data(), e.check_value.data(), kKcvBytes) != 0)
            throw Error(ErrorKind::KeyringCorrupt, "key generation " + std::to_string(e.generation) +
                                                       " in memory does not match the keyring's key check value");
        e.wrapped = provider->wrap(dek);
        SecureBytes again = provider->unwrap(e.wrapped);
        if (!same(again, dek))
            throw Error(ErrorKind::Protocol, "the new key's unwrap did not return the key it wrapped; the keyring was not changed");
    }
    return out;
}

Bytes write_keyring(const std::string& datadir, const Keyring& keyring, const std::vector<UnwrappedGeneration>& deks) {
    const SecureBytes& dek = dek_of(deks, keyring.current_generation);
    Bytes file = encode_keyring(keyring, derive_keys(dek.data(), dek.size()).keyring_mac);
    write_file_atomically(keyring_path(datadir), file, 0600);
    return file;
}

Keyring install_keyring(const std::string& datadir, const Bytes& file, std::vector<UnwrappedGeneration>& deks,
                        const ProviderSettings& settings) {
    Keyring k = decode_keyring(file);
    for (const auto& e : k.entries) {
        bool known = false;
        for (const auto& g : deks) known = known || g.generation == e.generation;
        if (known) continue;
        auto provider = make_key_provider(parse_key_url(e.wrapped.kek_base), settings);
        deks.push_back({e.generation, unwrap_and_check(*provider, e)});
    }
    const SecureBytes& dek = dek_of(deks, k.current_generation);
    verify_keyring_mac(file, derive_keys(dek.data(), dek.size()).keyring_mac);
    write_file_atomically(keyring_path(datadir), file, 0600);
    return k;
}

}  // namespace cmk
