// pg_cmk verify's table and JSON output (verify_output.h).
#include "verify_output.h"

#include <map>
#include <string>
#include <vector>

namespace cmk {

namespace {

std::string num(uint64_t v) { return std::to_string(v); }

// "global", "base/5", "pg_tblspc/16385/PG_15_202209061/5": the directory of a path.
std::string dir_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

const char* column(bool shown, const std::string& value, std::string& keep) {
    keep = shown ? value : "-";
    return keep.c_str();
}

std::string block_text(const VerifyProblem& p) {
    return p.block < 0 ? std::string() : " block " + std::to_string(p.block);
}

// "data pages", "WAL pages", "two-phase files", ...
const char* units_label(VerifyClass c) {
    switch (c) {
    case VerifyClass::DataPages: return "data pages";
    case VerifyClass::Wal: return "WAL pages";
    case VerifyClass::PgsqlTmp: return "pgsql_tmp files";
    case VerifyClass::ReplslotSpill: return "spill files";
    case VerifyClass::TwoPhase: return "two-phase files";
    case VerifyClass::PgssQueryTexts: return "pg_stat_statements query text files";
    case VerifyClass::PgssDump: return "pg_stat_statements dump files";
    case VerifyClass::NotifyQueue: return "NOTIFY queue files";
    }
    return "units";
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out + "\"";
}

std::string json_counts(const UnitCounts& u) {
    return "\"encrypted\": " + num(u.encrypted) + ", \"plaintext\": " + num(u.plaintext) + ", \"empty\": " +
           num(u.empty) + ", \"unmarked\": " + num(u.unmarked);
}

std::string verdict(const VerifyReport& r) {
    int status = verify_exit_status(r);
    if (status == kVerifyExitCheckFailed) return "check failed";
    if (status == kVerifyExitPlaintext) return "plaintext found";
    return "encrypted";
}

}  // namespace

void print_verify_text(const VerifyReport& r, const VerifyOutputOptions& opt, std::FILE* out) {
    std::fprintf(out, "pg_cmk verify: %s\n", r.datadir.c_str());
    std::fprintf(out, "  data checksums: %s\n",
                 !r.control.found ? "unknown (no usable pg_control), assumed off" : r.control.data_checksums ? "on" : "off");
    if (!r.keyring_present)
        std::fprintf(out, "  keyring: none (no server with cmk has started on this data directory)\n");
    else if (!r.keyring_problem.empty())
        std::fprintf(out, "  keyring: present but unreadable: %s\n", r.keyring_problem.c_str());
    else
        std::fprintf(out, "  keyring: present, current key generation %u\n", r.keyring_current_generation);
    if (r.keys_checked) {
        std::string sample = opt.sample == 0 ? "every encrypted page" : "up to " + num(opt.sample) + " encrypted pages per file";
        std::fprintf(out,
                     "  key check: done (%s): %llu data pages and %llu WAL pages decrypted, %llu checksums verified, "
                     "%llu files decrypted\n",
                     sample.c_str(), (unsigned long long) r.checks.data_pages_decrypted,
                     (unsigned long long) r.checks.wal_pages_decrypted, (unsigned long long) r.checks.checksums_verified,
                     (unsigned long long) r.checks.files_decrypted);
    } else {
        std::fprintf(out, "  key check: not done (counting marks needs no key; --check-keys also decrypts samples)\n");
    }
    if (r.postmaster_pid)
        std::fprintf(out, "  WARNING: postmaster.pid exists: if a server is running, pages in its shared buffers are not on "
                          "disk yet; stop it, or use SELECT * FROM cmk_verify() after CHECKPOINT\n");

    std::fprintf(out, "\n%-17s %-4s %7s %14s %10s %10s %10s %9s\n", "class", "unit", "files", "bytes", "encrypted",
                 "plaintext", "empty", "unmarked");
    for (VerifyClass c : kAllVerifyClasses) {
        const VerifyClassTotals& t = r.totals(c);
        bool marked = verify_class_is_marked(c);
        std::string a, b, d;
        std::fprintf(out, "%-17s %-4s %7llu %14llu %10s %10s %10llu %9s\n", verify_class_name(c), verify_class_unit(c),
                     (unsigned long long) t.files, (unsigned long long) t.bytes,
                     column(marked, num(t.units.encrypted), a), column(marked, num(t.units.plaintext), b),
                     (unsigned long long) t.units.empty, column(!marked, num(t.units.unmarked), d));
    }
    for (VerifyClass c : {VerifyClass::DataPages, VerifyClass::Wal}) {
        const auto& g = r.totals(c).generations;
        if (g.empty()) continue;
        std::fprintf(out, "  %s by key generation:", verify_class_name(c));
        for (const auto& [gen, n] : g) std::fprintf(out, " %u: %llu", gen, (unsigned long long) n);
        std::fprintf(out, "\n");
    }

    // Plaintext by directory, then (--list) by relation file and WAL segment.
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_dir;  // files, pages
    std::vector<const VerifyFile*> plaintext_files;
    for (const VerifyFile& f : r.files) {
        if (!verify_class_is_marked(f.cls) || f.units.plaintext == 0) continue;
        plaintext_files.push_back(&f);
        if (f.cls == VerifyClass::DataPages) {
            auto& d = by_dir[dir_of(f.path)];
            d.first++;
            d.second += f.units.plaintext;
        }
    }
    if (!by_dir.empty()) {
        std::fprintf(out, "\nPlaintext data pages by directory (written before cmk was loaded, until rewritten):\n");
        for (const auto& [dir, n] : by_dir)
            std::fprintf(out, "  %-40s %6llu relation files %10llu pages\n", dir.c_str(), (unsigned long long) n.first,
                         (unsigned long long) n.second);
    }
    {
        uint64_t segments = 0;
        for (const VerifyFile* f : plaintext_files) segments += f->cls == VerifyClass::Wal;
        if (segments > 0)
            std::fprintf(out, "\nPlaintext WAL: %llu pages in %llu segment%s (written before cmk was loaded; they stay until "
                              "the segment is reused, or pg_cmk wal encrypt)\n",
                         (unsigned long long) r.totals(VerifyClass::Wal).units.plaintext, (unsigned long long) segments,
                         segments == 1 ? "" : "s");
        for (const VerifyFile* f : plaintext_files)
            if (f->cls != VerifyClass::DataPages && f->cls != VerifyClass::Wal)
                std::fprintf(out, "\nPlaintext %s: %s\n", units_label(f->cls), f->path.c_str());
    }
    if (!plaintext_files.empty()) {
        if (opt.list) {
            std::fprintf(out, "\nFiles with plaintext units (%zu):\n", plaintext_files.size());
            std::fprintf(out, "  %-17s %-50s %10s %10s %10s\n", "class", "path", "encrypted", "plaintext", "empty");
            for (const VerifyFile* f : plaintext_files)
                std::fprintf(out, "  %-17s %-50s %10llu %10llu %10llu\n", verify_class_name(f->cls), f->path.c_str(),
                             (unsigned long long) f->units.encrypted, (unsigned long long) f->units.plaintext,
                             (unsigned long long) f->units.empty);
        } else {
            std::fprintf(out, "  (%zu %s plaintext units: --list names %s)\n", plaintext_files.size(),
                         plaintext_files.size() == 1 ? "file holds" : "files hold", plaintext_files.size() == 1 ? "it" : "them");
        }
    }

    if (r.problem_count > 0) {
        std::fprintf(out, "\nProblems found by the key check (%llu%s):\n", (unsigned long long) r.problem_count,
                     r.problems.size() < r.problem_count ? ", first ones shown" : "");
        for (const VerifyProblem& p : r.problems)
            std::fprintf(out, "  %s%s: %s\n", p.path.c_str(), block_text(p).c_str(), p.what.c_str());
    }
    if (!r.notes.empty()) {
        std::fprintf(out, "\nNotes:\n");
        for (const std::string& n : r.notes) std::fprintf(out, "  %s\n", n.c_str());
    }

    int status = verify_exit_status(r);
    std::fprintf(out, "\nResult: ");
    if (status == kVerifyExitCheckFailed)
        std::fprintf(out, "CHECK FAILED: %llu encrypted pages or files do not decrypt to what PostgreSQL wrote "
                          "(tampering, corruption or a wrong keyring)",
                     (unsigned long long) r.problem_count);
    if (status != kVerifyExitOk && verify_plaintext_units(r) > 0) {
        if (status == kVerifyExitCheckFailed) std::fprintf(out, "; and ");
        const char* sep = "";
        std::fprintf(out, "PLAINTEXT: ");
        for (VerifyClass c : kAllVerifyClasses) {
            if (!verify_class_is_marked(c) || r.totals(c).units.plaintext == 0) continue;
            std::fprintf(out, "%s%llu %s", sep, (unsigned long long) r.totals(c).units.plaintext, units_label(c));
            sep = ", ";
        }
        std::fprintf(out, " are not encrypted. What was written before cmk was first loaded stays plaintext until the "
                          "sweep rewrites it (SELECT * FROM cmk_sweep_progress) or, for WAL, until its segment is reused "
                          "or pg_cmk wal encrypt -D DATADIR runs on the stopped cluster");
    }
    if (status == kVerifyExitOk) std::fprintf(out, "everything that carries a mark is encrypted");
    std::fprintf(out, " (exit %d)\n", status);
}

void print_verify_json(const VerifyReport& r, const VerifyOutputOptions& opt, std::FILE* out) {
    std::fprintf(out, "{\n  \"data_directory\": %s,\n", json_string(r.datadir).c_str());
    std::fprintf(out, "  \"pg_control\": {\"found\": %s, \"data_checksums\": %s, \"relseg_size\": %u},\n",
                 r.control.found ? "true" : "false", r.control.data_checksums ? "true" : "false", r.control.relseg_size);
    std::fprintf(out, "  \"keyring\": {\"present\": %s, \"current_generation\": %u, \"problem\": %s},\n",
                 r.keyring_present ? "true" : "false", r.keyring_current_generation,
                 r.keyring_problem.empty() ? "null" : json_string(r.keyring_problem).c_str());
    std::fprintf(out, "  \"postmaster_pid\": %s,\n", r.postmaster_pid ? "true" : "false");
    std::fprintf(out,
                 "  \"check_keys\": {\"done\": %s, \"sample\": %u, \"data_pages_decrypted\": %llu, \"checksums_verified\": "
                 "%llu, \"wal_pages_decrypted\": %llu, \"files_decrypted\": %llu},\n",
                 r.keys_checked ? "true" : "false", opt.sample, (unsigned long long) r.checks.data_pages_decrypted,
                 (unsigned long long) r.checks.checksums_verified, (unsigned long long) r.checks.wal_pages_decrypted,
                 (unsigned long long) r.checks.files_decrypted);
    std::fprintf(out, "  \"classes\": {\n");
    for (size_t i = 0; i < kAllVerifyClasses.size(); i++) {
        VerifyClass c = kAllVerifyClasses[i];
        const VerifyClassTotals& t = r.totals(c);
        std::string gens;
        for (const auto& [g, n] : t.generations) gens += (gens.empty() ? "\"" : ", \"") + num(g) + "\": " + num(n);
        std::fprintf(out, "    %s: {\"unit\": \"%s\", \"marked\": %s, \"files\": %llu, \"bytes\": %llu, %s, \"generations\": {%s}}%s\n",
                     json_string(verify_class_name(c)).c_str(), verify_class_unit(c),
                     verify_class_is_marked(c) ? "true" : "false", (unsigned long long) t.files,
                     (unsigned long long) t.bytes, json_counts(t.units).c_str(), gens.c_str(),
                     i + 1 < kAllVerifyClasses.size() ? "," : "");
    }
    std::fprintf(out, "  },\n  \"files\": [");
    for (size_t i = 0; i < r.files.size(); i++) {
        const VerifyFile& f = r.files[i];
        std::fprintf(out, "%s\n    {\"class\": \"%s\", \"path\": %s, \"files\": %llu, \"bytes\": %llu, %s}", i ? "," : "",
                     verify_class_name(f.cls), json_string(f.path).c_str(), (unsigned long long) f.files,
                     (unsigned long long) f.bytes, json_counts(f.units).c_str());
    }
    std::fprintf(out, "\n  ],\n  \"problems\": [");
    for (size_t i = 0; i < r.problems.size(); i++) {
        const VerifyProblem& p = r.problems[i];
        std::fprintf(out, "%s\n    {\"class\": \"%s\", \"path\": %s, \"block\": %lld, \"what\": %s}", i ? "," : "",
                     verify_class_name(p.cls), json_string(p.path).c_str(), (long long) p.block, json_string(p.what).c_str());
    }
    std::fprintf(out, "\n  ],\n  \"problem_count\": %llu,\n  \"notes\": [", (unsigned long long) r.problem_count);
    for (size_t i = 0; i < r.notes.size(); i++) std::fprintf(out, "%s%s", i ? ", " : "", json_string(r.notes[i]).c_str());
    std::fprintf(out, "],\n  \"plaintext_units\": %llu,\n  \"verdict\": \"%s\",\n  \"exit_status\": %d\n}\n",
                 (unsigned long long) verify_plaintext_units(r), verdict(r).c_str(), verify_exit_status(r));
}

}  // namespace cmk
