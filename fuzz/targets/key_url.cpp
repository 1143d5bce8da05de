// The key URL parser, the key-URL policy parser (cmk.allowed_key_urls) and
// the URL splitter of the HTTP client: parse or throw cmk::Error, and what
// parses keeps its own invariants.
#include "fuzz_target.h"

#include "error.h"
#include "http/http_client.h"
#include "key_url.h"

#include <string>

CMK_FUZZ_TARGET(key_url) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        cmk::KeyUrl url = cmk::parse_key_url(text);
        CMK_FUZZ_CHECK(!url.base.empty());
        std::string v = url.with_version("0123456789abcdef0123456789abcdef");
        cmk::KeyUrl again = cmk::parse_key_url(url.base);
        CMK_FUZZ_CHECK(again.base == url.base);
        (void) v;
        cmk::KeyUrlPolicy own = cmk::KeyUrlPolicy::of_key(url);
        CMK_FUZZ_CHECK(own.allows(url));
    } catch (const cmk::Error&) {
    }
    try {
        cmk::KeyUrlPolicy policy = cmk::KeyUrlPolicy::parse(text);
        try {
            (void) policy.allows(cmk::parse_key_url("https://myvault.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"));
            (void) policy.allows(cmk::parse_key_url("file:/etc/cmk/kek.pem"));
        } catch (const cmk::Error&) {
        }
    } catch (const cmk::Error&) {
    }
    try {
        cmk::UrlParts parts = cmk::split_url(text);
        CMK_FUZZ_CHECK(parts.scheme == "http" || parts.scheme == "https");
        (void) cmk::url_for_messages(text);
    } catch (const cmk::Error&) {
    }
    return 0;
}
