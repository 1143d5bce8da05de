// WorkloadIdentityCredential (workload_identity_credential.h): the client
// credentials grant with the projected service-account token as client
// assertion, read anew for every request because the kubelet rotates it.
#include "azure/workload_identity_credential.h"

#include "azure/encoding.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cmk::azure {

WorkloadIdentityCredential::WorkloadIdentityCredential(std::string tenant_id, std::string client_id, std::string token_file,
                                                       CredentialOptions options)
    : tenant_id_(std::move(tenant_id)),
      client_id_(std::move(client_id)),
      token_file_(std::move(token_file)),
      options_(std::move(options)) {}

std::string WorkloadIdentityCredential::describe() const {
    return "workload identity " + client_id_ + " in tenant " + tenant_id_;
}

void WorkloadIdentityCredential::collect_sensitive(std::vector<std::string>& out) const {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!last_assertion_.empty()) out.push_back(last_assertion_);
    }
    cache_.collect(out);
}

AccessToken WorkloadIdentityCredential::get_token(const TokenRequestContext& context) {
    return cached_entra_token(cache_, options_, tenant_id_, name(), context, [&](const std::string& tenant, const std::string& scope) {
        std::ifstream in(token_file_, std::ios::binary);
        if (!in) {
            int e = errno;
            throw Error(ErrorKind::Config, name() + ": cannot read the federated token file \"" + token_file_ +
                                               "\" (AZURE_FEDERATED_TOKEN_FILE): " + std::strerror(e));
        }
        std::stringstream ss;
        ss << in.rdbuf();
        std::string assertion = ss.str();
        while (!assertion.empty() && (assertion.back() == '\n' || assertion.back() == '\r' || assertion.back() == ' '))
            assertion.pop_back();
        if (assertion.empty())
            throw Error(ErrorKind::Config, name() + ": the federated token file \"" + token_file_ + "\" is empty");
        {
            std::lock_guard<std::mutex> lock(mutex_);
            wipe(last_assertion_);
            last_assertion_ = assertion;
        }
        return request_with_assertion(options_, tenant, client_id_, scope, assertion, context.budget, name(), describe());
    });
}

std::unique_ptr<WorkloadIdentityCredential> make_workload_identity_credential(const AzureEnvironment& env,
                                                                              std::shared_ptr<Pipeline> pipeline) {
    return std::make_unique<WorkloadIdentityCredential>(env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
                                                        env.get("AZURE_FEDERATED_TOKEN_FILE"),
                                                        CredentialOptions::from_environment(env, std::move(pipeline)));
}

}  // namespace cmk::azure
