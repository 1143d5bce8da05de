/*
 * DEK rotation from SQL:
 *   cmk_rotate_dek()                a new key generation, current at once;
 *                                   the sweep rewrites older pages
 *   cmk_retire_generation(integer)  removes an old generation from the
 *                                   keyring, refused while any relation page
 *                                   or WAL segment in pg_wal still uses it
 *   cmk_sweep_progress()            what the sweep is doing
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufpage.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg/cmk.h"
#include "pg/file_io.h"
#include "pg/lifecycle.h"

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
		PageHeader	ph = (PageHeader) block.data;

		if (((ph->pd_flags & CMK_PD_GENERATION_MASK) >> CMK_PD_GENERATION_SHIFT) == c->generation)
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

static void
count_wal_pages(generation_count *c)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	PGAlignedXLogBlock page;

	snprintf(dir, sizeof(dir), "%s/pg_wal", DataDir);
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
	{
		char		path[MAXPGPATH];
		int			fd;
		bool		hit = false;

		TimeLineID	tli;
		XLogSegNo	segno;
		XLogRecPtr	start;
		off_t		off = 0;

		if (strlen(de->d_name) != 24 || strspn(de->d_name, "0123456789ABCDEF") != 24)
			continue;
		XLogFromFileName(de->d_name, &tli, &segno, wal_segment_size);
		XLogSegNoOffsetToRecPtr(segno, 0, wal_segment_size, start);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			continue;
		while (read(fd, page.data, XLOG_BLCKSZ) == XLOG_BLCKSZ)
		{
			/*
			 * Only live pages count: a recycled segment keeps pages of its
			 * earlier life (another xlp_pageaddr), which nothing reads.
			 */
			if (cmk_wal_page_generation((const uint8 *) page.data) == c->generation &&
				((XLogPageHeader) page.data)->xlp_pageaddr == start + off)
			{
				c->pages++;
				hit = true;
			}
			off += XLOG_BLCKSZ;
		}
		close(fd);
		if (hit)
			c->files++;
	}
	closedir(d);
}

Datum
cmk_retire_generation(PG_FUNCTION_ARGS)
{
	int32		generation = PG_GETARG_INT32(0);
	generation_count data = {.generation = (uint32) generation};
	generation_count wal = {.generation = (uint32) generation};
	bool		known = false;

	cmk_require_top_level("cmk_retire_generation()");
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
	count_wal_pages(&wal);
	if (wal.pages > 0)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d still encrypts " INT64_FORMAT " pages in " INT64_FORMAT " WAL segments in pg_wal",
							   generation, wal.pages, wal.files),
						errdetail("Crash recovery, replication slots and standbys may still need those segments."),
						errhint("They are removed or recycled by later checkpoints (SELECT pg_switch_wal(); CHECKPOINT;), once no replication slot holds them.")));
	if ((uint32) generation == cmk_keys->temp_generation)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
						errmsg("cmk: key generation %d encrypts this server run's temporary files", generation),
						errhint("Retire it after the next restart.")));

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
	char		path[MAXPGPATH];
	char		buf[64] = {0};
	int			fd;
	const char *state;
	double		elapsed = 0;
	double		rate = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	SpinLockAcquire(&cmk_status_shared->mutex);
	memcpy(&st, cmk_status_shared, sizeof(st));
	SpinLockRelease(&cmk_status_shared->mutex);

	snprintf(path, sizeof(path), "%s/pg_cmk/sweep", DataDir);
	fd = open(path, O_RDONLY);
	if (fd >= 0)
	{
		if (read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = '\0';
		close(fd);
	}
	state = st.sweep_running ? "running" : strncmp(buf, "done", 4) == 0 ? "done" : buf[0] ? "pending" : "not needed";

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
