// The KEK's life after start-up: checking it, rotation, generations added
// and removed, keyrings that arrive through WAL (key_lifecycle.h).
#include "key_lifecycle.h"

#include "error.h"
#include "key_safety.h"

#include <algorithm>
#include <ctime>
#include <map>

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

void prove_possession(const Keyring& keyring, const std::vector<UnwrappedGeneration>& deks, const ProviderSettings& settings) {
    std::map<std::string, std::unique_ptr<KeyProvider>> providers;  // by KEK, without version
    for (const auto& e : keyring.entries) {
        std::unique_ptr<KeyProvider>& provider = providers[e.wrapped.kek_base];
        KeyUrl kek = parse_key_url(e.wrapped.kek_base);
        std::string id = kek.with_version(e.wrapped.kek_version);
        SecureBytes dek;
        try {
            if (!provider) provider = make_key_provider(kek, settings);
            dek = unwrap_and_check(*provider, e);
        } catch (const Error& err) {
            throw Error(err.kind(),
                        "the key that wraps the keyring, " + id + ", did not unwrap key generation " +
                            std::to_string(e.generation) + ": " + err.what(),
                        "A rotation first proves that the current key still works: a revoked, disabled or deleted key "
                        "cannot be rotated away from.",
                        err.hint());
        }
        if (!same(dek, dek_of(deks, e.generation)))
            throw Error(ErrorKind::KeyringCorrupt, "key generation " + std::to_string(e.generation) +
                                                       " unwraps to another key than the one the server uses",
                        "pg_cmk/keyring was replaced while the server ran.", "Restore the keyring that belongs to this data directory.");
    }
}

Keyring rewrap_keyring(const Keyring& keyring, const std::vector<UnwrappedGeneration>& deks,
                       const std::string& new_key_url, const ProviderSettings& settings) {
    KeyUrl target = parse_key_url(new_key_url);
    // 1. The server owner's policy, before any file is read or host contacted.
    std::string source;
    require_allowed(effective_key_policy(settings.allowed_key_urls, keyring.current().wrapped.kek_base, &source), target, source);
    for (auto& e : keyring.entries) {
        DerivedKeys keys = derive_keys(dek_of(deks, e.generation).data(), kDekBytes);
        if (CRYPTO_memcmp(keys.check_value.data(), e.check_value.data(), kKcvBytes) != 0)
            throw Error(ErrorKind::KeyringCorrupt, "key generation " + std::to_string(e.generation) +
                                                       " in memory does not match the keyring's key check value");
    }
    // 2. Possession: the current key unwraps every generation (the vault's
    // audit log shows the old version's unwrap for every rotation).
    prove_possession(keyring, deks, settings);
    // 3. The new key: usable and purge-protected, then wrap and verify each.
    Keyring out = keyring;
    try {
        auto provider = make_key_provider(target, settings);
        require_purge_protection(target, provider->check_key(), settings.allow_purgeable_key);
        for (auto& e : out.entries) {
            const SecureBytes& dek = dek_of(deks, e.generation);
            e.wrapped = provider->wrap(dek);
            SecureBytes again = provider->unwrap(e.wrapped);
            if (!same(again, dek))
                throw Error(ErrorKind::Protocol, "the new key's unwrap did not return the key it wrapped; the keyring was not changed");
        }
    } catch (const Error& e) {
        // The caller names the path: whether it is missing, unreadable or not
        // a key must not tell them which files exist on the server.
        if (target.kind == KeyUrl::Kind::File)
            throw Error(ErrorKind::KeyUnavailable,
                        "the key file is missing, unreadable, or not a PEM file holding an RSA private key of 2048, 3072 or 4096 bits",
                        {}, "Give the server a key file it can read at an allowed path.");
        throw;
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


std::vector<uint32_t> unknown_generations(const Keyring& next, const std::vector<UnwrappedGeneration>& deks) {
    std::vector<uint32_t> out;
    for (const auto& e : next.entries) {
        bool known = false;
        for (const auto& g : deks) known = known || g.generation == e.generation;
        if (!known) out.push_back(e.generation);
    }
    return out;
}

std::vector<UnwrappedGeneration> unwrap_generations(const Keyring& next, const std::vector<uint32_t>& generations,
                                                    const ProviderSettings& settings) {
    std::vector<UnwrappedGeneration> out;
    for (uint32_t g : generations) {
        const KeyringEntry& e = next.entry(g);
        auto provider = make_key_provider(parse_key_url(e.wrapped.kek_base), settings);
        out.push_back({g, unwrap_and_check(*provider, e)});
    }
    return out;
}

Bytes finish_keyring_change(const Bytes& record, const std::vector<UnwrappedGeneration>& deks, uint32_t previous_current,
                            uint32_t timeline, uint64_t lsn) {
    Keyring k = decode_keyring(record);
    for (const auto& e : k.entries) {
        const SecureBytes* dek = nullptr;
        for (const auto& g : deks)
            if (g.generation == e.generation) dek = &g.dek;
        if (!dek)
            throw Error(ErrorKind::Internal, "key generation " + std::to_string(e.generation) + " of the new keyring is not unwrapped");
        if (CRYPTO_memcmp(derive_keys(dek->data(), dek->size()).check_value.data(), e.check_value.data(), kKcvBytes) != 0)
            throw Error(ErrorKind::KeyringCorrupt,
                        "the new keyring's key check value of generation " + std::to_string(e.generation) +
                            " does not match the key this server holds for it",
                        "The keyring change belongs to another cluster's keys, or this server's keyring is not the one of its primary.",
                        "Rebuild this server from a base backup of its primary, which carries the right keyring.");
    }
    const SecureBytes& current = dek_of(deks, k.current_generation);
    SecureBytes mac_key = derive_keys(current.data(), current.size()).keyring_mac;
    verify_keyring_mac(record, mac_key);
    k.installed_timeline = timeline;
    k.installed_lsn = lsn;
    for (auto& e : k.entries)
        if (e.generation == k.current_generation && e.generation != previous_current && e.current_from_lsn == 0)
            e.current_from_lsn = lsn;
    return encode_keyring(k, mac_key);
}

}  // namespace cmk
