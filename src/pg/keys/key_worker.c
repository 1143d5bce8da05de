/*
 * The key worker (DESIGN.md "Key lifecycle"): every cmk.key_check_interval
 * it reads the KEK version that wraps the keyring and unwraps the current
 * DEK with it. Transient failures (timeouts, 429, 5xx, unreachable vault)
 * change nothing until they last longer than cmk.key_outage_tolerance. A
 * definite denial (key disabled, deleted, expired, permission removed,
 * unwrap refused) makes the server inaccessible: new connections are refused
 * and every process that reads or writes user data is ended and refused
 * (access_gate.c); with cmk.on_key_unavailable = shutdown the server shuts
 * down instead.
 * When the key works again, access returns by itself. With
 * cmk.follow_latest_version and a cmk.key_url without version, a newer
 * enabled version of the key is adopted by rotating to it.
 */
#include "postgres.h"

#include <signal.h>
#include <time.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "port/atomics.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/backend_status.h"
#include <limits.h>

#include "utils/guc.h"
#include "utils/timestamp.h"

#include "pg/keys/keys.h"

PGDLLEXPORT void cmk_key_worker_main(Datum arg);

int			cmk_key_check_interval_s = 300;
int			cmk_key_outage_tolerance_s = 3600;
int			cmk_on_key_unavailable = CMK_ON_UNAVAILABLE_INACCESSIBLE;
bool		cmk_follow_latest_version = false;
int			cmk_key_expiry_warning_s = 30 * 86400;

static const struct config_enum_entry on_key_unavailable_options[] = {
	{"inaccessible", CMK_ON_UNAVAILABLE_INACCESSIBLE, false},
	{"shutdown", CMK_ON_UNAVAILABLE_SHUTDOWN, false},
	{NULL, 0, false}
};

void
cmk_key_worker_define_settings(void)
{
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
}

void
cmk_key_worker_register(void)
{
	BackgroundWorker worker;

	cmk_worker_describe(&worker, "cmk key worker", NULL, "cmk_key_worker_main", false,
						BgWorkerStart_PostmasterStart, 5);
	RegisterBackgroundWorker(&worker);
}

static void
set_result(const char *result, const char *error)
{
	SpinLockAcquire(&cmk_status_shared->mutex);
	cmk_status_shared->last_check = GetCurrentTimestamp();
	strlcpy(cmk_status_shared->last_result, result, sizeof(cmk_status_shared->last_result));
	strlcpy(cmk_status_shared->last_error, error ? error : "", sizeof(cmk_status_shared->last_error));
	if (error == NULL)
	{
		cmk_status_shared->last_success = cmk_status_shared->last_check;
		cmk_status_shared->outage_since = 0;
	}
	else if (cmk_status_shared->outage_since == 0)
		cmk_status_shared->outage_since = cmk_status_shared->last_check;
	SpinLockRelease(&cmk_status_shared->mutex);
}

/*
 * Ends every process that can read or write user data (access_gate.c):
 * client backends, walsenders, autovacuum workers, background workers
 * connected to a database. Called at every check while inaccessible: a
 * process that started meanwhile is refused by the gates and ended here.
 */
static void
end_sessions(void)
{
	int			n;

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid <= 0 || be->st_procpid == MyProcPid)
			continue;
		if (cmk_gated_process(be->st_backendType, be->st_databaseid))
			kill(be->st_procpid, SIGTERM);
	}
}

static void
become_inaccessible(const char *kek, const char *reason)
{
	bool		was = cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE;

	SpinLockAcquire(&cmk_status_shared->mutex);
	strlcpy(cmk_status_shared->reason, reason, sizeof(cmk_status_shared->reason));
	if (!was)
		cmk_status_shared->inaccessible_since = GetCurrentTimestamp();
	SpinLockRelease(&cmk_status_shared->mutex);
	cmk_status_shared->access_state = CMK_ACCESS_INACCESSIBLE;
	pg_memory_barrier();

	if (!was)
	{
		cmk_event("server_inaccessible", kek, "key unavailable", reason);
		if (cmk_on_key_unavailable == CMK_ON_UNAVAILABLE_SHUTDOWN)
		{
			cmk_event("server_shutdown", kek, "cmk.on_key_unavailable = shutdown", reason);
			kill(PostmasterPid, SIGINT);	/* fast shutdown */
		}
	}
	end_sessions();				/* again each time: autovacuum may have started one */
}

static void
become_accessible(const char *kek)
{
	if (cmk_status_shared->access_state != CMK_ACCESS_INACCESSIBLE)
		return;
	/* The event first: nothing ran between the two events' times. */
	cmk_event("server_accessible", kek, "key available again", NULL);
	SpinLockAcquire(&cmk_status_shared->mutex);
	cmk_status_shared->reason[0] = '\0';
	cmk_status_shared->inaccessible_since = 0;
	SpinLockRelease(&cmk_status_shared->mutex);
	pg_memory_barrier();
	cmk_status_shared->access_state = CMK_ACCESS_ACTIVE;
}

/*
 * WARNING and an event when the key expires within cmk.key_expiry_warning:
 * once for each key and expiry date, then again every day.
 */
static void
warn_if_expiring(const char *kek, int64 expires)
{
	static char warned_kek[CMK_KEK_ID_MAX];
	static int64 warned_expires = 0;
	static TimestampTz warned_at = 0;
	TimestampTz now = GetCurrentTimestamp();
	int64		left = expires - (int64) time(NULL);
	char	   *detail;

	if (expires == 0 || cmk_key_expiry_warning_s <= 0 || left >= cmk_key_expiry_warning_s)
		return;
	if (strcmp(warned_kek, kek) == 0 && warned_expires == expires &&
		!TimestampDifferenceExceeds(warned_at, now, 86400 * 1000))
		return;
	strlcpy(warned_kek, kek, sizeof(warned_kek));
	warned_expires = expires;
	warned_at = now;
	detail = psprintf("It expires at %s, in %.1f days (cmk.key_expiry_warning is %d days).",
					  timestamptz_to_str(time_t_to_timestamptz((pg_time_t) expires)),
					  left / 86400.0, cmk_key_expiry_warning_s / 86400);
	ereport(WARNING,
			(errmsg("cmk: the key encryption key %s expires soon", kek),
			 errdetail("%s", detail),
			 errhint("Extend its expiry date in Key Vault, or rotate to a new key version with cmk_rotate_key() before then: an expired key makes the server inaccessible.")));
	cmk_event("key_expiring", kek, "warning", detail);
}

static bool
key_url_names_version(const char *url)
{
	const char *keys = strstr(url, "/keys/");

	return keys != NULL && strchr(keys + 6, '/') != NULL;
}

static void
check_once(void)
{
	cmk_provider_settings settings;
	cmk_messages messages;
	cmk_kek_check check;
	cmk_error	err;
	char		kek[CMK_KEK_ID_MAX];
	bool		want_newest;

	want_newest = cmk_follow_latest_version && strncmp(cmk_key_url, "https://", 8) == 0 &&
		!key_url_names_version(cmk_key_url) && !RecoveryInProgress();
	cmk_kek_id(kek, sizeof(kek));
	cmk_provider_settings_from_gucs(&settings);
	if (cmk_core_check_kek(DataDir, cmk_keys, &settings, want_newest, &check, &messages, &err) == 0)
	{
		set_result("ok", NULL);
		become_accessible(kek);
		warn_if_expiring(kek, check.expires);
		if (want_newest && check.newest_version[0] != '\0' &&
			strcmp(check.newest_version, cmk_keys->kek_version) != 0)
		{
			char	   *target = psprintf("%s/%s", cmk_keys->kek_base, check.newest_version);

			ereport(LOG, (errmsg("cmk: key %s has a newer enabled version %s; following it", kek, check.newest_version)));
			PG_TRY();
			{
				cmk_replace_keyring(target);
			}
			PG_CATCH();
			{
				EmitErrorReport();
				FlushErrorState();
			}
			PG_END_TRY();
		}
		return;
	}

	cmk_log_core_lines(LOG, messages.log);
	if (err.kind == CMK_ERR_TRANSIENT || err.kind == CMK_ERR_PROTOCOL)
	{
		TimestampTz since;

		set_result("transient error", err.message);
		since = cmk_status_shared->outage_since;
		ereport(LOG, (errmsg("cmk: key check of %s failed, will retry: %s", kek, err.message)));
		if (TimestampDifferenceExceeds(since, GetCurrentTimestamp(), cmk_key_outage_tolerance_s * 1000))
			become_inaccessible(kek, psprintf("Key Vault has not answered for longer than cmk.key_outage_tolerance (%d s): %s",
											  cmk_key_outage_tolerance_s, err.message));
		return;
	}
	set_result("denied", err.message);
	if (cmk_status_shared->access_state != CMK_ACCESS_INACCESSIBLE)
		cmk_event("key_check", kek, "denied", err.message);
	become_inaccessible(kek, err.message);
}

void
cmk_key_worker_main(Datum arg)
{
	MemoryContext loop_context;
	TimestampTz next_check;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	cmk_status_shared->worker_pid = MyProcPid;
	loop_context = AllocSetContextCreate(TopMemoryContext, "cmk key worker", ALLOCSET_DEFAULT_SIZES);

	/* Start-up has just unwrapped the key: the first check is one interval on. */
	next_check = GetCurrentTimestamp() + (TimestampTz) cmk_key_check_interval_s * USECS_PER_SEC;
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (now < next_check)
		{
			wait_ms = (long) ((next_check - now) / 1000) + 1;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
				/* A shorter interval takes effect now. */
				next_check = Min(next_check, GetCurrentTimestamp() + (TimestampTz) cmk_key_check_interval_s * USECS_PER_SEC);
			}
			continue;
		}
		MemoryContextSwitchTo(loop_context);
		check_once();
		MemoryContextReset(loop_context);
		/* While inaccessible, look again soon, and keep sessions ended. */
		next_check = GetCurrentTimestamp() + (cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE ?
											  Min((TimestampTz) cmk_key_check_interval_s, 1) :
											  (TimestampTz) cmk_key_check_interval_s) * USECS_PER_SEC;
	}
}
