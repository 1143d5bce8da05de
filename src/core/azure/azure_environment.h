// Where the Azure credentials read their configuration: the AZURE_* (and
// IDENTITY_*) variables of ProviderSettings::environment, or of the process
// environment when that map is empty. Never postgresql.conf: secrets stay
// out of the server's configuration files.
#pragma once
#include "core_guard.h"

#include <map>
#include <string>

namespace cmk::azure {

class AzureEnvironment {
public:
    AzureEnvironment() = default;
    explicit AzureEnvironment(std::map<std::string, std::string> vars) : vars_(std::move(vars)) {}
    // The value, or "" when unset.
    std::string get(const std::string& name) const;
    bool has(const std::string& name) const { return !get(name).empty(); }

private:
    std::map<std::string, std::string> vars_;
};

}  // namespace cmk::azure
