// DefaultAzureCredential (default_azure_credential.h).
#include "azure/default_azure_credential.h"

#include "azure/environment_credential.h"
#include "azure/managed_identity_credential.h"
#include "azure/workload_identity_credential.h"

namespace cmk::azure {

std::shared_ptr<ChainedTokenCredential> make_default_azure_credential(const AzureEnvironment& env,
                                                                      std::shared_ptr<Pipeline> pipeline) {
    std::vector<std::shared_ptr<TokenCredential>> sources;
    // 1. EnvironmentCredential. A credential whose variables are set but
    // unusable (an unreadable certificate file) is an error, not "unavailable".
    sources.push_back(std::make_shared<EnvironmentCredential>(env, pipeline));
    // 2. WorkloadIdentityCredential.
    std::string missing = env.missing({"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"});
    if (missing.empty())
        sources.push_back(make_workload_identity_credential(env, pipeline));
    else
        sources.push_back(std::make_shared<UnavailableCredential>("WorkloadIdentityCredential",
                                                                  "environment variables are not fully configured (" + missing +
                                                                      " unset)"));
    // 3. ManagedIdentityCredential (AZURE_CLIENT_ID selects a user-assigned identity), probing IMDS.
    sources.push_back(std::make_shared<ManagedIdentityCredential>(env, env.get("AZURE_CLIENT_ID"), pipeline, true));
    return std::make_shared<ChainedTokenCredential>("DefaultAzureCredential", std::move(sources), pipeline.get());
}

}  // namespace cmk::azure
