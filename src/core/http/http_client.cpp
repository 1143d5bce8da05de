// The HTTP client over libcurl, its headers and URL splitting (http_client.h).
#include "http/http_client.h"

#include "error.h"
#include "text.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

namespace cmk {

namespace {

constexpr size_t kMaxResponseBytes = 4 * 1024 * 1024;  // Key Vault and Entra ID answers are a few KiB

std::string trim(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) e--;
    return s.substr(b, e - b);
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            throw Error(ErrorKind::Internal, "libcurl could not be initialised");
    });
}

struct Transfer {
    HttpResponse* response;
    bool too_large = false;
};

size_t on_body(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t len = size * n;
    if (t->response->body.size() + len > kMaxResponseBytes) {
        t->too_large = true;
        return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
    }
    t->response->body.append(data, len);
    OPENSSL_cleanse(data, len);  // libcurl's receive buffer: the body may hold a DEK
    return len;
}

// Every TLS connection wipes a record's plaintext after handing it over
// (otherwise the last answer stays in OpenSSL's read buffer while libcurl
// keeps the connection).
CURLcode on_ssl_ctx(CURL*, void* ssl_ctx, void*) {
    SSL_CTX_set_options(static_cast<SSL_CTX*>(ssl_ctx), SSL_OP_CLEANSE_PLAINTEXT);
    return CURLE_OK;
}

size_t on_header(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t len = size * n;
    std::string line(data, len);
    if (line.compare(0, 5, "HTTP/") == 0) {
        // A new status line (after 100 Continue, or a proxy's CONNECT answer): start over.
        t->response->headers.clear();
        return len;
    }
    auto colon = line.find(':');
    if (colon != std::string::npos && colon > 0)
        t->response->headers.add(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
    return len;
}

// Loopback and the IMDS address never go through a proxy; the operator's
// no_proxy list is kept (setting CURLOPT_NOPROXY replaces libcurl's own
// reading of it).
std::string no_proxy_list() {
    std::string list;
    for (const char* name : {"no_proxy", "NO_PROXY"}) {
        const char* v = std::getenv(name);
        if (v && *v) {
            list = v;
            break;
        }
    }
    if (list == "*") return list;
    if (!list.empty()) list += ",";
    list += "localhost,127.0.0.1,::1,169.254.169.254";
    return list;
}

struct SlistFree {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

void HttpHeaders::add(const std::string& name, const std::string& value) { fields_.emplace_back(name, value); }

void HttpHeaders::set(const std::string& name, const std::string& value) {
    fields_.erase(std::remove_if(fields_.begin(), fields_.end(), [&](const auto& f) { return equals_ci(f.first, name); }),
                  fields_.end());
    fields_.emplace_back(name, value);
}

std::optional<std::string> HttpHeaders::get(const std::string& name) const {
    std::optional<std::string> out;
    for (const auto& f : fields_) {
        if (!equals_ci(f.first, name)) continue;
        if (out)
            *out += ", " + f.second;
        else
            out = f.second;
    }
    return out;
}

std::string HttpHeaders::get_or(const std::string& name, const std::string& fallback) const {
    auto v = get(name);
    return v ? *v : fallback;
}

UrlParts split_url(const std::string& url) {
    UrlParts p;
    auto sep = url.find("://");
    if (sep == std::string::npos) throw Error(ErrorKind::Config, "\"" + url_for_messages(url) + "\" is not an http(s) URL");
    p.scheme = ascii_lower(url.substr(0, sep));
    if (p.scheme != "http" && p.scheme != "https")
        throw Error(ErrorKind::Config, "\"" + url_for_messages(url) + "\" is not an http(s) URL");
    std::string rest = url.substr(sep + 3);
    auto end = rest.find_first_of("/?#");
    std::string authority = rest.substr(0, end);
    p.path_and_query = end == std::string::npos ? "/" : rest.substr(end);
    if (authority.find('@') != std::string::npos)
        throw Error(ErrorKind::Config, "URLs with user information are not accepted: \"" + url_for_messages(url) + "\"");
    if (!authority.empty() && authority[0] == '[') {
        auto close = authority.find(']');
        if (close == std::string::npos) throw Error(ErrorKind::Config, "malformed URL \"" + url_for_messages(url) + "\"");
        p.host = authority.substr(1, close - 1);
        if (close + 1 < authority.size() && authority[close + 1] == ':') p.port = authority.substr(close + 2);
    } else {
        auto colon = authority.rfind(':');
        p.host = authority.substr(0, colon);
        if (colon != std::string::npos) p.port = authority.substr(colon + 1);
    }
    p.host = ascii_lower(p.host);
    if (p.host.empty()) throw Error(ErrorKind::Config, "URL \"" + url_for_messages(url) + "\" has no host");
    return p;
}

bool plain_http_allowed(const std::string& host) {
    // Loopback: tests against a local emulator, and the App Service / Container
    // Apps identity endpoint (IDENTITY_ENDPOINT is http://localhost:port/...).
    // 169.254.169.254: the Azure Instance Metadata Service, plain HTTP by design
    // (link-local, never leaves the host). Nothing else may be reached without TLS.
    std::string h = ascii_lower(host);
    return h == "127.0.0.1" || h == "localhost" || h == "::1" || h == "169.254.169.254";
}

std::string url_for_messages(const std::string& url) {
    auto q = url.find_first_of("?#");
    return q == std::string::npos ? url : url.substr(0, q);
}

HttpClient::HttpClient(std::string ca_file) : ca_file_(std::move(ca_file)) {}

HttpClient::~HttpClient() {
    if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::send(const HttpRequest& request) {
    UrlParts parts = split_url(request.url);
    if (parts.scheme == "http" && !plain_http_allowed(parts.host))
        throw Error(ErrorKind::Config,
                    "refusing plain http:// to \"" + parts.host + "\": only https is allowed (plain http only for loopback test hosts)",
                    {}, "Use an https:// URL.");
    global_init();

    std::lock_guard<std::mutex> lock(mutex_);
    if (!curl_) {
        curl_ = curl_easy_init();
        if (!curl_) throw Error(ErrorKind::Internal, "libcurl could not create a handle");
    }
    CURL* h = static_cast<CURL*>(curl_);
    curl_easy_reset(h);  // keeps the connection and DNS caches

    HttpResponse response;
    Transfer transfer{&response};
    char errbuf[CURL_ERROR_SIZE] = {0};

    std::unique_ptr<curl_slist, SlistFree> headers;
    auto add_header = [&](const std::string& line) {
        curl_slist* n = curl_slist_append(headers.get(), line.c_str());
        if (!n) throw Error(ErrorKind::Internal, "out of memory building HTTP headers");
        headers.release();
        headers.reset(n);
    };
    for (const auto& f : request.headers.fields()) add_header(f.first + ": " + f.second);
    add_header("Expect:");  // no 100-continue round trip

    std::string no_proxy = no_proxy_list();
    long timeout = request.timeout_ms > 0 ? request.timeout_ms : 10000;
    long connect_timeout = request.connect_timeout_ms > 0 ? std::min<long>(request.connect_timeout_ms, timeout) : timeout;

    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    if (!ca_file_.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy.c_str());
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cmk/0.1 (PostgreSQL encryption at rest; libcurl)");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);

    if (request.method == "GET") {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (request.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (request.method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        // Not COPYPOSTFIELDS: the body may hold a DEK, and a copy inside libcurl
        // would outlive our wiping of it.
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

    CURLcode rc = curl_easy_perform(h);
    // Do not leave pointers to our stack and request in the reused handle.
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);

    if (rc != CURLE_OK) {
        std::string where = url_for_messages(request.url);
        std::string text = errbuf[0] ? trim(errbuf) : curl_easy_strerror(rc);
        std::string curl = " (curl error " + std::to_string(static_cast<int>(rc)) + ")";
        if (transfer.too_large)
            throw Error(ErrorKind::Protocol, "the answer of " + where + " is larger than " +
                                                 std::to_string(kMaxResponseBytes) + " bytes");
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            throw Error(ErrorKind::Transient, request.method + " " + where + " timed out after " + std::to_string(timeout) +
                                                  " ms: " + text + curl);
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
            throw Error(ErrorKind::Config, "TLS certificate of " + parts.host + " could not be verified: " + text + curl, {},
                        ca_file_.empty() ? "If the service uses a private CA, name its bundle in cmk.ca_file."
                                         : "Check that cmk.ca_file (\"" + ca_file_ + "\") holds the CA that issued the server's certificate.");
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            throw Error(ErrorKind::Config, "cannot use URL " + where + ": " + text + curl);
        default:
            throw Error(ErrorKind::Transient, "cannot reach " + where + ": " + text + curl);
        }
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    response.status = status;
    return response;
}

}  // namespace cmk
