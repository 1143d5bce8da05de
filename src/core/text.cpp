// Small text helpers (text.h).
#include "text.h"

#include <cctype>

namespace cmk {

std::string ascii_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool equals_ci(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

bool contains_ci(const std::string& haystack, const std::string& needle) {
    return ascii_lower(haystack).find(ascii_lower(needle)) != std::string::npos;
}

std::string first_line(const std::string& s, size_t max) {
    std::string out = s.substr(0, s.find_first_of("\r\n"));
    if (out.size() > max) out = out.substr(0, max) + "...";
    return out;
}

}  // namespace cmk
