// Redaction: every message the Key Vault provider throws passes through
// here with the secrets and tokens its credential holds, so that none of
// them can reach a log through an echoing service or a proxy's error page.
#pragma once
#include "core_guard.h"

#include <string>
#include <vector>

namespace cmk::azure {

// Replaces every occurrence of each secret (8 characters or more) by "[REDACTED]".
std::string redact(std::string text, const std::vector<std::string>& secrets);

}  // namespace cmk::azure
