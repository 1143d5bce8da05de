// Redaction of secrets in messages (redaction.h).
#include "azure/redaction.h"

namespace cmk::azure {

std::string redact(std::string text, const std::vector<std::string>& secrets) {
    for (const auto& s : secrets) {
        if (s.size() < 8) continue;
        size_t pos = 0;
        while ((pos = text.find(s, pos)) != std::string::npos) {
            text.replace(pos, s.size(), "[REDACTED]");
            pos += 10;
        }
    }
    return text;
}

}  // namespace cmk::azure
