/*
 * The sweep (DESIGN.md "Key lifecycle", "Data pages"): rewrites every page
 * whose on-disk key generation is not the current one: plaintext pages
 * written before cmk was first loaded, and pages of older generations after
 * cmk_rotate_dek(). Online, relation by relation, every fork, every
 * database (template0 included), throttled by a cost limit like autovacuum.
 *
 * For each block the sweep reads the page as stored (the original mdread,
 * not cmk's wrapper) to learn its generation; a stale page is read through
 * the buffer manager, marked dirty and WAL-logged as a full-page image, so
 * the next write encrypts it with the current generation, a torn write is
 * repaired from WAL, and standbys replaying the image end in the same state.
 * A pass is followed by a checkpoint and a verifying pass; the sweep is done
 * when a pass finds nothing stale. Whether a sweep is needed is kept in
 * pg_cmk/sweep (the target generation, or "done <generation>"), so a
 * restart or crash resumes it: pages already rewritten are skipped after one
 * raw read each.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "postmaster/bgwriter.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/md.h"
#include "storage/smgr.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg/sweep/sweep.h"

PGDLLEXPORT void cmk_sweep_launcher_main(Datum arg);
PGDLLEXPORT void cmk_sweep_database_main(Datum arg);

int			cmk_sweep_cost_limit = 2000;
int			cmk_sweep_cost_delay_ms = 10;

#define COST_READ 1
#define COST_REWRITE 20
#define SWEEP_FILE "pg_cmk/sweep"

/* ---- the persistent "sweep needed" mark ---- */

/* Reads pg_cmk/sweep into mark (size bytes, NUL-terminated; "" if absent). */
void
cmk_sweep_mark_read(char *mark, size_t size)
{
	char		path[MAXPGPATH];
	int			fd;
	ssize_t		n = 0;

	snprintf(path, sizeof(path), "%s/%s", DataDir, SWEEP_FILE);
	fd = open(path, O_RDONLY);
	if (fd >= 0)
	{
		n = read(fd, mark, size - 1);
		close(fd);
	}
	mark[n > 0 ? n : 0] = '\0';
}

/*
 * The generation a sweep must bring every page to, or 0 when none is
 * needed, given pg_cmk/sweep's contents: the launcher's test, and through
 * cmk_sweep_mark_state the view's, so the view never says "done" while the
 * launcher would sweep.
 */
static uint32
sweep_pending_of(const char *mark)
{
	if (strncmp(mark, "done", 4) == 0)
	{
		uint32		done = (uint32) strtoul(mark + 4, NULL, 10);

		/* A rotation whose request could not be recorded still needs one. */
		return (done != 0 && done != cmk_current_generation()) ? cmk_current_generation() : 0;
	}
	/* Pending: always to the current generation (a newer rotation may have
	 * happened without its request being recorded, e.g. a crash). */
	return mark[0] ? cmk_current_generation() : 0;
}

static uint32
sweep_pending(void)
{
	char		mark[64];

	cmk_sweep_mark_read(mark, sizeof(mark));
	return sweep_pending_of(mark);
}

/* cmk_sweep_progress's state when no pass runs, given pg_cmk/sweep's contents. */
const char *
cmk_sweep_mark_state(const char *mark)
{
	if (sweep_pending_of(mark) != 0)
		return "pending";
	return strncmp(mark, "done", 4) == 0 ? "done" : "not needed";
}

static bool
write_sweep_file(const char *text, int elevel)
{
	char		path[MAXPGPATH];

	snprintf(path, sizeof(path), "%s/%s", DataDir, SWEEP_FILE);
	return cmk_replace_file(path, text, strlen(text), elevel);
}

/* First start of cmk on this data directory: whatever is there is plaintext. */
void
cmk_sweep_request_at_start(void)
{
	char		text[32];

	if (sweep_pending() != 0)
		return;
	if (cmk_keys->keyring_created)
	{
		snprintf(text, sizeof(text), "%u\n", cmk_keys->current_generation);
		write_sweep_file(text, ERROR);
	}
}

/* Asks for a sweep to the current generation and wakes the launcher. */
void
cmk_sweep_request(void)
{
	char		text[32];

	/* The rotation is done: a failure here only delays the sweep (the
	 * launcher also starts one when the last done mark is older). */
	snprintf(text, sizeof(text), "%u\n", cmk_current_generation());
	(void) write_sweep_file(text, WARNING);
	/* Its latch, not a signal: SIGUSR1 is PostgreSQL's (procsignal). */
	if (cmk_status_shared->sweep_launcher_latch != NULL)
		SetLatch(cmk_status_shared->sweep_launcher_latch);
}

/* ---- per-database worker ---- */

static int	cost_balance = 0;

static void
throttle(int cost)
{
	cost_balance += cost;
	if (cost_balance >= cmk_sweep_cost_limit && cmk_sweep_cost_delay_ms > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 cmk_sweep_cost_delay_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		cost_balance = 0;
	}
	CHECK_FOR_INTERRUPTS();
}

static void
add_progress(int64 scanned, int64 stale, int64 rewritten)
{
	SpinLockAcquire(&cmk_status_shared->mutex);
	cmk_status_shared->sweep_pages_scanned += scanned;
	cmk_status_shared->sweep_pages_stale += stale;
	cmk_status_shared->sweep_pages_rewritten += rewritten;
	SpinLockRelease(&cmk_status_shared->mutex);
}

static void
sweep_relation(Oid relid, bool rewrite, int64 *stale_out)
{
	Relation	rel;
	PGAlignedBlock raw;
	uint32		current = cmk_current_generation();
	XLogRecPtr	rotated = cmk_current_from_lsn(current);
	bool		logged;

	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		return;
	if (!RELKIND_HAS_STORAGE(rel->rd_rel->relkind) || RELATION_IS_OTHER_TEMP(rel))
	{
		relation_close(rel, AccessShareLock);
		return;
	}
	{
		char		name[sizeof(cmk_status_shared->sweep_relation)];

		snprintf(name, sizeof(name), "%s.%s", get_database_name(MyDatabaseId), RelationGetRelationName(rel));
		SpinLockAcquire(&cmk_status_shared->mutex);
		strlcpy(cmk_status_shared->sweep_relation, name, sizeof(cmk_status_shared->sweep_relation));
		SpinLockRelease(&cmk_status_shared->mutex);
	}

	logged = RelationNeedsWAL(rel);
	for (ForkNumber fork = MAIN_FORKNUM; fork <= MAX_FORKNUM; fork++)
	{
		SMgrRelation smgr = RelationGetSmgr(rel);
		BlockNumber nblocks;
		int64		scanned = 0,
					stale = 0,
					rewritten = 0;

		if (!smgrexists(smgr, fork))
			continue;
		nblocks = smgrnblocks(smgr, fork);
		for (BlockNumber blk = 0; blk < nblocks; blk++)
		{
			cmk_page_kind kind;

			/* The page as stored: md.c's own read, not cmk's wrapper. */
			mdread(RelationGetSmgr(rel), fork, blk, raw.data);
			scanned++;
			throttle(COST_READ);
			kind = cmk_page_classify(raw.data);
			if (kind == CMK_PAGE_NEW)
				continue;
			/*
			 * A page in the current generation is done, unless WAL last
			 * changed it before the rotation: followers may then still hold
			 * it in an older generation (written before they replayed the
			 * rotation, and not changed by WAL since), so it is logged once
			 * more as a full image, which they write again.
			 */
			if (kind == CMK_PAGE_ENCRYPTED &&
				cmk_page_generation(raw.data) == current &&
				!((logged || fork == INIT_FORKNUM) && PageGetLSN(raw.data) < rotated))
				continue;
			stale++;
			if (rewrite)
			{
				Buffer		buf = ReadBufferExtended(rel, fork, blk, RBM_NORMAL, NULL);

				LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
				START_CRIT_SECTION();
				MarkBufferDirty(buf);
				/* Whole image (page_std false): right for every page layout. */
				if (RelationNeedsWAL(rel) || fork == INIT_FORKNUM)
					log_newpage_buffer(buf, false);
				END_CRIT_SECTION();
				UnlockReleaseBuffer(buf);
				rewritten++;
				throttle(COST_REWRITE);
			}
			if (scanned % 1024 == 0)
			{
				add_progress(scanned, stale, rewritten);
				*stale_out += stale;
				scanned = stale = rewritten = 0;
			}
		}
		add_progress(scanned, stale, rewritten);
		*stale_out += stale;
	}
	relation_close(rel, AccessShareLock);
}

void
cmk_sweep_database_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	bool		rewrite = (MyBgworkerEntry->bgw_extra[0] == 'w');
	bool		shared = (MyBgworkerEntry->bgw_extra[1] == 's');
	List	   *relids = NIL;
	ListCell   *lc;
	int64		stale = 0;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* Shared catalogs once (with the first database), local relations everywhere. */
	if (SPI_execute(shared ? "SELECT oid FROM pg_class WHERE relkind IN ('r','i','t','m','S') AND relpersistence <> 't'"
					: "SELECT oid FROM pg_class WHERE NOT relisshared AND relkind IN ('r','i','t','m','S') AND relpersistence <> 't'",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "cmk: could not list relations");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		relids = lappend_oid(relids, DatumGetObjectId(d));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	SpinLockAcquire(&cmk_status_shared->mutex);
	cmk_status_shared->sweep_relations_total += list_length(relids);
	SpinLockRelease(&cmk_status_shared->mutex);

	foreach(lc, relids)
	{
		StartTransactionCommand();
		sweep_relation(lfirst_oid(lc), rewrite, &stale);
		CommitTransactionCommand();
		SpinLockAcquire(&cmk_status_shared->mutex);
		cmk_status_shared->sweep_relations_done++;
		SpinLockRelease(&cmk_status_shared->mutex);
	}
	proc_exit(0);				/* any other code would count as a crash */
}

/* ---- launcher ---- */

/* Databases, read from the shared catalog without connecting to one. */
static List *
database_oids(void)
{
	List	   *oids = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (db->datconnlimit == -2)
			continue;			/* invalid (half-dropped) database */
		old = MemoryContextSwitchTo(TopMemoryContext);
		oids = lappend_oid(oids, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return oids;
}

/* Runs one database worker and waits for it; returns whether it saw stale pages. */
static bool
run_database(Oid dboid, bool rewrite, bool shared)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	pid_t		pid;
	char		name[BGW_MAXLEN];

	snprintf(name, sizeof(name), "cmk sweep of database %u", dboid);
	cmk_worker_describe(&w, "cmk sweep", name, "cmk_sweep_database_main", true,
						BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART);
	w.bgw_main_arg = ObjectIdGetDatum(dboid);
	w.bgw_notify_pid = MyProcPid;
	w.bgw_extra[0] = rewrite ? 'w' : 'r';
	w.bgw_extra[1] = shared ? 's' : 'l';
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		ereport(ERROR, (errmsg("cmk: could not start a sweep worker"),
						errhint("Raise max_worker_processes.")));
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		ereport(ERROR, (errmsg("cmk: the sweep worker did not start")));
	(void) WaitForBackgroundWorkerShutdown(handle);
	/* The exit code is not reported back; stale pages are counted in shmem. */
	return true;
}

/* Stale pages seen by one pass over every database; -1 when the server
 * became inaccessible meanwhile (the pass is incomplete). */
static int64
run_pass(bool rewrite)
{
	List	   *dbs = database_oids();
	ListCell   *lc;
	int64		stale_before;

	SpinLockAcquire(&cmk_status_shared->mutex);
	stale_before = cmk_status_shared->sweep_pages_stale;
	cmk_status_shared->sweep_databases_total = list_length(dbs);
	cmk_status_shared->sweep_databases_done = 0;
	cmk_status_shared->sweep_relations_total = 0;
	cmk_status_shared->sweep_relations_done = 0;
	SpinLockRelease(&cmk_status_shared->mutex);

	foreach(lc, dbs)
	{
		/* Inaccessible: its workers are ended and refused; stop the pass. */
		if (cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE)
			return -1;
		run_database(lfirst_oid(lc), rewrite, lc == list_head(dbs));
		SpinLockAcquire(&cmk_status_shared->mutex);
		cmk_status_shared->sweep_databases_done++;
		SpinLockRelease(&cmk_status_shared->mutex);
	}
	if (cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE)
		return -1;
	return cmk_status_shared->sweep_pages_stale - stale_before;
}

void
cmk_sweep_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);	/* shared catalogs only */
	cmk_status_shared->sweep_launcher_pid = MyProcPid;
	cmk_status_shared->sweep_launcher_latch = MyLatch;

	for (int failed_passes = 0;;)
	{
		uint32		target;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		target = sweep_pending();
		if (target != 0 && failed_passes < 3 && !RecoveryInProgress() &&
			cmk_status_shared->access_state != CMK_ACCESS_INACCESSIBLE)
		{
			char		detail[128];
			int64		stale;

			SpinLockAcquire(&cmk_status_shared->mutex);
			cmk_status_shared->sweep_running = true;
			cmk_status_shared->sweep_target = cmk_current_generation();
			cmk_status_shared->sweep_started = GetCurrentTimestamp();
			cmk_status_shared->sweep_pages_scanned = 0;
			cmk_status_shared->sweep_pages_stale = 0;
			cmk_status_shared->sweep_pages_rewritten = 0;
			SpinLockRelease(&cmk_status_shared->mutex);
			cmk_event("sweep_started", NULL, "running", psprintf("rewriting pages below key generation %u", cmk_current_generation()));

			(void) run_pass(true);
			/* FLUSH_ALL: unlogged relations' buffers too. */
			RequestCheckpoint(CHECKPOINT_IMMEDIATE | CHECKPOINT_FORCE | CHECKPOINT_WAIT | CHECKPOINT_FLUSH_ALL);
			stale = run_pass(false);

			SpinLockAcquire(&cmk_status_shared->mutex);
			cmk_status_shared->sweep_running = false;
			cmk_status_shared->sweep_finished = GetCurrentTimestamp();
			SpinLockRelease(&cmk_status_shared->mutex);
			snprintf(detail, sizeof(detail), INT64_FORMAT " pages rewritten, " INT64_FORMAT " still stale after the checkpoint",
					 cmk_status_shared->sweep_pages_rewritten, stale);
			if (stale < 0)
				cmk_event("sweep_pass", NULL, "interrupted",
						  "the server became inaccessible; the sweep resumes when the key works again");
			else if (stale == 0 && cmk_current_generation() == target)
			{
				char		done[32];

				snprintf(done, sizeof(done), "done %u\n", target);
				(void) write_sweep_file(done, WARNING);
				cmk_event("sweep_finished", NULL, "done", detail);
				failed_passes = 0;
			}
			else
			{
				cmk_event("sweep_pass", NULL, "again", detail);
				failed_passes++;
			}
			continue;			/* look again at once: a pass may remain */
		}
		failed_passes = 0;		/* after a pause, try again */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
cmk_sweep_define_settings(void)
{
	DefineCustomIntVariable("cmk.sweep_cost_limit",
							"Work the sweep does (a page read costs 1, a rewrite 20) before it sleeps cmk.sweep_cost_delay.",
							NULL, &cmk_sweep_cost_limit, 2000, 1, 1000000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("cmk.sweep_cost_delay",
							"How long the sweep sleeps each time it reaches cmk.sweep_cost_limit (0 = no throttling).",
							NULL, &cmk_sweep_cost_delay_ms, 10, 0, 1000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
}

void
cmk_sweep_register(void)
{
	BackgroundWorker w;

	cmk_worker_describe(&w, "cmk sweep launcher", NULL, "cmk_sweep_launcher_main", true,
						BgWorkerStart_RecoveryFinished, 10);
	RegisterBackgroundWorker(&w);
}
