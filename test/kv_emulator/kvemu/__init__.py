"""kvemu: a local emulator of Azure Key Vault (keys) and Microsoft Entra ID,
for cmk's tests.

Written from the public Azure REST reference; it shares no code with cmk's
C++ client, so that each checks the other.  CONTRACT.md (beside this
package) is the surface tests rely on, README.md shows how to drive it.
Python 3 standard library + Debian's python3-cryptography; no PyPI.

Modules, each one concern:
  cli               command line: serve, and the admin client (stdlib only)
  server            HTTPS listener, request routing, start/stop files
  hosts             the names it answers for, their resources and audiences
  tls               its own CA and the server certificate for those names
  entra             Entra ID: token endpoint, discovery, access tokens
  managed_identity  IMDS and the App Service identity endpoint
  keys              the key store: versions, attributes, soft delete
  keyvault          Key Vault's REST front: challenge, authn/authz, operations
  admin             the admin interface (/_admin/<command>)
  audit             the audit log (DIR/audit.jsonl)
  faults            injected faults
  store             persistent state (DIR/state.json)
  common, crypto    constants, helpers, errors; JWT and key helpers

References used (cited at the places where they matter):
  [KV-REST]   Key Vault REST API 7.4, keys.json and examples in
              github.com/Azure/azure-rest-api-specs
              (specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.4)
  [KV-ERR]    learn.microsoft.com/azure/key-vault/general/rest-error-codes
  [KV-TSG]    Azure SDK "Troubleshooting Azure Key Vault SDK Issues" (403
              KeyOperationForbidden, 401 AKV10032 invalid issuer)
  [KV-KEYS]   learn.microsoft.com/azure/key-vault/keys/about-keys-details
              ("Date-time controlled operations": outside nbf/exp, decrypt,
              unwrap and verify still work; encrypt, wrap and sign are refused)
  [KV-SD]     learn.microsoft.com/azure/key-vault/general/soft-delete-overview
              (retention 7..90 days, default 90; purge protection) and the
              DeletionRecoveryLevel enum of [KV-REST] ("Purgeable",
              "Recoverable+Purgeable", "Recoverable",
              "Recoverable+ProtectedSubscription", "CustomizedRecoverable+Purgeable",
              "CustomizedRecoverable", "CustomizedRecoverable+ProtectedSubscription";
              Customized* when 7 <= retention < 90; recoverableDays is 0 without
              soft-delete).  A purge under purge protection is 403 Forbidden
              'Operation "purge" is not allowed because purge protection is
              enabled for this vault. ...' (the service's message as reported
              in SDK issues).
  [KV-AUTH]   learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses
              (the 401 bearer challenge: authorization, resource) and the
              Azure SDKs' challenge-resource check (aka.ms/azsdk/blog/vault-uri:
              the vault's host must lie within the resource's domain)
  [KV-LOG]    learn.microsoft.com/azure/key-vault/general/logging (AuditEvent
              fields and operationName values)
  [AAD-CC]    learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  [AAD-CERT]  learn.microsoft.com/entra/identity-platform/certificate-credentials
  [AAD-ERR]   learn.microsoft.com/entra/identity-platform/reference-error-codes
  [WIF]       learn.microsoft.com/entra/workload-id/workload-identity-federation
  [IMDS]      learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
  [APPSVC]    learn.microsoft.com/azure/app-service/overview-managed-identity
              (and the Container Apps equivalent): IDENTITY_ENDPOINT,
              X-IDENTITY-HEADER, api-version 2019-08-01
  [AAD-DISC]  learn.microsoft.com/entra/identity-platform/v2-protocols-oidc
              (OpenID configuration document) and MSAL's instance discovery
              (GET https://login.microsoftonline.com/common/discovery/instance
              ?api-version=1.1&authorization_endpoint=...; "tenant_discovery_endpoint",
              "metadata" with preferred_network, preferred_cache, aliases;
              error invalid_instance, AADSTS50049)

"""
