// A small HTTP client over libcurl, used by the Azure credentials and the Key
// Vault key provider. One request at a time per client; the connection is
// kept for the next request to the same host.
//
// - TLS verification is always on: the system CA store, or the bundle named
//   by ProviderSettings::ca_file instead of it. There is no switch to turn it off.
// - Plain http:// is refused except for loopback hosts (127.0.0.1, localhost,
//   [::1]: test emulators and the App Service identity endpoint, which listens
//   on loopback) and the Azure Instance Metadata Service at 169.254.169.254,
//   which Azure serves only over plain HTTP on that link-local address.
// - Proxies come from the standard variables (https_proxy, HTTPS_PROXY,
//   http_proxy, no_proxy, NO_PROXY), which libcurl reads itself; loopback and
//   the IMDS address never go through a proxy.
// - Redirects are not followed (a bearer token must not travel to another host).
// - What a body held does not stay behind in the libraries: OpenSSL wipes
//   each TLS record's plaintext once handed over (SSL_OP_CLEANSE_PLAINTEXT),
//   libcurl's receive buffer is wiped where the body was copied out of it,
//   HTTP/1.1 only (no HTTP/2 stream buffers).
// - A transport failure (DNS, connect, TLS handshake, timeout, reset) throws
//   Error(Transient) naming the host and libcurl's error text; a certificate
//   that fails verification throws Error(Config), since retrying cannot help.
#pragma once
#include "core_guard.h"

#include "secure_bytes.h"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cmk {

// Header fields with case-insensitive names (RFC 9110 section 5.1).
class HttpHeaders {
public:
    void add(const std::string& name, const std::string& value);
    // Replaces every field of that name.
    void set(const std::string& name, const std::string& value);
    // The value, or the values of repeated fields joined with ", ".
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& fallback = {}) const;
    bool has(const std::string& name) const { return get(name).has_value(); }
    const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }
    void clear() { fields_.clear(); }

private:
    std::vector<std::pair<std::string, std::string>> fields_;
};

// Bodies live in locked memory left out of core dumps (secure_bytes.h): a
// wrap request and an unwrap answer carry a DEK, token requests a secret.
struct HttpRequest {
    std::string method = "GET";
    std::string url;
    HttpHeaders headers;
    SecureString body;
    int timeout_ms = 10000;          // whole request
    int connect_timeout_ms = 0;      // 0: same as timeout_ms
};

struct HttpResponse {
    long status = 0;
    HttpHeaders headers;
    SecureString body;
};

// Splits a URL into scheme, host (without port, lower case, IPv6 without
// brackets) and port; throws Error(Config) when it is not http(s)://host...
struct UrlParts {
    std::string scheme;
    std::string host;
    std::string port;  // empty when none
    std::string path_and_query;
};
UrlParts split_url(const std::string& url);

// True for the hosts to which plain http:// is allowed (see above).
bool plain_http_allowed(const std::string& host);

// The URL without query string, for messages.
std::string url_for_messages(const std::string& url);

class HttpClient {
public:
    explicit HttpClient(std::string ca_file = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    HttpResponse send(const HttpRequest& request);

private:
    std::string ca_file_;
    void* curl_ = nullptr;  // CURL*, reused so that the connection stays open
    std::mutex mutex_;
};

}  // namespace cmk
