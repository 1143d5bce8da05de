#include "azure/azure_environment.h"

#include <cstdlib>

namespace cmk::azure {

std::string AzureEnvironment::get(const std::string& name) const {
    if (!vars_.empty()) {
        auto it = vars_.find(name);
        return it == vars_.end() ? std::string() : it->second;
    }
    const char* v = std::getenv(name.c_str());
    return v ? std::string(v) : std::string();
}

}  // namespace cmk::azure
