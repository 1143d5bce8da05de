// pg_cmk verify: the coverage report of a stopped data directory or a
// backup (src/core/verify.h), printed as a table or JSON.
#pragma once

#include "key_provider.h"

#include <cstdint>
#include <string>

namespace cmk {

struct VerifyArgs {
    bool check_keys = false;  // open the keyring, decrypt samples, check checksums
    uint32_t sample = 64;     // encrypted pages decrypted per file; 0 = all
    bool list = false;
    bool json = false;
};

uint32_t parse_verify_sample(const std::string& value);
// The exit status: 0, 3 (plaintext) or 4 (key check failed); throws Error.
int run_verify(const std::string& datadir, const VerifyArgs& args, const ProviderSettings& settings);

}  // namespace cmk
