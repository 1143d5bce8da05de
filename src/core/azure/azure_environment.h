// Where the Azure credentials read their configuration: the AZURE_* (and
// IDENTITY_*) variables handed to the core in ProviderSettings::environment,
// never getenv(). The server's postmaster copies them from its environment
// once, at start, into locked memory and removes the secret ones from the
// environment before any child is forked (src/pg/keys/credentials.c), so
// backends, archive_command, restore_command and COPY ... PROGRAM never see
// them; pg_cmk passes its own environment (process_environment()). Never
// postgresql.conf: secrets stay out of the server's configuration files.
#pragma once
#include "core_guard.h"

#include "secure_bytes.h"

#include <initializer_list>
#include <map>
#include <string>

namespace cmk::azure {

// Every variable the credentials read, and whether its value is a secret
// (a client secret, a certificate's password, the managed-identity header).
struct EnvironmentVariable {
    const char* name;
    bool secret;
};
extern const EnvironmentVariable kEnvironmentVariables[];
extern const size_t kEnvironmentVariableCount;
// nullptr if the credentials do not read `name`.
const EnvironmentVariable* environment_variable(const std::string& name);

using EnvironmentValues = std::map<std::string, SecureString>;

// The variables above as this process's environment has them (pg_cmk).
EnvironmentValues process_environment();

class AzureEnvironment {
public:
    AzureEnvironment() = default;
    explicit AzureEnvironment(EnvironmentValues vars) : vars_(std::move(vars)) {}
    // The value, or "" when unset.
    std::string get(const std::string& name) const;
    bool has(const std::string& name) const;
    // Those of `names` that are unset, comma-separated ("" when all are set).
    std::string missing(std::initializer_list<const char*> names) const;

private:
    EnvironmentValues vars_;
};

}  // namespace cmk::azure
