// Small text helpers the core uses in several places (case-insensitive
// comparison of host names, key names and header names; one-line excerpts
// of a service's message), written once here.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <string>

namespace cmk {

// ASCII lower case (host names, key names, header names, scheme names are
// ASCII; no locale is consulted).
std::string ascii_lower(std::string s);
bool equals_ci(const std::string& a, const std::string& b);
bool contains_ci(const std::string& haystack, const std::string& needle);

// The text up to its first line break, cut at `max` characters with "..."
// (a service's message quoted in an error).
std::string first_line(const std::string& s, size_t max = 300);

}  // namespace cmk
