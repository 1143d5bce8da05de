/*
 * cmk: transparent encryption at rest for PostgreSQL 15 with a
 * customer-managed key. Entry point: _PG_init runs in the postmaster
 * (shared_preload_libraries only) and sets up each module in turn.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

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

/*
 * Only the postmaster may bind. No check of the minor version: PostgreSQL
 * keeps the extension ABI within a major release, and the binding itself
 * verifies the binary's contents (smgr_binding.c, io_binding.c) and fails
 * closed when they differ (DESIGN.md "Binding by contents").
 */
static void
require_preload(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cmk must be loaded via shared_preload_libraries"),
				 errhint("Add 'cmk' to shared_preload_libraries in postgresql.conf and restart the server.")));
}

void
_PG_init(void)
{
	require_preload();
	cmk_guc_init();
	cmk_refuse_unencrypted_file_settings();
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
