// Start-up of the key hierarchy: open or create the keyring (key_store.h).
#include "key_store.h"

#include "error.h"
#include "key_safety.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/stat.h>

#include <openssl/crypto.h>

namespace cmk {

std::string keyring_path(const std::string& datadir) { return datadir + "/pg_cmk/keyring"; }

SecureBytes unwrap_and_check(KeyProvider& provider, const KeyringEntry& entry) {
    SecureBytes dek = provider.unwrap(entry.wrapped);
    if (dek.size() != kDekBytes)
        throw Error(ErrorKind::KeyringCorrupt,
                    "keyring is corrupt: generation " + std::to_string(entry.generation) + " unwrapped to " +
                        std::to_string(dek.size()) + " bytes instead of 32");
    DerivedKeys keys = derive_keys(dek.data(), dek.size());
    if (CRYPTO_memcmp(keys.check_value.data(), entry.check_value.data(), kKcvBytes) != 0)
        throw Error(ErrorKind::KeyringCorrupt,
                    "keyring is corrupt: the key of generation " + std::to_string(entry.generation) +
                        " does not match its key check value",
                    {}, "Restore pg_cmk/keyring from a backup of this data directory.");
    return dek;
}

namespace {

OpenedKeys open_existing(const Bytes& file, const KeyUrl* configured, const ProviderSettings& settings) {
    OpenedKeys out;
    out.keyring = decode_keyring(file);
    const KeyringEntry& current = out.keyring.current();

    // The keyring names the KEK that wrapped it: it is the authority at start,
    // within the server owner's policy (checked before anything is contacted).
    KeyUrl recorded = parse_key_url(current.wrapped.kek_base);
    std::string source;
    KeyUrlPolicy policy = effective_key_policy(settings.allowed_key_urls, current.wrapped.kek_base, &source);
    for (const auto& e : out.keyring.entries) {
        try {
            require_allowed(policy, parse_key_url(e.wrapped.kek_base), source);
        } catch (const Error& err) {
            throw Error(err.kind(), std::string("the keyring is wrapped by a key outside the policy: ") + err.what(), err.detail(),
                        "Allow that key in cmk.allowed_key_urls in postgresql.conf, or restore the keyring wrapped by an allowed key.");
        }
    }
    if (configured && recorded.base != configured->base)
        out.warnings.push_back("cmk.key_url is \"" + configured->text + "\" but the keyring was wrapped by \"" +
                               recorded.with_version(current.wrapped.kek_version) +
                               "\"; using the keyring's key (use cmk_rotate_key() to change keys)");
    else if (configured && !configured->version.empty() && configured->version != current.wrapped.kek_version)
        out.warnings.push_back("cmk.key_url names version \"" + configured->version + "\" but the keyring was wrapped by version \"" +
                               current.wrapped.kek_version + "\"; using the keyring's version");

    auto provider = make_key_provider(recorded, settings);
    out.provider_name = provider->name();
    SecureBytes dek = unwrap_and_check(*provider, current);
    verify_keyring_mac(file, derive_keys(dek.data(), dek.size()).keyring_mac);
    out.generations.push_back({current.generation, std::move(dek)});
    for (const auto& e : out.keyring.entries) {
        if (e.generation == current.generation) continue;
        std::unique_ptr<KeyProvider> other;
        KeyProvider* p = provider.get();
        if (e.wrapped.kek_base != current.wrapped.kek_base) {
            other = make_key_provider(parse_key_url(e.wrapped.kek_base), settings);
            p = other.get();
        }
        out.generations.push_back({e.generation, unwrap_and_check(*p, e)});
    }
    return out;
}

OpenedKeys create_new(const std::string& datadir, const KeyUrl& configured, const ProviderSettings& settings) {
    OpenedKeys out;
    if (!settings.allowed_key_urls.empty())
        {
        std::string source;
        require_allowed(effective_key_policy(settings.allowed_key_urls, configured.base, &source), configured, source);
    }
    auto provider = make_key_provider(configured, settings);
    out.provider_name = provider->name();
    require_purge_protection(configured, provider->check_key(), settings.allow_purgeable_key);

    // wrap() reads and checks the key (type, size, enabled, dates, key_ops).
    SecureBytes dek = generate_dek();
    DerivedKeys keys = derive_keys(dek.data(), dek.size());
    KeyringEntry entry;
    entry.generation = 1;
    entry.created_at = static_cast<uint64_t>(std::time(nullptr));
    entry.wrapped = provider->wrap(dek);
    entry.check_value = keys.check_value;
    // Prove the round trip before anything is written with this key.
    SecureBytes again = provider->unwrap(entry.wrapped);
    if (again.size() != dek.size() || CRYPTO_memcmp(again.data(), dek.data(), dek.size()) != 0)
        throw Error(ErrorKind::Protocol, "the key provider's unwrap did not return the key it wrapped");

    out.keyring.current_generation = 1;
    out.keyring.entries.push_back(entry);
    Bytes file = encode_keyring(out.keyring, keys.keyring_mac);

    std::string dir = datadir + "/pg_cmk";
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        int e = errno;
        throw Error(ErrorKind::Io, "cannot create directory \"" + dir + "\": " + std::strerror(e));
    }
    write_file_atomically(keyring_path(datadir), file, 0600);
    out.generations.push_back({1, std::move(dek)});
    out.created = true;
    return out;
}

}  // namespace

OpenedKeys open_or_create_keys(const std::string& datadir, const std::string& key_url,
                               const ProviderSettings& settings, const std::function<bool()>& encrypted_data_exists) {
    KeyUrl configured = parse_key_url(key_url);
    std::string path = keyring_path(datadir);
    if (auto file = read_file_if_exists(path)) return open_existing(*file, &configured, settings);

    struct stat st;
    if (::stat((datadir + "/pg_cmk").c_str(), &st) == 0 && read_file_if_exists(path + ".tmp"))
        throw Error(ErrorKind::KeyringCorrupt, "keyring \"" + path + "\" is missing but an unfinished keyring.tmp is there",
                    {}, "Restore pg_cmk/keyring from a backup of this data directory.");
    if (encrypted_data_exists && encrypted_data_exists())
        throw Error(ErrorKind::KeyringCorrupt,
                    "keyring \"" + path + "\" is missing but the data directory holds encrypted pages",
                    "Without the keyring those pages cannot be read; cmk will not create a new keyring over them.",
                    "Restore pg_cmk/keyring from a backup of this data directory.");
    return create_new(datadir, configured, settings);
}

}  // namespace cmk

namespace cmk {

OpenedKeys open_existing_keys(const std::string& datadir, const ProviderSettings& settings) {
    return open_keyring_file(keyring_path(datadir), settings);
}

OpenedKeys open_keyring_file(const std::string& path, const ProviderSettings& settings) {
    auto file = read_file_if_exists(path);
    if (!file)
        throw Error(ErrorKind::KeyringCorrupt, "there is no keyring at \"" + path + "\"", {},
                    "Name the data directory of a cluster that runs cmk (its pg_cmk/keyring).");
    return open_existing(*file, nullptr, settings);
}

}  // namespace cmk
