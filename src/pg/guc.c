/*
 * cmk.* settings. Secrets never live here: Azure credentials come from the
 * server's AZURE_* environment, as Azure SDKs read them (the postmaster
 * moves them out of it, credentials.c).
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "pg/cmk.h"
#include "pg/lifecycle.h"

char	   *cmk_key_url = NULL;
char	   *cmk_key_wrap_algorithm = NULL;
char	   *cmk_auth = NULL;
char	   *cmk_ca_file = NULL;
char	   *cmk_key_vault_api_version = NULL;
int			cmk_request_timeout_ms = 10000;
int			cmk_key_unavailable_timeout_ms = 60000;
int			cmk_key_check_interval_s = 300;
int			cmk_key_outage_tolerance_s = 3600;
int			cmk_on_key_unavailable = CMK_ON_UNAVAILABLE_INACCESSIBLE;
bool		cmk_follow_latest_version = false;
char	   *cmk_allowed_key_urls = NULL;
bool		cmk_require_purge_protection = true;
int			cmk_key_expiry_warning_s = 30 * 86400;

static const struct config_enum_entry on_key_unavailable_options[] = {
	{"inaccessible", CMK_ON_UNAVAILABLE_INACCESSIBLE, false},
	{"shutdown", CMK_ON_UNAVAILABLE_SHUTDOWN, false},
	{NULL, 0, false}
};

static bool
check_key_url(char **newval, void **extra, GucSource source)
{
	cmk_error	err;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;			/* reported with a hint at start-up */
	if (cmk_core_check_key_url(*newval, &err) != 0)
	{
		GUC_check_errmsg("%s", err.message);
		if (err.detail[0])
			GUC_check_errdetail("%s", err.detail);
		if (err.hint[0])
			GUC_check_errhint("%s", err.hint);
		return false;
	}
	return true;
}

static bool
check_allowed_key_urls(char **newval, void **extra, GucSource source)
{
	cmk_error	err;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;			/* the default: the vault or directory of the current key */
	if (cmk_core_check_key_policy(*newval, &err) != 0)
	{
		GUC_check_errmsg("%s", err.message);
		if (err.detail[0])
			GUC_check_errdetail("%s", err.detail);
		if (err.hint[0])
			GUC_check_errhint("%s", err.hint);
		return false;
	}
	return true;
}

static bool
check_wrap_algorithm(char **newval, void **extra, GucSource source)
{
	if (strcmp(*newval, "RSA-OAEP-256") == 0 || strcmp(*newval, "RSA-OAEP") == 0)
		return true;
	GUC_check_errdetail("cmk.key_wrap_algorithm must be RSA-OAEP-256 or RSA-OAEP.");
	return false;
}

static bool
check_auth(char **newval, void **extra, GucSource source)
{
	static const char *const valid[] = {"default", "client-secret", "client-certificate",
	"managed-identity", "workload-identity", NULL};

	for (int i = 0; valid[i]; i++)
		if (strcmp(*newval, valid[i]) == 0)
			return true;
	GUC_check_errdetail("cmk.auth must be one of default, client-secret, client-certificate, managed-identity, workload-identity.");
	return false;
}

void
cmk_guc_init(void)
{
	DefineCustomStringVariable("cmk.key_url",
							   "Key encryption key: file:/path/kek.pem or https://<vault>/keys/<name>[/<version>].",
							   "Names the key for the first start; afterwards the keyring records which key wraps it.",
							   &cmk_key_url, "", PGC_POSTMASTER, 0,
							   check_key_url, NULL, NULL);
	DefineCustomStringVariable("cmk.allowed_key_urls",
							   "Key URLs that may wrap the keyring: https://<vault host>, https://<vault host>/keys/<name>[/<version>], file:/directory/, file:/path, or *.",
							   "Empty: only the vault (or, for a file key, the directory) of the key that wraps the keyring. Only postgresql.conf may set it.",
							   &cmk_allowed_key_urls, "", PGC_POSTMASTER, 0,
							   check_allowed_key_urls, NULL, NULL);
	DefineCustomBoolVariable("cmk.require_purge_protection",
							 "Refuse a Key Vault key whose vault lacks soft delete and purge protection (at first start and at rotation).",
							 "Only postgresql.conf may set it.",
							 &cmk_require_purge_protection, true, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("cmk.key_wrap_algorithm",
							   "RSA padding used to wrap a new data encryption key: RSA-OAEP-256 or RSA-OAEP.",
							   NULL, &cmk_key_wrap_algorithm, "RSA-OAEP-256", PGC_POSTMASTER, 0,
							   check_wrap_algorithm, NULL, NULL);
	DefineCustomStringVariable("cmk.auth",
							   "How to sign in to Azure Key Vault: default, client-secret, client-certificate, managed-identity or workload-identity.",
							   "Credentials come from the AZURE_* variables of the server's environment, never from this file.",
							   &cmk_auth, "default", PGC_POSTMASTER, 0,
							   check_auth, NULL, NULL);
	DefineCustomStringVariable("cmk.ca_file",
							   "Extra CA certificates (PEM) trusted for Key Vault and sign-in; the system CAs are always trusted.",
							   NULL, &cmk_ca_file, "", PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("cmk.key_vault_api_version",
							   "api-version of the Key Vault REST API.",
							   NULL, &cmk_key_vault_api_version, "7.4", PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cmk.request_timeout",
							"Time limit of one request to Key Vault or to the sign-in endpoint.",
							NULL, &cmk_request_timeout_ms, 10000, 100, 600000, PGC_POSTMASTER,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("cmk.key_unavailable_timeout",
							"How long retries of one key operation may take in total before it fails.",
							NULL, &cmk_key_unavailable_timeout_ms, 60000, 0, 3600000, PGC_POSTMASTER,
							GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("cmk.key_check_interval",
							"How often the key worker checks that the key encryption key still works.",
							"Each check reads the key's properties and unwraps the current data encryption key.",
							&cmk_key_check_interval_s, 300, 1, 86400, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("cmk.key_outage_tolerance",
							"How long Key Vault may stay unreachable (timeouts, 429, 5xx) before the server becomes inaccessible.",
							NULL, &cmk_key_outage_tolerance_s, 3600, 0, 30 * 86400, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomEnumVariable("cmk.on_key_unavailable",
							 "What happens when the key encryption key is definitely unavailable: inaccessible or shutdown.",
							 "inaccessible refuses connections and ends sessions until the key works again; shutdown stops the server.",
							 &cmk_on_key_unavailable, CMK_ON_UNAVAILABLE_INACCESSIBLE, on_key_unavailable_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cmk.key_expiry_warning",
							"The key worker warns (log and cmk_events) when the key expires sooner than this (0 = never).",
							NULL, &cmk_key_expiry_warning_s, 30 * 86400, 0, INT_MAX, PGC_SIGHUP,
							GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("cmk.follow_latest_version",
							 "Adopt a newer enabled version of the key by itself (when cmk.key_url names no version).",
							 NULL, &cmk_follow_latest_version, false, PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("cmk.sweep_cost_limit",
							"Work the sweep does (a page read costs 1, a rewrite 20) before it sleeps cmk.sweep_cost_delay.",
							NULL, &cmk_sweep_cost_limit, 2000, 1, 1000000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cmk.sweep_cost_delay",
							"How long the sweep sleeps each time it reaches cmk.sweep_cost_limit (0 = no throttling).",
							NULL, &cmk_sweep_cost_delay_ms, 10, 0, 1000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);

	MarkGUCPrefixReserved("cmk");
}

void
cmk_provider_settings_from_gucs(cmk_provider_settings *settings)
{
	memset(settings, 0, sizeof(*settings));
	settings->wrap_algorithm = cmk_key_wrap_algorithm;
	settings->api_version = cmk_key_vault_api_version;
	settings->auth = cmk_auth;
	settings->ca_file = cmk_ca_file;
	settings->request_timeout_ms = cmk_request_timeout_ms;
	settings->retry_total_ms = cmk_key_unavailable_timeout_ms;
	settings->allowed_key_urls = cmk_allowed_key_urls;
	settings->allow_purgeable_key = !cmk_require_purge_protection;
	settings->environment = cmk_credentials();
}
