#include "key_url.h"

#include "error.h"

#include <cctype>

namespace cmk {

namespace {

const char* kFileHint = "Use file:/absolute/path/to/kek.pem or https://<vault>.vault.azure.net/keys/<name>[/<version>].";

bool valid_key_name(const std::string& s) {
    // Key Vault object names: 1-127 characters, letters, digits and dashes.
    if (s.empty() || s.size() > 127) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
    return true;
}

bool valid_version(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    return true;
}

}  // namespace

std::string KeyUrl::with_version(const std::string& v) const {
    if (kind == Kind::File) return base;
    return v.empty() ? base : base + "/" + v;
}

KeyUrl parse_key_url(const std::string& text) {
    KeyUrl url;
    url.text = text;
    if (text.empty())
        throw Error(ErrorKind::Config, "cmk.key_url is not set",
                    "cmk needs the key encryption key that wraps the data encryption key.", kFileHint);

    if (text.compare(0, 5, "file:") == 0) {
        std::string path = text.substr(5);
        if (path.compare(0, 2, "//") == 0) path = path.substr(2);  // file:///abs
        if (path.empty() || path[0] != '/')
            throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" is malformed",
                        "A file: key URL must name an absolute path.", kFileHint);
        url.kind = KeyUrl::Kind::File;
        url.path = path;
        url.base = "file:" + path;
        return url;
    }

    std::string rest;
    if (text.compare(0, 8, "https://") == 0) {
        url.scheme = "https";
        rest = text.substr(8);
    } else if (text.compare(0, 7, "http://") == 0) {
        url.scheme = "http";
        rest = text.substr(7);
    } else {
        throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" is malformed",
                    "The key URL must start with file: or https://.", kFileHint);
    }
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    auto slash = rest.find('/');
    url.host = rest.substr(0, slash);
    std::string path = slash == std::string::npos ? "" : rest.substr(slash);
    bool odd_char = false;
    for (char c : url.host)
        odd_char = odd_char || !(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']');
    if (url.host.empty() || odd_char)
        throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" is malformed", "The host part is missing or invalid.", kFileHint);
    if (path.compare(0, 6, "/keys/") != 0)
        throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" is malformed",
                    "A Key Vault key identifier has the form https://<vault>/keys/<name>[/<version>].", kFileHint);
    path = path.substr(6);
    auto vslash = path.find('/');
    url.key_name = path.substr(0, vslash);
    if (vslash != std::string::npos) url.version = path.substr(vslash + 1);
    if (!valid_key_name(url.key_name))
        throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" names an invalid key name \"" + url.key_name + "\"",
                    "Key names are 1 to 127 letters, digits and dashes.");
    if (vslash != std::string::npos && !valid_version(url.version))
        throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" names an invalid key version \"" + url.version + "\"");
    url.kind = KeyUrl::Kind::KeyVault;
    url.base = url.scheme + "://" + url.host + "/keys/" + url.key_name;
    return url;
}

}  // namespace cmk
