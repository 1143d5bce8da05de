// pg_cmk: offline work on a cmk data directory, no server needed.
//   pg_cmk keyring -D DATADIR [--check]
//   pg_cmk wal encrypt -D DATADIR [WALDIR]
//   pg_cmk wal decrypt -D DATADIR [WALDIR] [-o OUTDIR]
//   pg_cmk verify -D DATADIR [--check-keys [--sample N|all]] [--list] [--json]
//   pg_cmk exec [--keyring FILE] [--auth M] [--ca-file F] -- TOOL [ARGS...]
//   cmk_TOOL [ARGS...]   (pg_cmk under another name: pg_cmk exec -- TOOL)
//   $pkglibdir/cmk/bin/TOOL   (the same, for HA managers given a bin dir)
// The keys come from DATADIR/pg_cmk/keyring, unwrapped by the KEK the
// keyring names (a file KEK, or Key Vault with the AZURE_* environment).
#include "azure/azure_environment.h"
#include "error.h"
#include "key_store.h"
#include "verify_cmd.h"
#include "verify_control.h"
#include "wal_files.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <ctime>
#include <string>
#include <vector>

namespace {

const char* kUsage =
    "pg_cmk: offline tool for cmk-encrypted PostgreSQL data directories\n"
    "\n"
    "Usage:\n"
    "  pg_cmk keyring -D DATADIR [--check]      show the keyring (no key material); --check unwraps it\n"
    "  pg_cmk wal encrypt -D DATADIR [WALDIR]   encrypt in place every plaintext WAL page in WALDIR\n"
    "                                           (default DATADIR/pg_wal), e.g. after pg_basebackup -X stream\n"
    "                                           or pg_receivewal, or after pg_rewind\n"
    "  pg_cmk wal decrypt -D DATADIR [WALDIR] [-o OUTDIR]\n"
    "                                           decrypt WAL pages in place, or into copies in OUTDIR\n"
    "                                           (for pg_waldump -p OUTDIR, or before pg_rewind)\n"
    "  pg_cmk verify -D DATADIR [--check-keys [--sample N|all]] [--list] [--json]\n"
    "                                           report what is encrypted in a stopped data directory or a\n"
    "                                           backup, per file class; exit 3 if anything that should be\n"
    "                                           encrypted is not, 4 if --check-keys finds a page or file that\n"
    "                                           does not decrypt to what PostgreSQL wrote\n"
    "  pg_cmk exec [--keyring FILE] [--auth M] [--ca-file F] -- TOOL [ARGS...]\n"
    "                                           run a PostgreSQL tool (pg_basebackup, pg_receivewal,\n"
    "                                           pg_rewind, pg_waldump, pg_verifybackup) so that the WAL it\n"
    "                                           reads is decrypted and the WAL it writes encrypted, with the\n"
    "                                           keyring of the data directory or backup (--keyring for\n"
    "                                           pg_receivewal's directory); also as cmk_TOOL (a link to\n"
    "                                           pg_cmk named so)\n"
    "\n"
    "Options for Azure Key Vault KEKs (credentials come from AZURE_* variables):\n"
    "  --auth METHOD       default, client-secret, client-certificate, managed-identity, workload-identity\n"
    "  --ca-file FILE      extra CA certificates for Key Vault and sign-in\n";

struct Args {
    std::vector<std::string> words;
    std::string datadir, out_dir;
    bool check = false;
    cmk::VerifyArgs verify;
    cmk::ProviderSettings settings;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; i++) {
        std::string s = argv[i];
        auto value = [&](const char* opt) {
            if (i + 1 >= argc) throw cmk::Error(cmk::ErrorKind::Config, std::string(opt) + " needs a value");
            return std::string(argv[++i]);
        };
        if (s == "-D" || s == "--pgdata") a.datadir = value("-D");
        else if (s == "-o" || s == "--output") a.out_dir = value("-o");
        else if (s == "--check") a.check = true;
        else if (s == "--check-keys") a.verify.check_keys = true;
        else if (s == "--list") a.verify.list = true;
        else if (s == "--json") a.verify.json = true;
        else if (s == "--sample") a.verify.sample = cmk::parse_verify_sample(value("--sample"));
        else if (s == "--auth") a.settings.auth = value("--auth");
        else if (s == "--ca-file") a.settings.ca_file = value("--ca-file");
        else if (s == "-h" || s == "--help") { std::fputs(kUsage, stdout); std::exit(0); }
        else if (!s.empty() && s[0] == '-') throw cmk::Error(cmk::ErrorKind::Config, "unknown option " + s);
        else a.words.push_back(s);
    }
    if (a.datadir.empty()) {
        const char* env = std::getenv("PGDATA");
        if (env) a.datadir = env;
    }
    if (a.datadir.empty()) throw cmk::Error(cmk::ErrorKind::Config, "no data directory: use -D DATADIR or set PGDATA");
    return a;
}

std::string when(uint64_t t) {
    std::time_t tt = static_cast<std::time_t>(t);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&tt));
    return buf;
}

int show_keyring(const Args& a) {
    std::string path = cmk::keyring_path(a.datadir);
    auto file = cmk::read_file_if_exists(path);
    if (!file) throw cmk::Error(cmk::ErrorKind::KeyringCorrupt, "there is no keyring at \"" + path + "\"");
    cmk::Keyring k = cmk::decode_keyring(*file);
    std::printf("keyring: %s (format %u, %zu bytes)\n", path.c_str(), cmk::kKeyringFormatVersion, file->size());
    std::printf("current generation: %u\n", k.current_generation);
    for (const auto& e : k.entries) {
        std::printf("generation %u%s: created %s, KEK %s version %s, %s, wrapped DEK %zu bytes\n", e.generation,
                    e.generation == k.current_generation ? " (current)" : "", when(e.created_at).c_str(),
                    e.wrapped.kek_base.c_str(), e.wrapped.kek_version.c_str(), e.wrapped.algorithm.c_str(),
                    e.wrapped.wrapped.size());
    }
    if (a.check) {
        cmk::OpenedKeys keys = cmk::open_existing_keys(a.datadir, a.settings);
        std::printf("check: every generation unwraps with its KEK, key check values and MAC verified (%zu generations)\n",
                    keys.generations.size());
    }
    return 0;
}

int wal(const Args& a) {
    if (a.words.size() < 2 || (a.words[1] != "encrypt" && a.words[1] != "decrypt"))
        throw cmk::Error(cmk::ErrorKind::Config, "use: pg_cmk wal encrypt|decrypt -D DATADIR [WALDIR]");
    std::string dir = a.words.size() > 2 ? a.words[2] : a.datadir + "/pg_wal";
    cmk::OpenedKeys keys = cmk::open_existing_keys(a.datadir, a.settings);
    // The data directory's own pg_wal: WAL before its redo point is not needed by its recovery.
    uint64_t redo = a.words.size() > 2 ? 0 : cmk::read_control_info(a.datadir).checkpoint_redo;
    cmk::WalDirStats st = a.words[1] == "encrypt" ? cmk::encrypt_wal_dir(keys, dir)
                                                  : cmk::decrypt_wal_dir(keys, dir, a.out_dir, redo);
    std::printf("%s: %zu segment files, %zu pages %s, %zu already %s, %zu empty or not WAL", dir.c_str(), st.files,
                st.pages_changed, a.words[1] == "encrypt" ? "encrypted" : "decrypted", st.pages_already,
                a.words[1] == "encrypt" ? "encrypted" : "plaintext", st.pages_other);
    if (st.pages_stale) std::printf(", %zu stale (recycled) left as stored", st.pages_stale);
    if (st.pages_unneeded)
        std::printf(", %zu of retired key generations before the redo point (not needed for recovery) left as stored",
                    st.pages_unneeded);
    std::printf("\n");
    return 0;
}

// The tools the front-end library serves.
const char* const kFrontendTools[] = {"pg_basebackup", "pg_receivewal", "pg_rewind", "pg_waldump", "pg_verifybackup"};

std::string dir_of_self() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw cmk::Error(cmk::ErrorKind::Io, "cannot find pg_cmk's own path");
    buf[n] = '\0';
    std::string p = buf;
    return p.substr(0, p.rfind('/'));
}

// Runs TOOL with the front-end library preloaded (DESIGN.md "Front-end
// tools"): PostgreSQL's tool of that name beside pg_cmk, else from PATH.
[[noreturn]] void exec_tool(const std::string& tool, char** tool_argv) {
    std::string bindir = dir_of_self();
    std::string lib;
    if (const char* l = std::getenv("CMK_FRONTEND_LIB"); l && *l) lib = l;
    else lib = bindir.substr(0, bindir.rfind('/')) + "/lib/cmk_frontend.so";
    if (::access(lib.c_str(), R_OK) != 0)
        throw cmk::Error(cmk::ErrorKind::Config, "cannot find the front-end library \"" + lib + "\"", {},
                         "Install cmk completely (the package, or make install), or set CMK_FRONTEND_LIB.");
    std::string preload = lib;
    if (const char* old = std::getenv("LD_PRELOAD"); old && *old) preload += ":" + std::string(old);
    ::setenv("LD_PRELOAD", preload.c_str(), 1);
    std::string path = tool;
    if (tool.find('/') == std::string::npos && ::access((bindir + "/" + tool).c_str(), X_OK) == 0)
        path = bindir + "/" + tool;
    // PostgreSQL's tools find their siblings (pg_rewind's postgres) from argv[0].
    tool_argv[0] = const_cast<char*>(path.c_str());
    if (path.find('/') != std::string::npos) ::execv(path.c_str(), tool_argv);
    else ::execvp(path.c_str(), tool_argv);
    throw cmk::Error(cmk::ErrorKind::Io, "cannot run \"" + path + "\": " + std::strerror(errno));
}

int exec_command(int argc, char** argv) {
    int i = 2;
    for (; i < argc; i++) {
        std::string s = argv[i];
        auto value = [&](const char* opt) {
            if (i + 1 >= argc) throw cmk::Error(cmk::ErrorKind::Config, std::string(opt) + " needs a value");
            return argv[++i];
        };
        if (s == "--") { i++; break; }
        if (s == "--keyring") ::setenv("CMK_KEYRING", value("--keyring"), 1);
        else if (s == "--auth") ::setenv("CMK_AUTH", value("--auth"), 1);
        else if (s == "--ca-file") ::setenv("CMK_CA_FILE", value("--ca-file"), 1);
        else if (!s.empty() && s[0] == '-') throw cmk::Error(cmk::ErrorKind::Config, "unknown option " + s);
        else break;
    }
    if (i >= argc) throw cmk::Error(cmk::ErrorKind::Config, "use: pg_cmk exec [options] -- TOOL [ARGS...]");
    if (const char* k = std::getenv("CMK_KEYRING"); k && *k && ::access(k, R_OK) != 0)
        throw cmk::Error(cmk::ErrorKind::Config, std::string("cannot read the keyring \"") + k + "\": " + std::strerror(errno));
    exec_tool(argv[i], argv + i);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        std::string self = argv[0];
        self = self.substr(self.rfind('/') == std::string::npos ? 0 : self.rfind('/') + 1);
        // cmk_TOOL, or TOOL itself from the manager bin directory
        // ($pkglibdir/cmk/bin) an HA manager is pointed at.
        bool is_tool = false;
        for (const char* t : kFrontendTools) is_tool = is_tool || self == t;
        if ((self.rfind("cmk_", 0) == 0 && self.size() > 4) || is_tool) {
            std::string tool = is_tool ? self : self.substr(4);
            argv[0] = const_cast<char*>(tool.c_str());
            exec_tool(tool, argv);
        }
        if (argc > 1 && std::strcmp(argv[1], "exec") == 0) return exec_command(argc, argv);
        Args a = parse(argc, argv);
        // pg_cmk signs in with its own environment (the server uses the copy
        // its postmaster took).
        a.settings.environment = cmk::azure::process_environment();
        if (a.words.empty()) {
            std::fputs(kUsage, stderr);
            return 2;
        }
        if (a.words[0] == "keyring") return show_keyring(a);
        if (a.words[0] == "wal") return wal(a);
        if (a.words[0] == "verify") {
            if (a.words.size() > 1) throw cmk::Error(cmk::ErrorKind::Config, "use: pg_cmk verify -D DATADIR [options]");
            return cmk::run_verify(a.datadir, a.verify, a.settings);
        }
        throw cmk::Error(cmk::ErrorKind::Config, "unknown command \"" + a.words[0] + "\" (see pg_cmk --help)");
    } catch (const cmk::Error& e) {
        std::fprintf(stderr, "pg_cmk: error: %s\n", e.what());
        if (!e.detail().empty()) std::fprintf(stderr, "pg_cmk: detail: %s\n", e.detail().c_str());
        if (!e.hint().empty()) std::fprintf(stderr, "pg_cmk: hint: %s\n", e.hint().c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pg_cmk: error: %s\n", e.what());
        return 1;
    }
}
