// Where the Azure credentials read their configuration (azure_environment.h).
#include "azure/azure_environment.h"

#include <cstdlib>
#include <cstring>

namespace cmk::azure {

const EnvironmentVariable kEnvironmentVariables[] = {
    {"AZURE_TENANT_ID", false},
    {"AZURE_CLIENT_ID", false},
    {"AZURE_CLIENT_SECRET", true},
    {"AZURE_CLIENT_CERTIFICATE_PATH", false},
    {"AZURE_CLIENT_CERTIFICATE_PASSWORD", true},
    {"AZURE_FEDERATED_TOKEN_FILE", false},
    {"AZURE_AUTHORITY_HOST", false},
    {"AZURE_ADDITIONALLY_ALLOWED_TENANTS", false},
    {"AZURE_POD_IDENTITY_AUTHORITY_HOST", false},
    {"IDENTITY_ENDPOINT", false},
    {"IDENTITY_HEADER", true},
};
const size_t kEnvironmentVariableCount = sizeof kEnvironmentVariables / sizeof kEnvironmentVariables[0];

const EnvironmentVariable* environment_variable(const std::string& name) {
    for (const auto& v : kEnvironmentVariables)
        if (name == v.name) return &v;
    return nullptr;
}

EnvironmentValues process_environment() {
    EnvironmentValues out;
    for (const auto& v : kEnvironmentVariables)
        if (const char* value = std::getenv(v.name)) out[v.name] = SecureString(value);
    return out;
}

std::string AzureEnvironment::get(const std::string& name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

bool AzureEnvironment::has(const std::string& name) const {
    auto it = vars_.find(name);
    return it != vars_.end() && !it->second.empty();
}

std::string AzureEnvironment::missing(std::initializer_list<const char*> names) const {
    std::string out;
    for (const char* n : names)
        if (!has(n)) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
}

}  // namespace cmk::azure
