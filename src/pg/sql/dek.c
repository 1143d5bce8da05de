/*
 * DEK rotation from SQL:
 *   cmk_rotate_dek()                a new key generation, current at once;
 *                                   the sweep rewrites older pages
 *   cmk_retire_generation(integer)  removes an old generation from the
 *                                   keyring, refused while anything that may
 *                                   still be read or replayed needs it:
 *                                   relation pages, this run's temporary
 *                                   files, WAL being written, standbys,
 *                                   replication slots and base backups that
 *                                   need WAL from before the rotation, live
 *                                   WAL in pg_wal
 *   cmk_sweep_progress()            what the sweep is doing
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "postmaster/bgwriter.h"
#include "utils/pg_lsn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufpage.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg/sql/sql.h"

PG_FUNCTION_INFO_V1(cmk_rotate_dek);
PG_FUNCTION_INFO_V1(cmk_retire_generation);
PG_FUNCTION_INFO_V1(cmk_sweep_progress);

Datum
cmk_rotate_dek(PG_FUNCTION_ARGS)
{
	uint32		generation;

	cmk_require_top_level("cmk_rotate_dek()");
	generation = cmk_add_generation();

	cmk_sweep_request();
	PG_RETURN_INT32((int32) generation);
}

typedef struct generation_count
{
	uint32		generation;
	int64		pages;
	int64		files;
} generation_count;

static bool
count_relation_pages(const char *path, void *arg)
{
	generation_count *c = (generation_count *) arg;
	PGAlignedBlock block;
	int			fd = open(path, O_RDONLY | PG_BINARY);
	bool		hit = false;

	if (fd < 0)
		return false;
	while (read(fd, block.data, BLCKSZ) == BLCKSZ)
	{
		if (cmk_page_generation(block.data) == c->generation)
		{
			c->pages++;
			hit = true;
		}
	}
	close(fd);
	if (hit)
		c->files++;
	return false;
}

/*
 * The WAL position from which generation no longer encrypts WAL (the WAL
 * from LSN of the generation after it in the keyring's WAL table);
 * InvalidXLogRecPtr when unknown (a rotation made before cmk recorded it).
 * Sets *still_current when the generation is the last in the table.
 */
static XLogRecPtr
wal_stop_lsn(uint32 generation, bool *still_current)
{
	uint32		n = cmk_keys->n_wal;

	*still_current = false;
	for (uint32 i = 0; i < n; i++)
	{
		if (cmk_keys->wal[i].generation != generation)
			continue;
		if (i + 1 == n)
		{
			*still_current = true;
			return InvalidXLogRecPtr;
		}
		return cmk_keys->wal[i + 1].from_lsn;
	}
	return InvalidXLogRecPtr;
}

/*
 * Replication slots whose restart_lsn is before threshold, standbys that
 * have not replayed up to it, and running base backups: each may still ask
 * this server for WAL that the generation encrypts. Returns the list, one
 * line each, or NULL.
 */
static char *
replication_holders(XLogRecPtr threshold)
{
	StringInfoData out;
	char		lsn[32];
	Oid			argtypes[1] = {PG_LSNOID};
	Datum		args[1];

	initStringInfo(&out);
	snprintf(lsn, sizeof(lsn), "%X/%X", LSN_FORMAT_ARGS(threshold));
	args[0] = LSNGetDatum(threshold);
	SPI_connect();
	if (SPI_execute_with_args("SELECT format('replication slot \"%s\" needs WAL from %s', slot_name, restart_lsn)"
							  " FROM pg_replication_slots WHERE restart_lsn < $1 ORDER BY slot_name",
							  1, argtypes, args, NULL, true, 0) == SPI_OK_SELECT)
		for (uint64 i = 0; i < SPI_processed; i++)
			appendStringInfo(&out, "%s%s", out.len ? "\n" : "",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	if (SPI_execute_with_args("SELECT CASE WHEN state = 'backup' THEN format('a base backup (%s, pid %s) is running', application_name, pid)"
							  " ELSE format('standby \"%s\" has replayed WAL only up to %s', application_name, coalesce(replay_lsn::text, 'nothing yet')) END"
							  " FROM pg_stat_replication WHERE replay_lsn IS NULL OR replay_lsn < $1 ORDER BY application_name, pid",
							  1, argtypes, args, NULL, true, 0) == SPI_OK_SELECT)
		for (uint64 i = 0; i < SPI_processed; i++)
			appendStringInfo(&out, "%s%s", out.len ? "\n" : "",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return out.len ? out.data : NULL;
}

Datum
cmk_retire_generation(PG_FUNCTION_ARGS)
{
	int32		generation = PG_GETARG_INT32(0);
	generation_count data = {.generation = (uint32) generation};
	int64		wal_pages,
				wal_segments;
	bool		known = false;
	bool		still_current;
	XLogRecPtr	stop;
	XLogRecPtr	threshold;
	XLogRecPtr	insert;
	char	   *holders;

	cmk_require_top_level("cmk_retire_generation()");
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cmk: the keyring cannot be changed during recovery"),
				 errhint("Retire generations on the primary; standbys follow through WAL.")));
	for (uint32 i = 0; i < cmk_keys->n_slots; i++)
		known = known || (cmk_keys->slots[i].generation == (uint32) generation && generation != 0);
	if (!known)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("cmk: key generation %d is not in the keyring", generation)));
	if ((uint32) generation == cmk_current_generation())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d is the current one", generation)));
	cmk_walk_relation_files(DataDir, count_relation_pages, &data);
	if (data.pages > 0)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d still encrypts " INT64_FORMAT " pages in " INT64_FORMAT " relation files",
							   generation, data.pages, data.files),
						errhint("Wait for the sweep to finish (cmk_sweep_progress) and for a checkpoint.")));
	if ((uint32) generation == cmk_keys->temp_generation)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d encrypts this server run's temporary files", generation),
						errhint("Retire it after the next restart.")));

	/* WAL: this server must be writing past it, and every reader must be too. */
	stop = wal_stop_lsn((uint32) generation, &still_current);
	insert = GetXLogInsertRecPtr();
	if (still_current || (stop != InvalidXLogRecPtr && insert < stop))
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d still encrypts new WAL", generation),
						still_current ? 0 : errdetail("WAL is encrypted with the next generation from %X/%X on (the start of the second segment after the rotation); WAL is written at %X/%X.",
													  LSN_FORMAT_ARGS(stop), LSN_FORMAT_ARGS(insert)),
						errhint("Retire it once WAL has moved on (SELECT pg_switch_wal() moves to the next segment).")));
	threshold = stop != InvalidXLogRecPtr ? stop : GetRedoRecPtr();
	holders = replication_holders(threshold);
	if (holders)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d may still be needed to read WAL before %X/%X",
							   generation, LSN_FORMAT_ARGS(threshold)),
						errdetail("%s", holders),
						errhint("Retire it once every standby has replayed past that point and no replication slot or base backup needs earlier WAL (drop slots that are no longer used).")));

	/*
	 * A checkpoint now: followers replaying the retirement make a
	 * restartpoint at it, which moves their own crash-recovery start past
	 * the WAL they wrote with this generation (they had replayed past the
	 * rotation when checked above). It also recycles old segments here.
	 */
	RequestCheckpoint(CHECKPOINT_IMMEDIATE | CHECKPOINT_FORCE | CHECKPOINT_WAIT);
	cmk_count_live_wal_pages((uint32) generation, &wal_pages, &wal_segments);
	if (wal_pages > 0)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d still encrypts " INT64_FORMAT " pages in " INT64_FORMAT " WAL segments in pg_wal",
							   generation, wal_pages, wal_segments),
						errdetail("Crash recovery, standbys that connect later (wal_keep_size), replication slots and the archiver may still need those segments."),
						errhint("They are removed or recycled by later checkpoints (SELECT pg_switch_wal(); CHECKPOINT;), once nothing keeps them.")));

	cmk_remove_generation((uint32) generation);
	PG_RETURN_VOID();
}

Datum
cmk_sweep_progress(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[14];
	bool		nulls[14] = {0};
	cmk_shared_status st;
	char		buf[64];
	const char *state;
	double		elapsed = 0;
	double		rate = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	cmk_shared_status_read(&st);

	/* One reading of pg_cmk/sweep, judged by the sweep layer, which owns
	 * its format: "done" only for the current generation. */
	cmk_sweep_mark_read(buf, sizeof(buf));
	state = st.sweep_running ? "running" : cmk_sweep_mark_state(buf);

	if (st.sweep_started != 0)
	{
		TimestampTz end = st.sweep_running ? GetCurrentTimestamp() : st.sweep_finished;

		elapsed = (double) (end - st.sweep_started) / USECS_PER_SEC;
		if (elapsed > 0)
			rate = st.sweep_pages_scanned / elapsed;
	}
	values[0] = CStringGetTextDatum(state);
	values[1] = Int32GetDatum((int32) cmk_current_generation());
	values[2] = Int32GetDatum(st.sweep_databases_done);
	values[3] = Int32GetDatum(st.sweep_databases_total);
	values[4] = Int64GetDatum(st.sweep_relations_done);
	values[5] = Int64GetDatum(st.sweep_relations_total);
	values[6] = Int64GetDatum(st.sweep_pages_scanned);
	values[7] = Int64GetDatum(st.sweep_pages_rewritten);
	nulls[8] = !st.sweep_running;
	values[8] = nulls[8] ? (Datum) 0 : CStringGetTextDatum(st.sweep_relation);
	nulls[9] = st.sweep_started == 0;
	values[9] = TimestampTzGetDatum(st.sweep_started);
	nulls[10] = st.sweep_finished == 0 || st.sweep_running;
	values[10] = TimestampTzGetDatum(st.sweep_finished);
	values[11] = Float8GetDatum(rate);
	values[12] = Float8GetDatum(st.sweep_pages_scanned > 0 && elapsed > 0 ?
								st.sweep_pages_rewritten / elapsed : 0);
	/* Estimate from the share of relations done in this pass. */
	nulls[13] = !(st.sweep_running && st.sweep_relations_done > 0 && st.sweep_databases_total > 0);
	if (!nulls[13])
	{
		double		done = (st.sweep_databases_done +
							(double) st.sweep_relations_done / Max(st.sweep_relations_total, 1)) /
			st.sweep_databases_total;

		values[13] = Float8GetDatum(done > 0 ? elapsed * (1 - done) / done : 0);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
