// The names of the error categories, and OpenSSL's errors as Errors (error.h).
#include "error.h"

#include <openssl/err.h>

namespace cmk {

const char* error_kind_name(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::Config: return "configuration";
    case ErrorKind::KeyUnavailable: return "key unavailable";
    case ErrorKind::WrongKey: return "wrong key";
    case ErrorKind::KeyringCorrupt: return "keyring corrupt";
    case ErrorKind::Transient: return "transient";
    case ErrorKind::Protocol: return "protocol";
    case ErrorKind::Io: return "i/o";
    case ErrorKind::Crypto: return "crypto";
    case ErrorKind::Internal: return "internal";
    }
    return "unknown";
}

void throw_openssl_error(const std::string& what) {
    std::string text;
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!text.empty()) text += "; ";
        text += buf;
    }
    throw Error(ErrorKind::Crypto, what + (text.empty() ? "" : ": " + text));
}

}  // namespace cmk
