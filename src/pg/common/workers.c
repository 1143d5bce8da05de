/*
 * cmk's background workers (the key worker, the sweep launcher and its
 * per-database workers) are described the same way: this library, a named
 * entry point, shared memory; only the database connection, start time and
 * restart differ.
 */
#include "postgres.h"

#include "postmaster/bgworker.h"

#include "pg/common/common.h"

void
cmk_worker_describe(BackgroundWorker *worker, const char *type, const char *name,
					const char *function, bool connect,
					BgWorkerStartTime start, int restart_s)
{
	memset(worker, 0, sizeof(*worker));
	strlcpy(worker->bgw_name, name ? name : type, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
	strlcpy(worker->bgw_library_name, "cmk", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | (connect ? BGWORKER_BACKEND_DATABASE_CONNECTION : 0);
	worker->bgw_start_time = start;
	worker->bgw_restart_time = restart_s;
}
