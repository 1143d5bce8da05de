/*
 * Keyring changes go through WAL, with a custom resource manager (PostgreSQL
 * 15's RegisterCustomRmgr): the record carries the whole new keyring file
 * (wrapped DEKs only, and WAL is encrypted anyway). Replaying it writes the
 * file and updates the keys in memory, so a standby follows a rotation made
 * on its primary, and a primary that crashes between the record and the
 * file write finishes the change in crash recovery. Order on the primary:
 * WAL record, flush, then the file.
 *
 * Resource manager id 152 (in the custom range 128..255); change
 * CMK_RMGR_ID if another extension on the same server uses it.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "storage/lwlock.h"

#include "pg/cmk.h"
#include "pg/lifecycle.h"

#define XLOG_CMK_KEYRING 0x00

void
cmk_kek_id(char *buf, size_t len)
{
	if (strncmp(cmk_keys->kek_base, "file:", 5) == 0)
		snprintf(buf, len, "%s", cmk_keys->kek_base);
	else
		snprintf(buf, len, "%s/%s", cmk_keys->kek_base, cmk_keys->kek_version);
}

static void
log_messages(const cmk_messages *m)
{
	char		copy[sizeof(m->log)];
	char	   *line;

	strlcpy(copy, m->log, sizeof(copy));
	for (line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"))
		ereport(LOG, (errmsg("cmk: %s", strncmp(line, "cmk: ", 5) == 0 ? line + 5 : line)));
}

static void
install(const uint8 *bytes, size_t len, int elevel)
{
	cmk_provider_settings settings;
	cmk_messages messages;
	cmk_error	err;

	cmk_provider_settings_from_gucs(&settings);
	if (cmk_core_install_keyring(DataDir, bytes, len, cmk_keys, &settings, &messages, &err) != 0)
	{
		log_messages(&messages);
		ereport(elevel,
				(errmsg("cmk: could not install the new keyring: %s", err.message),
				 err.detail[0] ? errdetail("%s", err.detail) : 0,
				 err.hint[0] ? errhint("%s", err.hint) : 0));
	}
	log_messages(&messages);
}

/* WAL record, flush, then the file and the keys in memory; frees bytes. */
static void
log_and_install(uint8 *bytes, size_t len)
{
	XLogRecPtr	lsn;

	START_CRIT_SECTION();
	XLogBeginInsert();
	XLogRegisterData((char *) bytes, (uint32) len);
	lsn = XLogInsert(CMK_RMGR_ID, XLOG_CMK_KEYRING);
	XLogFlush(lsn);
	END_CRIT_SECTION();

	/* From here on, failing to write would leave WAL and file disagreeing. */
	install(bytes, len, PANIC);
	cmk_core_free(bytes);
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
	if (cmk_core_add_generation(DataDir, cmk_keys, &settings, &bytes, &len, &messages, &err) != 0)
	{
		log_messages(&messages);
		LWLockRelease(cmk_rotation_lock());
		cmk_event("dek_rotation", NULL, "failed", err.message);
		ereport(ERROR,
				(errmsg("cmk: cannot create a new key generation: %s", err.message),
				 errdetail("The keyring was not changed."),
				 err.hint[0] ? errhint("%s", err.hint) : 0));
	}
	log_messages(&messages);
	log_and_install(bytes, len);
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
		ereport(ERROR, (errmsg("cmk: %s", err.message)));
	}
	log_and_install(bytes, len);
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
	log_messages(&messages);
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

	log_and_install(bytes, len);
	cmk_kek_id(new_id, sizeof(new_id));
	LWLockRelease(cmk_rotation_lock());
	cmk_event("kek_rotated", new_id, "ok", psprintf("the keyring was wrapped by %s", old_id));
}

static void
cmk_rmgr_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;

	if (info != XLOG_CMK_KEYRING)
		elog(PANIC, "cmk: unknown WAL record type %u", info);
	install((const uint8 *) XLogRecGetData(record), XLogRecGetDataLen(record), PANIC);
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
