// cmk.key_url parsing and the cmk.allowed_key_urls policy (key_url.h).
#include "key_url.h"

#include "error.h"
#include "text.h"

#include <cctype>

namespace cmk {

namespace {

const char* kFileHint = "Use file:/absolute/path/to/kek.pem or https://<vault>.vault.azure.net/keys/<name>[/<version>].";
// A DNS name (253) with a port, or a bracketed IPv6 address with a port.
constexpr size_t kMaxHostBytes = 253 + 6;

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

// An absolute path without empty, "." or ".." parts: what it names does not
// depend on how it is spelt, so a policy can compare paths as strings.
bool canonical_path(const std::string& path, bool directory) {
    if (path.empty() || path[0] != '/') return false;
    if (path.size() == 1) return directory;
    if (path.back() == '/' && !directory) return false;
    size_t end = path.back() == '/' ? path.size() - 1 : path.size();
    size_t start = 1;
    while (start <= end) {
        size_t slash = path.find('/', start);
        if (slash == std::string::npos || slash > end) slash = end;
        std::string part = path.substr(start, slash - start);
        if (part.empty() || part == "." || part == "..") return false;
        start = slash + 1;
    }
    return true;
}

std::string dirname_of(const std::string& path) { return path.substr(0, path.rfind('/') + 1); }

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    size_t e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

}  // namespace

std::string KeyUrl::with_version(const std::string& v) const {
    if (kind == Kind::File) return base;
    return v.empty() ? base : base + "/" + v;
}

KeyUrl parse_key_url(const std::string& text) {
    KeyUrl url;
    if (text.empty())
        throw Error(ErrorKind::Config, "cmk.key_url is not set",
                    "cmk needs the key encryption key that wraps the data encryption key.", kFileHint);
    // Before anything else, and without quoting it: it may be huge.
    if (text.size() > kMaxKeyUrlBytes)
        throw Error(ErrorKind::Config, "the key URL is longer than " + std::to_string(kMaxKeyUrlBytes) + " bytes", {}, kFileHint);
    for (char c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            throw Error(ErrorKind::Config, "the key URL contains a control character", {}, kFileHint);
    url.text = text;

    if (text.compare(0, 5, "file:") == 0) {
        std::string path = text.substr(5);
        if (path.compare(0, 2, "//") == 0) path = path.substr(2);  // file:///abs
        if (path.empty() || path[0] != '/')
            throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" is malformed",
                        "A file: key URL must name an absolute path.", kFileHint);
        if (!canonical_path(path, false))
            throw Error(ErrorKind::Config, "cmk.key_url \"" + text + "\" is malformed",
                        "A file: key URL must name a file by its plain absolute path, without \"//\", \".\" or \"..\" parts.",
                        kFileHint);
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
    if (url.host.empty() || odd_char || url.host.size() > kMaxHostBytes)
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

KeyUrlPolicy KeyUrlPolicy::parse(const std::string& text) {
    KeyUrlPolicy policy;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        std::string item = trim(text.substr(start, comma - start));
        start = comma + 1;
        if (item.empty()) continue;
        auto bad = [&](const std::string& why) {
            return Error(ErrorKind::Config, "cmk.allowed_key_urls entry \"" + item + "\" is malformed", why,
                         "Entries are https://<vault host>, https://<vault host>/keys/<name>[/<version>], file:/directory/, "
                         "file:/path/kek.pem or *, separated by commas.");
        };
        if (item.size() > kMaxKeyUrlBytes) throw bad("An entry is at most " + std::to_string(kMaxKeyUrlBytes) + " bytes.");
        Entry e;
        if (item == "*") {
            e.kind = Entry::Kind::Any;
        } else if (item.compare(0, 5, "file:") == 0) {
            std::string path = item.substr(5);
            if (path.compare(0, 2, "//") == 0) path = path.substr(2);
            bool directory = !path.empty() && path.back() == '/';
            if (!canonical_path(path, directory))
                throw bad("A file: entry is a plain absolute path: a directory ending in \"/\", or a file.");
            e.kind = directory ? Entry::Kind::FileDirectory : Entry::Kind::FileExact;
            e.path = path;
        } else if (item.compare(0, 8, "https://") == 0 || item.compare(0, 7, "http://") == 0) {
            std::string scheme = item.substr(0, item.find(':'));
            std::string rest = item.substr(scheme.size() + 3);
            while (!rest.empty() && rest.back() == '/') rest.pop_back();
            if (rest.find('/') == std::string::npos) {
                KeyUrl probe;
                try {
                    probe = parse_key_url(scheme + "://" + rest + "/keys/k");
                } catch (const Error&) {
                    throw bad("The host part is missing or invalid.");
                }
                e.kind = Entry::Kind::Vault;
                e.scheme = scheme;
                e.host = ascii_lower(probe.host);
            } else {
                KeyUrl key;
                try {
                    key = parse_key_url(scheme + "://" + rest);
                } catch (const Error& err) {
                    throw bad(err.detail().empty() ? "It is not a key identifier." : err.detail());
                }
                e.kind = key.version.empty() ? Entry::Kind::VaultKey : Entry::Kind::VaultKeyVersion;
                e.scheme = scheme;
                e.host = ascii_lower(key.host);
                e.key_name = ascii_lower(key.key_name);
                e.version = ascii_lower(key.version);
            }
        } else {
            throw bad("An entry starts with https://, http://, file: or is *.");
        }
        policy.entries_.push_back(e);
        policy.text_ += (policy.text_.empty() ? "" : ", ") + item;
    }
    if (policy.entries_.empty())
        throw Error(ErrorKind::Config, "cmk.allowed_key_urls allows no key", {},
                    "Leave it unset (the vault or directory of the current key), or list the key URLs to allow.");
    return policy;
}

// Built directly, not through parse(): a path may hold what the policy
// syntax separates or trims (commas, spaces) (found by fuzz/targets/key_url).
KeyUrlPolicy KeyUrlPolicy::of_key(const KeyUrl& kek) {
    KeyUrlPolicy policy;
    Entry e;
    if (kek.kind == KeyUrl::Kind::File) {
        e.kind = Entry::Kind::FileDirectory;
        e.path = dirname_of(kek.path);
        policy.text_ = "file:" + e.path;
    } else {
        e.kind = Entry::Kind::Vault;
        e.scheme = kek.scheme;
        e.host = ascii_lower(kek.host);
        policy.text_ = kek.scheme + "://" + e.host;
    }
    policy.entries_.push_back(e);
    return policy;
}

bool KeyUrlPolicy::allows(const KeyUrl& url) const {
    for (const Entry& e : entries_) {
        switch (e.kind) {
        case Entry::Kind::Any: return true;
        case Entry::Kind::FileDirectory:
            if (url.kind == KeyUrl::Kind::File && dirname_of(url.path) == e.path) return true;
            break;
        case Entry::Kind::FileExact:
            if (url.kind == KeyUrl::Kind::File && url.path == e.path) return true;
            break;
        case Entry::Kind::Vault:
        case Entry::Kind::VaultKey:
        case Entry::Kind::VaultKeyVersion:
            if (url.kind != KeyUrl::Kind::KeyVault || url.scheme != e.scheme || ascii_lower(url.host) != e.host) break;
            if (e.kind == Entry::Kind::Vault) return true;
            if (ascii_lower(url.key_name) != e.key_name) break;
            if (e.kind == Entry::Kind::VaultKey || ascii_lower(url.version) == e.version) return true;
            break;
        }
    }
    return false;
}

KeyUrlPolicy effective_key_policy(const std::string& allowed_key_urls, const std::string& current_kek, std::string* source) {
    if (!allowed_key_urls.empty()) {
        if (source) *source = "set in postgresql.conf";
        return KeyUrlPolicy::parse(allowed_key_urls);
    }
    KeyUrl kek = parse_key_url(current_kek);
    if (source)
        *source = std::string("the default when cmk.allowed_key_urls is not set: the ") +
                  (kek.kind == KeyUrl::Kind::File ? "directory" : "vault") + " of the key that wraps the keyring";
    return KeyUrlPolicy::of_key(kek);
}

void require_allowed(const KeyUrlPolicy& policy, const KeyUrl& url, const std::string& setting_source) {
    if (policy.allows(url)) return;
    throw Error(ErrorKind::Config, "key URL \"" + url.text + "\" is not allowed by cmk.allowed_key_urls",
                "cmk.allowed_key_urls allows only " + policy.text() + " (" + setting_source + ").",
                "Only the server's owner can allow other keys: list them in cmk.allowed_key_urls in postgresql.conf "
                "and restart the server.");
}

}  // namespace cmk
