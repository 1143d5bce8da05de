// DefaultAzureCredential: azure-identity's chain without the developer-tool
// credentials, Environment -> WorkloadIdentity -> ManagedIdentity (the last
// probing IMDS, so that off Azure it says "not configured" quickly).
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/chained_token_credential.h"
#include "azure/pipeline.h"

#include <memory>

namespace cmk::azure {

std::shared_ptr<ChainedTokenCredential> make_default_azure_credential(const AzureEnvironment& env,
                                                                      std::shared_ptr<Pipeline> pipeline);

}  // namespace cmk::azure
