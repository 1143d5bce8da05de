/*
 * A background worker for cmk's tests only (never built into the extension
 * or installed): connected to the database "postgres", it inserts a row
 * (its pid and the time) into worker_log every 50 ms, as an extension's
 * worker that reads and writes user data would. test/t/084_revocation.pl
 * builds it and preloads it beside cmk to show that revocation ends such a
 * worker and refuses it until the key works again.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

void		_PG_init(void);
PGDLLEXPORT void cmk_test_worker_main(Datum arg);

void
cmk_test_worker_main(Datum arg)
{
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection("postgres", NULL, 0);
	pgstat_report_appname("cmk test worker");
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		/* The test creates the table after the server starts. */
		if (SPI_execute("SELECT 1 FROM pg_class WHERE relname = 'worker_log'", true, 0) == SPI_OK_SELECT &&
			SPI_processed == 1)
			SPI_execute("INSERT INTO worker_log VALUES (pg_backend_pid(), clock_timestamp())", false, 0);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
}

void
_PG_init(void)
{
	BackgroundWorker worker = {0};

	if (!process_shared_preload_libraries_in_progress)
		return;
	snprintf(worker.bgw_name, BGW_MAXLEN, "cmk test worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cmk test worker");
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cmk_test_worker");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cmk_test_worker_main");
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	RegisterBackgroundWorker(&worker);
}
