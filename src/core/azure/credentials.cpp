// The credential cmk.auth names (credentials.h), checking first that the
// variables it needs are set in the server's environment.
#include "azure/credentials.h"

namespace cmk::azure {

namespace {

[[noreturn]] void throw_missing(const std::string& auth, const std::string& missing, const std::string& hint) {
    throw Error(ErrorKind::Config, "cmk.auth = '" + auth + "' needs " + missing + " in the server's environment", {}, hint);
}

const char kEnvHint[] =
    "Set them where the server's environment comes from (the systemd unit's Environment= or EnvironmentFile=, or "
    "/etc/postgresql/<version>/<cluster>/environment), never in postgresql.conf.";

}  // namespace

std::shared_ptr<TokenCredential> make_credential(const std::string& auth, const AzureEnvironment& env,
                                                 std::shared_ptr<Pipeline> pipeline) {
    if (auth.empty() || auth == "default") return make_default_azure_credential(env, pipeline);
    if (auth == "client-secret") {
        std::string missing = env.missing({"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"});
        if (!missing.empty()) throw_missing(auth, missing, kEnvHint);
        return std::make_shared<ClientSecretCredential>(env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"),
                                                        env.get("AZURE_CLIENT_SECRET"),
                                                        CredentialOptions::from_environment(env, pipeline));
    }
    if (auth == "client-certificate") {
        std::string missing = env.missing({"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"});
        if (!missing.empty()) throw_missing(auth, missing, kEnvHint);
        return make_client_certificate_credential(env, pipeline);
    }
    if (auth == "workload-identity") {
        std::string missing = env.missing({"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"});
        if (!missing.empty())
            throw_missing(auth, missing,
                          "Azure Workload Identity's webhook sets them in pods whose service account is labelled "
                          "azure.workload.identity/use: \"true\".");
        return make_workload_identity_credential(env, pipeline);
    }
    if (auth == "managed-identity")
        return std::make_shared<ManagedIdentityCredential>(env, env.get("AZURE_CLIENT_ID"), pipeline, false);
    throw Error(ErrorKind::Config, "cmk.auth = '" + auth + "' is not a known sign-in method", {},
                "Use default, client-secret, client-certificate, managed-identity or workload-identity.");
}


}  // namespace cmk::azure
