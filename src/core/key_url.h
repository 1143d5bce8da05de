// cmk.key_url: which KEK wraps the DEK.
//   file:/abs/path/kek.pem                          local RSA key (development)
//   https://<vault>.vault.azure.net/keys/<name>[/<version>]
//   https://<hsm>.managedhsm.azure.net/keys/<name>[/<version>]
// Other clouds' hosts (vault.azure.cn, vault.usgovcloudapi.net, ...) and
// http(s)://host:port for a local emulator are accepted the same way; the
// provider decides whether plain http is allowed (never in production).
#pragma once
#include "core_guard.h"

#include <string>

namespace cmk {

struct KeyUrl {
    enum class Kind { File, KeyVault };
    Kind kind = Kind::File;
    std::string text;      // as configured
    std::string base;      // without version: file:/path or https://host/keys/name
    std::string version;   // empty when none is named
    // File
    std::string path;
    // Key Vault
    std::string scheme;    // https (http only for tests, see provider)
    std::string host;      // host[:port]
    std::string key_name;

    // The identifier of a specific version, as Key Vault prints it.
    std::string with_version(const std::string& v) const;
};

// Throws Error(Config) naming what is wrong.
KeyUrl parse_key_url(const std::string& text);

}  // namespace cmk
