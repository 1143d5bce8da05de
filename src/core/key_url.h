// cmk.key_url: which KEK wraps the DEK.
//   file:/abs/path/kek.pem                          local RSA key (development)
//   https://<vault>.vault.azure.net/keys/<name>[/<version>]
//   https://<hsm>.managedhsm.azure.net/keys/<name>[/<version>]
// Other clouds' hosts (vault.azure.cn, vault.usgovcloudapi.net, ...) and
// http(s)://host:port for a local emulator are accepted the same way; the
// provider decides whether plain http is allowed (never in production).
//
// cmk.allowed_key_urls: which key URLs may wrap the keyring (the server
// owner's policy, DESIGN.md "Key URL policy"). A comma-separated list of
//   https://<host>[:port]            any key of that vault (also http://)
//   https://<host>/keys/<name>       that key, any version
//   https://<host>/keys/<name>/<v>   that version
//   file:/dir/                       any key file directly in /dir
//   file:/dir/kek.pem                that file
//   *                                any key URL
// Matching needs no file and no network: it compares parsed URLs.
#pragma once
#include "core_guard.h"

#include <string>
#include <vector>

namespace cmk {

// A key URL longer than this is refused before anything else looks at it.
constexpr size_t kMaxKeyUrlBytes = 2048;

struct KeyUrl {
    enum class Kind { File, KeyVault };
    Kind kind = Kind::File;
    std::string text;      // as configured
    std::string base;      // without version: file:/path or https://host/keys/name
    std::string version;   // empty when none is named
    // File
    std::string path;      // absolute, canonical (no "." or ".." parts, no "//")
    // Key Vault
    std::string scheme;    // https (http only for tests, see provider)
    std::string host;      // host[:port]
    std::string key_name;

    // The identifier of a specific version, as Key Vault prints it.
    std::string with_version(const std::string& v) const;
};

// Throws Error(Config) naming what is wrong.
KeyUrl parse_key_url(const std::string& text);

class KeyUrlPolicy {
public:
    // Throws Error(Config) naming the entry that is wrong.
    static KeyUrlPolicy parse(const std::string& text);
    // The default: the provider kind and vault (scheme and host), or for a
    // file KEK its directory, of the given key.
    static KeyUrlPolicy of_key(const KeyUrl& kek);

    bool allows(const KeyUrl& url) const;
    // The policy as written, e.g. "https://contoso.vault.azure.net".
    const std::string& text() const { return text_; }

private:
    struct Entry {
        enum class Kind { Any, FileDirectory, FileExact, Vault, VaultKey, VaultKeyVersion };
        Kind kind = Kind::Any;
        std::string scheme, host, key_name, version, path;
    };
    std::vector<Entry> entries_;
    std::string text_;
};

// The policy in force: allowed_key_urls if set, else the vault (or
// directory) of current_kek (the key that wraps the keyring); *source says
// which, for messages.
KeyUrlPolicy effective_key_policy(const std::string& allowed_key_urls, const std::string& current_kek, std::string* source);

// Throws Error(Config) when the policy does not allow url; the message says
// what the policy allows (setting_source names where it comes from).
void require_allowed(const KeyUrlPolicy& policy, const KeyUrl& url, const std::string& setting_source);

}  // namespace cmk
