// pg_cmk verify's output: a table for people, JSON for programs.
#pragma once

#include "verify.h"

#include <cstdio>

namespace cmk {

struct VerifyOutputOptions {
    bool list = false;     // every relation file and WAL segment with plaintext pages
    uint32_t sample = 0;   // as used, for the header
};

void print_verify_text(const VerifyReport& report, const VerifyOutputOptions& options, std::FILE* out);
void print_verify_json(const VerifyReport& report, const VerifyOutputOptions& options, std::FILE* out);

}  // namespace cmk
