/*
 * Keyring changes go through WAL, with a custom resource manager (PostgreSQL
 * 15's RegisterCustomRmgr): the record carries the whole new keyring file
 * (wrapped DEKs and their key check values; WAL is encrypted anyway), so a
 * standby follows a change made on its primary and a primary that crashes
 * in the middle of one finishes it in crash recovery (DESIGN.md "Keyring
 * changes through WAL").
 *
 * On the primary everything that can fail happens before the record: the
 * Key Vault calls and their verification (the core), the check of the new
 * keyring against the keys held, and writing the new file in full as
 * pg_cmk/keyring.next, fsynced. After the record only steps that cannot run
 * out of space remain: the record's position is written over the staged
 * file (same size), which is renamed into place, and the keys in memory are
 * switched. A failure there is a PANIC, and crash recovery installs the
 * change from the record.
 *
 * Redo never PANICs: a step that fails (a Key Vault that cannot be reached
 * to unwrap a new generation, a full disk) is reported once and retried
 * every few seconds, like a missing WAL segment, until it succeeds. A KEK
 * rotation needs no Key Vault at all there: the keys are the ones held,
 * checked against the key check values. A record older than the installed
 * keyring (a restart replaying WAL again) changes nothing.
 *
 * Resource manager id 152 (in the custom range 128..255); change
 * CMK_RMGR_ID if another extension on the same server uses it.
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlog.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlogrecovery.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgwriter.h"
#include "postmaster/startup.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#include "pg/keys/keys.h"

#define XLOG_CMK_KEYRING 0x00
#define REDO_RETRY_MS 1000

static void
keyring_paths(char *keyring, char *next)
{
	snprintf(keyring, MAXPGPATH, "%s/pg_cmk/keyring", DataDir);
	snprintf(next, MAXPGPATH, "%s/pg_cmk/keyring.next", DataDir);
}

/*
 * At start-up: a keyring change staged by a run that stopped before its WAL
 * record was written, or before it was installed (WAL replay redoes the
 * latter), is dropped.
 */
void
cmk_keyring_discard_staged(void)
{
	char		keyring[MAXPGPATH];
	char		next[MAXPGPATH];

	keyring_paths(keyring, next);
	if (unlink(next) != 0 && errno != ENOENT)
		ereport(FATAL, (errcode_for_file_access(), errmsg("cmk: could not remove \"%s\": %m", next)));
}

/*
 * A keyring change on the primary, under the rotation lock. bytes: the new
 * keyring, made and verified by the core; added: the key of a generation it
 * adds, or NULL. ERROR before the WAL record leaves everything unchanged.
 */
static void
change_on_primary(const uint8 *bytes, size_t len, const cmk_key_slot *added)
{
	char		keyring[MAXPGPATH];
	char		next[MAXPGPATH];
	uint8	   *file;
	size_t		file_len;
	cmk_error	err;
	XLogRecPtr	lsn;
	TimeLineID	tli;
	int			fd;

	keyring_paths(keyring, next);

	/* 1. The new file in full, staged: what can fail fails here. */
	if (cmk_core_finish_keyring_change(bytes, len, cmk_keys, added, added ? 1 : 0, 0, 0,
									   &file, &file_len, &err) != 0)
		cmk_report_core_error(ERROR, 0, "the new keyring does not match the keys in memory", &err);
	if (!cmk_write_file_synced(next, file, file_len, WARNING))
	{
		cmk_core_free(file);
		ereport(ERROR,
				(errmsg("cmk: could not stage the new keyring"),
				 errdetail("The keyring was not changed.")));
	}
	cmk_core_free(file);

	/* 2. The record. */
	START_CRIT_SECTION();
	XLogBeginInsert();
	XLogRegisterData((char *) bytes, (uint32) len);
	lsn = XLogInsert(CMK_RMGR_ID, XLOG_CMK_KEYRING);
	XLogFlush(lsn);
	END_CRIT_SECTION();
	tli = GetWALInsertionTimeLine();

	/*
	 * 3. Install. The staged file takes the record's position (same length:
	 * no new space), is renamed into place, and the keys in memory follow.
	 * A failure PANICs; crash recovery installs the change from the record.
	 */
	if (cmk_core_finish_keyring_change(bytes, len, cmk_keys, added, added ? 1 : 0, tli, lsn,
									   &file, &file_len, &err) != 0)
		cmk_report_core_error(PANIC, 0, "could not install the new keyring", &err);
	fd = OpenTransientFile(next, O_WRONLY | PG_BINARY);
	if (fd < 0 || pg_pwrite(fd, file, file_len, 0) != (ssize_t) file_len || pg_fsync(fd) != 0 ||
		CloseTransientFile(fd) != 0)
		ereport(PANIC, (errcode_for_file_access(), errmsg("cmk: could not write \"%s\": %m", next)));
	durable_rename(next, keyring, PANIC);
	if (cmk_core_apply_keyring(file, file_len, cmk_keys, added, added ? 1 : 0, NULL, 0, &err) != 0)
		cmk_report_core_error(PANIC, 0, "could not switch to the new keyring", &err);
	cmk_core_free(file);
}

static void
require_primary(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cmk: the keyring cannot be changed during recovery"),
				 errhint("Change it on the primary; standbys follow through WAL.")));
}

/* DEK rotation: a new generation, current at once. Returns it. */
uint32
cmk_add_generation(void)
{
	cmk_provider_settings settings;
	cmk_messages messages;
	cmk_error	err;
	uint8	   *bytes;
	size_t		len;
	char		id[CMK_KEK_ID_MAX];
	uint32		generation;

	require_primary();
	LWLockAcquire(cmk_rotation_lock(), LW_EXCLUSIVE);
	cmk_provider_settings_from_gucs(&settings);
	if (cmk_core_add_generation(DataDir, cmk_keys, &settings, &bytes, &len, &cmk_keys->staged,
								&messages, &err) != 0)
	{
		cmk_log_core_lines(LOG, messages.log);
		cmk_core_wipe(&cmk_keys->staged, sizeof(cmk_keys->staged));
		LWLockRelease(cmk_rotation_lock());
		cmk_event("dek_rotation", NULL, "failed", err.message);
		ereport(ERROR,
				(errmsg("cmk: cannot create a new key generation: %s", err.message),
				 errdetail("The keyring was not changed."),
				 err.hint[0] ? errhint("%s", err.hint) : 0));
	}
	cmk_log_core_lines(LOG, messages.log);
	PG_TRY();
	{
		change_on_primary(bytes, len, &cmk_keys->staged);
	}
	PG_FINALLY();
	{
		cmk_core_wipe(&cmk_keys->staged, sizeof(cmk_keys->staged));
		cmk_core_free(bytes);
	}
	PG_END_TRY();
	generation = cmk_keys->current_generation;
	cmk_kek_id(id, sizeof(id));
	LWLockRelease(cmk_rotation_lock());
	cmk_event("dek_rotated", id, "ok", psprintf("key generation %u is current; the sweep rewrites older pages", generation));
	return generation;
}

/* Removes a generation that nothing needs any more (checked by the caller). */
void
cmk_remove_generation(uint32 generation)
{
	cmk_error	err;
	uint8	   *bytes;
	size_t		len;

	require_primary();
	LWLockAcquire(cmk_rotation_lock(), LW_EXCLUSIVE);
	if (cmk_core_remove_generation(DataDir, cmk_keys, generation, &bytes, &len, &err) != 0)
	{
		LWLockRelease(cmk_rotation_lock());
		cmk_report_core_error(ERROR, 0, NULL, &err);
	}
	PG_TRY();
	{
		change_on_primary(bytes, len, NULL);
	}
	PG_FINALLY();
	{
		cmk_core_free(bytes);
	}
	PG_END_TRY();
	LWLockRelease(cmk_rotation_lock());
	cmk_event("generation_retired", NULL, "ok", psprintf("key generation %u removed from the keyring", generation));
}

/*
 * Replaces the keyring by one whose generations are all wrapped by
 * new_key_url. ERROR (keyring untouched) if the new key is unusable.
 * Caller holds no lock; this takes the rotation lock.
 */
void
cmk_replace_keyring(const char *new_key_url)
{
	cmk_provider_settings settings;
	cmk_messages messages;
	cmk_error	err;
	uint8	   *bytes;
	size_t		len;
	char		old_id[CMK_KEK_ID_MAX];
	char		new_id[CMK_KEK_ID_MAX];
	int			rc;

	require_primary();
	LWLockAcquire(cmk_rotation_lock(), LW_EXCLUSIVE);
	cmk_kek_id(old_id, sizeof(old_id));
	cmk_provider_settings_from_gucs(&settings);
	rc = cmk_core_rewrap_keyring(DataDir, cmk_keys, new_key_url, &settings, &bytes, &len, &messages, &err);
	cmk_log_core_lines(LOG, messages.log);
	if (rc != 0)
	{
		LWLockRelease(cmk_rotation_lock());
		cmk_event("kek_rotation", new_key_url, "failed", err.message);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cmk: cannot rotate to \"%s\": %s", new_key_url, err.message),
				 errdetail("The keyring was not changed; %s still wraps it.", old_id),
				 err.hint[0] ? errhint("%s", err.hint) : 0));
	}

	PG_TRY();
	{
		change_on_primary(bytes, len, NULL);
	}
	PG_FINALLY();
	{
		cmk_core_free(bytes);
	}
	PG_END_TRY();
	cmk_kek_id(new_id, sizeof(new_id));
	LWLockRelease(cmk_rotation_lock());
	cmk_event("kek_rotated", new_id, "ok", psprintf("the keyring was wrapped by %s", old_id));
}

/* ---- redo ---- */

/*
 * The redo loop's reporting: each distinct failure is logged once, saying
 * what is wrong and what to do; replay resumes by itself once it is fixed.
 * A failure is the same while its kind (the caller's key, or else its text)
 * is: an unreachable vault's error text varies from retry to retry
 * (refused, timed out), and is still one failure.
 */
static char last_report[1024];

static void
report_waiting(XLogRecPtr lsn, const char *kind, const char *what, const char *detail, const char *hint)
{
	char		key[sizeof(last_report)];
	char	   *k;

	/* The same failure, whatever numbers (timings, attempts) it carries. */
	if (kind)
		snprintf(key, sizeof(key), "%s", kind);
	else
		snprintf(key, sizeof(key), "%s|%s", what, detail ? detail : "");
	for (k = key; *k; k++)
		if (isdigit((unsigned char) *k))
			*k = '#';
	if (strcmp(key, last_report) == 0)
		return;
	strlcpy(last_report, key, sizeof(last_report));
	ereport(WARNING,
			(errmsg("cmk: cannot replay the keyring change at %X/%X yet: %s", LSN_FORMAT_ARGS(lsn), what),
			 detail && *detail ? errdetail("%s", detail) : 0,
			 errhint("%s Replay waits and retries every second; it continues by itself once this is fixed.", hint)));
}

static void
wait_before_retry(void)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, REDO_RETRY_MS, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	HandleStartupProcInterrupts();
}

static bool
keyring_has(const uint8 *bytes, size_t len, uint32 generation)
{
	uint32		gens[CMK_MAX_GENERATIONS];
	uint32		n = 0;
	cmk_error	err;

	if (cmk_core_keyring_generations(bytes, len, gens, &n, &err) != 0)
		return true;			/* undecodable: redo reports it before this */
	for (uint32 i = 0; i < n; i++)
		if (gens[i] == generation)
			return true;
	return false;
}

/*
 * A follower that replays a retirement must not need the generation again:
 * a restartpoint moves its own crash-recovery start past the WAL that used
 * it (the primary checkpointed after checking its standbys), then its live
 * WAL is checked. A generation still there (a follower that lagged when the
 * primary retired it) stays in memory for this run, with a warning; so does
 * the one of this run's temporary files.
 */
static uint32
retired_still_needed(const uint8 *bytes, size_t len, uint32 *keep)
{
	uint32		n_keep = 0;
	bool		restartpoint_done = false;

	for (uint32 i = 0; i < cmk_keys->n_slots; i++)
	{
		uint32		g = cmk_keys->slots[i].generation;
		int64		pages,
					segments;

		if (g == 0 || keyring_has(bytes, len, g))
			continue;
		if (g == cmk_keys->temp_generation)
		{
			/* This run's temporary files use it; gone at the next start. */
			keep[n_keep++] = g;
			ereport(LOG, (errmsg("cmk: key generation %u was retired; this server keeps it in memory until it restarts, for its temporary files", g)));
			continue;
		}
		if (!restartpoint_done && (StandbyMode || ArchiveRecoveryRequested))
		{
			RequestCheckpoint(CHECKPOINT_IMMEDIATE | CHECKPOINT_WAIT);
			restartpoint_done = true;
		}
		cmk_count_live_wal_pages(g, &pages, &segments);
		if (pages > 0)
		{
			keep[n_keep++] = g;
			ereport(WARNING,
					(errmsg("cmk: key generation %u was retired, but " INT64_FORMAT " WAL pages in " INT64_FORMAT " segments of this server's pg_wal still use it",
							g, pages, segments),
					 errdetail("This server received that WAL before it replayed the rotation; it keeps the key in memory until it restarts."),
					 errhint("After its next restartpoint those segments are recycled; pages of a generation it no longer holds are read again from its upstream server or archive.")));
		}
	}
	return n_keep;
}

static void
cmk_rmgr_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	const uint8 *bytes = (const uint8 *) XLogRecGetData(record);
	size_t		len = XLogRecGetDataLen(record);
	XLogRecPtr	lsn = record->EndRecPtr;
	TimeLineID	tli = record->latestPageTLI;
	char		keyring[MAXPGPATH];
	char		next[MAXPGPATH];
	cmk_key_slot *added;
	uint32		unknown[CMK_MAX_GENERATIONS];
	uint32		keep[CMK_MAX_GENERATIONS];
	uint32		n_unknown = 0;
	uint32		n_keep = 0;
	bool		checked_retired = false;

	if (info != XLOG_CMK_KEYRING)
		elog(PANIC, "cmk: unknown WAL record type %u", info);

	/* Already installed: a restart replays WAL that the keyring has seen. */
	if (tli < cmk_keys->installed_timeline ||
		(tli == cmk_keys->installed_timeline && lsn <= cmk_keys->installed_lsn))
	{
		ereport(DEBUG1, (errmsg_internal("cmk: the keyring already holds the change at %X/%X", LSN_FORMAT_ARGS(lsn))));
		return;
	}

	keyring_paths(keyring, next);
	added = palloc0(sizeof(cmk_key_slot) * CMK_MAX_GENERATIONS);
	last_report[0] = '\0';
	for (;;)
	{
		cmk_provider_settings settings;
		cmk_messages messages;
		cmk_error	err;
		uint8	   *file;
		size_t		file_len;
		char		what[1200];

		if (cmk_core_keyring_unknown(bytes, len, cmk_keys, unknown, &n_unknown, &err) != 0)
		{
			report_waiting(lsn, NULL, err.message, err.detail, "The WAL record is damaged; restore this server from a base backup.");
			wait_before_retry();
			continue;
		}
		if (n_unknown > 0)
		{
			cmk_provider_settings_from_gucs(&settings);
			if (cmk_core_unwrap_generations(bytes, len, unknown, n_unknown, &settings, added, &messages, &err) != 0)
			{
				char		kind[64];

				snprintf(kind, sizeof(kind), "unwrap %u", unknown[0]);
				snprintf(what, sizeof(what), "could not unwrap key generation %u: %s", unknown[0], err.message);
				report_waiting(lsn, kind, what, err.detail,
							   "The new key generation is wrapped by the key encryption key in Key Vault: make it reachable from this server (network, credentials, permissions).");
				wait_before_retry();
				continue;
			}
			cmk_log_core_lines(LOG, messages.log);
		}
		if (cmk_core_finish_keyring_change(bytes, len, cmk_keys, added, n_unknown, tli, lsn,
										   &file, &file_len, &err) != 0)
		{
			report_waiting(lsn, NULL, err.message, err.detail, err.hint[0] ? err.hint : "");
			wait_before_retry();
			continue;
		}
		if (!checked_retired)
		{
			n_keep = retired_still_needed(bytes, len, keep);
			checked_retired = true;
		}
		if (!cmk_write_file_synced(next, file, file_len, LOG) || durable_rename(next, keyring, LOG) != 0)
		{
			cmk_core_free(file);
			snprintf(what, sizeof(what), "could not write \"%s\"", keyring);
			report_waiting(lsn, NULL, what, NULL,
						   "Free space on the data directory's file system, or fix the error logged above.");
			wait_before_retry();
			continue;
		}
		if (cmk_core_apply_keyring(file, file_len, cmk_keys, added, n_unknown, keep, n_keep, &err) != 0)
			cmk_report_core_error(PANIC, 0, "could not switch to the replayed keyring", &err);
		cmk_core_free(file);
		break;
	}
	cmk_core_wipe(added, sizeof(cmk_key_slot) * CMK_MAX_GENERATIONS);
	pfree(added);
	if (last_report[0])
		ereport(LOG, (errmsg("cmk: the keyring change at %X/%X is replayed", LSN_FORMAT_ARGS(lsn))));
	{
		char		id[CMK_KEK_ID_MAX];

		cmk_kek_id(id, sizeof(id));
		cmk_event("keyring_replayed", id, "ok", "keyring change replayed from WAL");
	}
}

static void
cmk_rmgr_desc(StringInfo buf, XLogReaderState *record)
{
	appendStringInfo(buf, "keyring of %u bytes", XLogRecGetDataLen(record));
}

static const char *
cmk_rmgr_identify(uint8 info)
{
	return (info & ~XLR_INFO_MASK) == XLOG_CMK_KEYRING ? "KEYRING" : NULL;
}

static RmgrData cmk_rmgr = {
	.rm_name = "cmk",
	.rm_redo = cmk_rmgr_redo,
	.rm_desc = cmk_rmgr_desc,
	.rm_identify = cmk_rmgr_identify,
};

void
cmk_keyring_rmgr_register(void)
{
	RegisterCustomRmgr(CMK_RMGR_ID, &cmk_rmgr);
}
