// The request pipeline shared by the credentials and the Key Vault provider:
// an HttpClient plus Azure Core's retry policy.
//
// Retry policy (azure-core RetryOptions defaults, retry_policy.cpp): at most 3
// retries; the delay is taken first from the response's retry-after-ms or
// x-ms-retry-after-ms (milliseconds), then Retry-After (seconds, or an HTTP
// date); otherwise 800 ms * 2^(attempt-1) times a jitter factor in
// [0.8, 1.3], capped at 60 s. Retried: transport failures (timeouts,
// connection errors) and the status codes 408, 429, 500, 502, 503, 504.
// cmk adds one bound of its own: all attempts of one provider operation share
// ProviderSettings::retry_total_ms, and no retry is made whose wait would end
// past it.
#pragma once
#include "core_guard.h"

#include "http/http_client.h"
#include "key_provider.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace cmk::azure {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct RetryOptions {
    int max_retries = 3;
    milliseconds retry_delay{800};
    milliseconds max_retry_delay{60000};
    std::set<long> status_codes{408, 429, 500, 502, 503, 504};
};

// The time budget of one provider operation (check_key, wrap, unwrap).
struct Budget {
    SteadyClock::time_point start = SteadyClock::now();
    milliseconds total{60000};
    milliseconds elapsed() const {
        return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
    }
    // Would a wait of `wait` still end within the budget?
    bool allows_wait(milliseconds wait) const { return elapsed() + wait <= total; }
};

// Exponential back-off for the attempt that just failed (1-based), with a
// jitter factor; a factor outside [0.8, 1.3] is replaced by a random one.
milliseconds exponential_delay(const RetryOptions& options, int attempt, double jitter = -1);

// The server-requested delay of a response, if any (retry-after-ms,
// x-ms-retry-after-ms, then Retry-After as seconds or HTTP date relative to
// `now_unix`). Negative or unparsable values are ignored.
std::optional<milliseconds> retry_after_delay(const HttpHeaders& headers, int64_t now_unix);

inline bool retriable_status(const RetryOptions& options, long status) {
    return options.status_codes.count(status) != 0;
}

struct PipelineResult {
    HttpResponse response;
    int attempts = 1;
};

class Pipeline {
public:
    explicit Pipeline(const ProviderSettings& settings, RetryOptions options = {});

    // Sends the request, retrying as above. Returns the last response, which
    // may still carry a retriable status when attempts or budget ran out
    // (see `attempts`). When the last attempt failed in transport, throws its
    // Error(Transient) with the number of attempts and the time spent added.
    // `max_retries` < 0 means the policy's default.
    PipelineResult send(const HttpRequest& request, const Budget& budget, int max_retries = -1);

    Budget new_budget() const;
    int request_timeout_ms() const { return request_timeout_ms_; }
    void log(const std::string& line) const;
    const RetryOptions& options() const { return options_; }

private:
    std::shared_ptr<HttpClient> client_;
    RetryOptions options_;
    int request_timeout_ms_;
    int retry_total_ms_;
    std::function<void(const std::string&)> log_;
};

}  // namespace cmk::azure
