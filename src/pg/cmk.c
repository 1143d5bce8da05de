/*
 * cmk: transparent encryption at rest for PostgreSQL 15 with a
 * customer-managed key. Entry point: _PG_init runs in the postmaster
 * (shared_preload_libraries only) and sets up each module in turn.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "pg/cmk.h"
#include "pg/file_io.h"
#include "pg/lifecycle.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;

/* Runs in the postmaster once every preloaded library is loaded. */
static void
cmk_shmem_request_all(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	cmk_shmem_request();
	/* Extensions that write user data through their own imports. */
	cmk_io_binding_install_in("/pg_stat_statements.so");
}

static void
require_preload_and_matching_server(void)
{
	const char *running;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cmk must be loaded via shared_preload_libraries"),
				 errhint("Add 'cmk' to shared_preload_libraries in postgresql.conf and restart the server.")));

	/* f_smgr and its table change between minor releases: refuse others. */
	running = GetConfigOption("server_version_num", false, false);
	if (running == NULL || atoi(running) != PG_VERSION_NUM)
		ereport(FATAL,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cmk was built for PostgreSQL %s (%d) but the server is %s",
						PG_VERSION, PG_VERSION_NUM, running ? running : "unknown"),
				 errhint("Rebuild cmk against the headers of the running server.")));
}

void
_PG_init(void)
{
	require_preload_and_matching_server();
	cmk_guc_init();
	cmk_key_policy_check_sources();
	cmk_smgr_binding_locate();
	cmk_key_memory_init();
	cmk_page_checksum_init();
	cmk_smgr_binding_install();
	cmk_io_binding_install();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cmk_shmem_request_all;
	cmk_shmem_startup();
	cmk_keyring_rmgr_register();
	cmk_access_gate_init();
	cmk_key_policy_init();
	cmk_top_level_init();
	cmk_key_worker_register();
	cmk_sweep_request_at_start();
	cmk_sweep_register();
}
