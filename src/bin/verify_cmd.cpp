// pg_cmk verify: options, the scan of a data directory or backup, and the
// exit status (verify_cmd.h).
#include "verify_cmd.h"

#include "error.h"
#include "key_store.h"
#include "verify.h"
#include "verify_keys.h"
#include "verify_output.h"

#include <cstdio>
#include <memory>

namespace cmk {

uint32_t parse_verify_sample(const std::string& value) {
    if (value == "all") return 0;
    try {
        size_t used = 0;
        unsigned long n = std::stoul(value, &used);
        if (used == value.size() && n > 0 && n <= 0xFFFFFFFFul) return static_cast<uint32_t>(n);
    } catch (const std::exception&) {
    }
    throw Error(ErrorKind::Config, "--sample needs a positive number of pages per file, or \"all\"");
}

int run_verify(const std::string& datadir, const VerifyArgs& args, const ProviderSettings& settings) {
    VerifyOptions options;
    options.sample = args.sample;
    std::unique_ptr<VerifyKeys> keys;
    if (args.check_keys) {
        OpenedKeys opened = open_existing_keys(datadir, settings);
        keys = std::make_unique<VerifyKeys>(opened);
        options.keys = keys.get();
    }
    VerifyReport report = verify_data_directory(datadir, options);
    VerifyOutputOptions out;
    out.list = args.list;
    out.sample = args.sample;
    if (args.json) print_verify_json(report, out, stdout);
    else print_verify_text(report, out, stdout);
    std::fflush(stdout);
    return verify_exit_status(report);
}

}  // namespace cmk
