// The request pipeline: HTTP client plus Azure Core's retry policy (pipeline.h).
#include "azure/pipeline.h"

#include "error.h"

#include <cctype>
#include <ctime>
#include <limits>
#include <random>
#include <thread>

#include <curl/curl.h>

namespace cmk::azure {

namespace {

double random_jitter() {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    std::uniform_real_distribution<double> dist(0.8, 1.3);
    return dist(gen);
}

// A non-negative decimal number (fractions allowed), or nullopt.
std::optional<double> parse_number(const std::string& text) {
    std::string s;
    for (char c : text)
        if (c != ' ' && c != '\t') s += c;
    if (s.empty()) return std::nullopt;
    bool dot = false;
    for (char c : s) {
        if (c == '.' && !dot) {
            dot = true;
            continue;
        }
        if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    }
    try {
        return std::stod(s);
    } catch (...) {
        return std::nullopt;
    }
}

milliseconds clamp_ms(double ms) {
    if (ms < 0) ms = 0;
    if (ms > 24.0 * 3600 * 1000) ms = 24.0 * 3600 * 1000;
    return milliseconds(static_cast<int64_t>(ms));
}

std::string request_id_of(const HttpResponse& r) {
    auto id = r.headers.get("x-ms-request-id");
    return id ? ", request id " + *id : std::string();
}

}  // namespace

milliseconds exponential_delay(const RetryOptions& options, int attempt, double jitter) {
    if (jitter < 0.8 || jitter > 1.3) jitter = random_jitter();
    if (attempt < 1) attempt = 1;
    // 1x RetryDelay after the 1st attempt, 2x after the 2nd, 4x after the 3rd, ...
    double factor = attempt - 1 < 62 ? static_cast<double>(int64_t{1} << (attempt - 1)) : std::numeric_limits<double>::max();
    double ms = static_cast<double>(options.retry_delay.count()) * factor * jitter;
    double cap = static_cast<double>(options.max_retry_delay.count());
    return milliseconds(static_cast<int64_t>(ms < cap ? ms : cap));
}

std::optional<milliseconds> retry_after_delay(const HttpHeaders& headers, int64_t now_unix) {
    for (const char* name : {"retry-after-ms", "x-ms-retry-after-ms"}) {
        if (auto v = headers.get(name)) {
            if (auto n = parse_number(*v)) return clamp_ms(*n);
        }
    }
    if (auto v = headers.get("retry-after")) {
        if (auto n = parse_number(*v)) return clamp_ms(*n * 1000.0);
        // RFC 9110 section 10.2.3: Retry-After = HTTP-date / delay-seconds.
        time_t when = curl_getdate(v->c_str(), nullptr);
        if (when != static_cast<time_t>(-1)) return clamp_ms((static_cast<double>(when) - static_cast<double>(now_unix)) * 1000.0);
    }
    return std::nullopt;
}

Pipeline::Pipeline(const ProviderSettings& settings, RetryOptions options)
    : client_(std::make_shared<HttpClient>(settings.ca_file)),
      options_(std::move(options)),
      request_timeout_ms_(settings.request_timeout_ms > 0 ? settings.request_timeout_ms : 10000),
      retry_total_ms_(settings.retry_total_ms >= 0 ? settings.retry_total_ms : 60000),
      log_(settings.log) {}

Budget Pipeline::new_budget() const {
    Budget b;
    b.total = milliseconds(retry_total_ms_);
    return b;
}

void Pipeline::log(const std::string& line) const {
    if (log_) log_(line);
}

PipelineResult Pipeline::send(const HttpRequest& request, const Budget& budget, int max_retries) {
    if (max_retries < 0) max_retries = options_.max_retries;
    const std::string what = request.method + " " + url_for_messages(request.url);
    for (int attempt = 1;; ++attempt) {
        milliseconds wait{0};
        std::string reason;
        try {
            HttpResponse response = client_->send(request);
            if (!retriable_status(options_, response.status) || attempt > max_retries)
                return PipelineResult{std::move(response), attempt};
            auto server_wait = retry_after_delay(response.headers, static_cast<int64_t>(std::time(nullptr)));
            wait = server_wait ? *server_wait : exponential_delay(options_, attempt);
            // The transport errors' own text names the method and URL already.
            reason = what + ": HTTP " + std::to_string(response.status) + request_id_of(response) +
                     (server_wait ? ", server asked to retry after " + std::to_string(server_wait->count()) + " ms" : "");
            if (!budget.allows_wait(wait)) {
                log("cmk: " + reason + "; not retrying: the wait of " + std::to_string(wait.count()) +
                    " ms would exceed the retry budget of " + std::to_string(budget.total.count()) + " ms");
                return PipelineResult{std::move(response), attempt};
            }
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::Transient) throw;
            std::string spent = " (" + std::to_string(attempt) + (attempt == 1 ? " attempt" : " attempts") + " in " +
                                std::to_string(budget.elapsed().count()) + " ms)";
            if (attempt > max_retries) throw Error(ErrorKind::Transient, e.what() + spent, e.detail(), e.hint());
            wait = exponential_delay(options_, attempt);
            reason = e.what();
            if (!budget.allows_wait(wait)) {
                log("cmk: " + reason + "; not retrying: the wait of " + std::to_string(wait.count()) +
                    " ms would exceed the retry budget of " + std::to_string(budget.total.count()) + " ms");
                throw Error(ErrorKind::Transient, e.what() + spent, e.detail(), e.hint());
            }
        }
        log("cmk: " + reason + "; retry " + std::to_string(attempt) + " of " + std::to_string(max_retries) + " in " +
            std::to_string(wait.count()) + " ms");
        if (wait.count() > 0) std::this_thread::sleep_for(wait);
    }
}

}  // namespace cmk::azure
