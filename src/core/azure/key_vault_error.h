// Status-to-error mapping for Key Vault: the Error of a failed request
// (status, the service's error code and inner code, x-ms-request-id, and
// what the operator should do), and of a 2xx answer that is malformed.
#pragma once
#include "core_guard.h"

#include "http/http_client.h"

#include <string>

namespace cmk::azure {

// The Key Vault operations cmk uses, with the key permission each needs.
enum class KeyVaultOp { Get, WrapKey, UnwrapKey };
const char* key_vault_op_name(KeyVaultOp op);  // "get", "wrapKey", "unwrapKey"

// The Error of a failed Key Vault request (status other than 2xx); `who`
// describes the identity that signed in.
[[noreturn]] void throw_key_vault_error(const HttpResponse& response, int attempts, KeyVaultOp op, const std::string& key_id,
                                        const std::string& who);

// Error(Protocol) for a 2xx answer about key_id that says `what` is wrong,
// with its status and request id.
[[noreturn]] void throw_malformed_answer(const std::string& what, const HttpResponse& response, const std::string& key_id);

}  // namespace cmk::azure
