// Microsoft Entra token answers and JWT pieces (azure/token_credential.h,
// azure/token_request.h, azure/encoding.h): a token endpoint's JSON (access_token, expires_in or
// expires_on, error bodies), base64url, the tenant list: parse or throw
// cmk::Error.
#include "fuzz_target.h"

#include "azure/encoding.h"
#include "azure/token_credential.h"
#include "azure/token_request.h"
#include "error.h"
#include "http/http_client.h"

#include <string>

CMK_FUZZ_TARGET(token) {
    std::string body(reinterpret_cast<const char*>(data), size);
    auto now = cmk::azure::SystemClock::time_point(std::chrono::seconds(1800000000));
    try {
        cmk::azure::AccessToken t = cmk::azure::parse_token_response(body, now);
        CMK_FUZZ_CHECK(!t.token.empty());
    } catch (const cmk::Error&) {
    }
    for (long status : {200L, 400L, 401L, 429L, 500L}) {
        cmk::HttpResponse r;
        r.status = status;
        r.body = body;
        r.headers.add("x-ms-request-id", "00000000-0000-0000-0000-000000000000");
        try {
            (void) cmk::azure::parse_token_answer(r, "ClientSecretCredential", "https://login.microsoftonline.com/t/oauth2/v2.0/token");
        } catch (const cmk::Error&) {
        }
    }
    // A JWT is three base64url parts.
    size_t a = body.find('.');
    size_t b = a == std::string::npos ? std::string::npos : body.find('.', a + 1);
    for (const std::string& part : {body, body.substr(0, a), a == std::string::npos ? std::string() : body.substr(a + 1, b - a - 1)}) {
        auto decoded = cmk::azure::base64url_decode(part);
        if (decoded) {
            std::string round = cmk::azure::base64url_encode(decoded->data(), decoded->size());
            auto again = cmk::azure::base64url_decode(round);
            CMK_FUZZ_CHECK(again && *again == *decoded);
        }
    }
    (void) cmk::azure::split_tenant_list(body);
    try {
        (void) cmk::azure::authority_host_from(body);
    } catch (const cmk::Error&) {
    }
    return 0;
}
