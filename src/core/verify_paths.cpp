// Which files of a data directory belong to which file class (verify_paths.h).
#include "verify_paths.h"

#include <cctype>

namespace cmk {

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }
bool hexdigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Reads digits at s[pos...] into *out (at most 10 digits, within uint32).
bool read_number(const std::string& s, size_t& pos, uint32_t* out) {
    size_t start = pos;
    uint64_t v = 0;
    while (pos < s.size() && digit(s[pos])) {
        v = v * 10 + static_cast<uint64_t>(s[pos] - '0');
        if (v > 0xFFFFFFFFull) return false;
        pos++;
    }
    if (pos == start) return false;
    if (out) *out = static_cast<uint32_t>(v);
    return true;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool all_hex(const std::string& s, size_t from, size_t n) {
    if (s.size() < from + n) return false;
    for (size_t i = from; i < from + n; i++)
        if (!hexdigit(s[i])) return false;
    return true;
}

}  // namespace

std::optional<RelationFileName> parse_relation_file_name(const std::string& name) {
    RelationFileName r;
    size_t pos = 0;
    if (!name.empty() && name[0] == 't') {
        pos = 1;
        if (!read_number(name, pos, nullptr) || pos >= name.size() || name[pos] != '_') return std::nullopt;
        pos++;
        r.temporary = true;
    }
    if (!read_number(name, pos, &r.relfilenode)) return std::nullopt;
    if (pos < name.size() && name[pos] == '_') {
        for (const char* fork : {"_fsm", "_vm", "_init"}) {
            std::string f = fork;
            if (name.compare(pos, f.size(), f) == 0) {
                r.fork = f;
                pos += f.size();
                break;
            }
        }
        if (r.fork.empty()) return std::nullopt;
    }
    r.relation = name.substr(0, pos);
    if (pos < name.size() && name[pos] == '.') {
        pos++;
        if (!read_number(name, pos, &r.segment)) return std::nullopt;
    }
    if (pos != name.size()) return std::nullopt;
    return r;
}

bool is_wal_segment_file_name(const std::string& name) {
    std::string base = ends_with(name, ".partial") ? name.substr(0, name.size() - 8) : name;
    return base.size() == 24 && all_hex(base, 0, 24);
}

bool is_twophase_file_name(const std::string& name) {
    if (name.size() == 8) return all_hex(name, 0, 8);
    return name.size() == 12 && ends_with(name, ".tmp") && all_hex(name, 0, 8);
}

bool is_spill_file_name(const std::string& name) { return name.size() > 6 && ends_with(name, ".spill"); }

bool is_slru_segment_name(const std::string& name) { return name.size() >= 4 && name.size() <= 6 && all_hex(name, 0, name.size()); }

bool is_tablespace_version_dir(const std::string& name) { return name.rfind("PG_15_", 0) == 0; }

}  // namespace cmk
