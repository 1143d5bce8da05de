// The one exception type of the core. Every failure an operator can meet
// carries a category (what kind of problem, so callers can decide between
// "retry", "refuse to start" and "inaccessible"), a message, and where it
// helps a detail and a hint (mapped to errdetail/errhint by the glue).
#pragma once
#include "core_guard.h"

#include <stdexcept>
#include <string>

namespace cmk {

enum class ErrorKind {
    Config,          // a setting is empty, malformed or names something unusable
    KeyUnavailable,  // the KEK is missing, disabled, expired, denied: a definite "no"
    WrongKey,        // the KEK exists but is not the one that wrapped the keyring
    KeyringCorrupt,  // the keyring is truncated, tampered or of an unknown version
    Transient,       // timeouts, connection errors, 429, 5xx: worth retrying
    Protocol,        // a malformed or unexpected answer from a key service
    Io,              // a local file could not be read or written
    Crypto,          // OpenSSL refused an operation
    Internal,
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message, std::string detail = {}, std::string hint = {})
        : std::runtime_error(message), kind_(kind), detail_(std::move(detail)), hint_(std::move(hint)) {}
    ErrorKind kind() const { return kind_; }
    const std::string& detail() const { return detail_; }
    const std::string& hint() const { return hint_; }

private:
    ErrorKind kind_;
    std::string detail_;
    std::string hint_;
};

// Throws Error(ErrorKind::Crypto) with OpenSSL's queued error text appended.
[[noreturn]] void throw_openssl_error(const std::string& what);

}  // namespace cmk
