#include "key_lifecycle.h"

#include "error.h"

#include <algorithm>
#include <ctime>

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

Keyring add_generation(const Keyring& keyring, std::vector<UnwrappedGeneration>& deks, const ProviderSettings& settings) {
    const KeyringEntry& cur = keyring.current();
    uint32_t next = 0;
    for (const auto& e : keyring.entries) next = std::max(next, e.generation);
    next++;
    if (next > kMaxGenerations)
        throw Error(ErrorKind::Config, "the keyring already used all " + std::to_string(kMaxGenerations) + " key generations",
                    {}, "Retire old generations first (cmk_retire_generation).");
    KeyUrl url = parse_key_url(cur.wrapped.kek_base);
    KeyUrl exact = parse_key_url(url.with_version(cur.wrapped.kek_version));
    ProviderSettings ps = settings;
    ps.wrap_algorithm = cur.wrapped.algorithm;
    auto provider = make_key_provider(exact, ps);
    SecureBytes dek = generate_dek();
    KeyringEntry e;
    e.generation = next;
    e.created_at = static_cast<uint64_t>(std::time(nullptr));
    e.wrapped = provider->wrap(dek);
    e.check_value = derive_keys(dek.data(), dek.size()).check_value;
    SecureBytes again = provider->unwrap(e.wrapped);
    if (!same(again, dek)) throw Error(ErrorKind::Protocol, "the key's unwrap did not return the key it wrapped");
    Keyring out = keyring;
    out.entries.push_back(e);
    out.current_generation = next;
    deks.push_back({next, std::move(dek)});
    return out;
}

Keyring remove_generation(const Keyring& keyring, uint32_t generation) {
    if (generation == keyring.current_generation)
        throw Error(ErrorKind::Config, "key generation " + std::to_string(generation) + " is the current one and cannot be retired");
    Keyring out = keyring;
    auto it = std::remove_if(out.entries.begin(), out.entries.end(),
                             [&](const KeyringEntry& e) { return e.generation == generation; });
    if (it == out.entries.end())
        throw Error(ErrorKind::Config, "key generation " + std::to_string(generation) + " is not in the keyring");
    out.entries.erase(it, out.entries.end());
    return out;
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
