// The credentials, one class per way of signing in, each in its own file as
// in the Azure SDK for C++'s azure-identity, and the choice among them by
// cmk.auth (make_credential):
//
//   ClientSecretCredential       client_secret_credential.h
//   ClientCertificateCredential  client_certificate_credential.h
//   WorkloadIdentityCredential   workload_identity_credential.h
//   ManagedIdentityCredential    managed_identity_credential.h
//   EnvironmentCredential        environment_credential.h
//   ChainedTokenCredential       chained_token_credential.h
//   DefaultAzureCredential       default_azure_credential.h
//
// What they share: the TokenCredential interface, tokens and their cache
// (token_credential.h), the token requests and their errors
// (token_request.h). Each credential caches its tokens per tenant and scope.
#pragma once
#include "core_guard.h"

#include "azure/azure_environment.h"
#include "azure/chained_token_credential.h"
#include "azure/client_certificate_credential.h"
#include "azure/client_secret_credential.h"
#include "azure/default_azure_credential.h"
#include "azure/environment_credential.h"
#include "azure/managed_identity_credential.h"
#include "azure/token_credential.h"
#include "azure/token_request.h"
#include "azure/workload_identity_credential.h"

#include <memory>
#include <string>

namespace cmk::azure {

// ProviderSettings::auth: "default", "client-secret", "client-certificate",
// "managed-identity", "workload-identity". Throws Error(Config) naming the
// missing variables of an explicitly chosen credential.
std::shared_ptr<TokenCredential> make_credential(const std::string& auth, const AzureEnvironment& env,
                                                 std::shared_ptr<Pipeline> pipeline);

}  // namespace cmk::azure
