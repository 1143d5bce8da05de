/*
 * cmk: transparent encryption at rest for PostgreSQL 15 with a
 * customer-managed key. Entry point, and the top of the glue's layers
 * (DESIGN.md "Layers": common, bind, keys, cipher, sweep, sql, then this
 * file): _PG_init runs in the postmaster (shared_preload_libraries only),
 * before any child is forked, and is cmk's whole start-up sequence, in the
 * order it happens. Every child inherits what it set up.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "pg/sql/sql.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

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

/*
 * shmem_request_hook: runs in the postmaster once every preloaded library
 * is loaded. Requests cmk's shared status, and binds the file I/O of
 * extensions that write user data through their own imports
 * (pg_stat_statements' query texts).
 */
static void
request_shmem_and_bind_extensions(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	cmk_shared_status_request();
	cmk_io_binding_install_in("/pg_stat_statements.so");
}

/* shmem_startup_hook: creates or finds cmk's shared status. */
static void
attach_shared_status(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	cmk_shared_status_attach();
}

void
_PG_init(void)
{
	require_preload();

	/* 1. Settings: each module defines its own; the prefix is cmk's. */
	cmk_provider_define_settings();
	cmk_key_worker_define_settings();
	cmk_sweep_define_settings();
	MarkGUCPrefixReserved("cmk");

	/* 2. Refuse what cmk cannot protect, before touching anything. */
	cmk_refuse_unencrypted_file_settings();
	cmk_key_policy_check_sources();
	cmk_smgr_binding_locate();

	/* 3. Keys: the locked segment, the keyring unwrapped into it. */
	cmk_key_memory_map();
	cmk_keys_open(cmk_encrypted_data_exists, DataDir);
	cmk_keyring_discard_staged();

	/* 4. Files that outlive a run get this run's temporary-file generation. */
	cmk_temp_rekey_at_start();

	/* 5. Ciphers of the current generation, inherited by every child. */
	cmk_ciphers_prepare();
	cmk_page_checksum_init();

	/* 6. Bind: storage manager and file I/O now encrypt. */
	cmk_smgr_binding_install(cmk_smgr_extend, cmk_smgr_read, cmk_smgr_write);
	cmk_io_binding_install(&cmk_file_class_operations);

	/* 7. Shared memory (requested and attached by the server later). */
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem_and_bind_extensions;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = attach_shared_status;

	/* 8. Keyring changes through WAL; the gates of key control. */
	cmk_keyring_rmgr_register();
	cmk_access_gate_init();
	cmk_key_policy_init();
	cmk_top_level_init();

	/* 9. Background workers: the key check, the sweep. */
	cmk_key_worker_register();
	cmk_sweep_request_at_start();
	cmk_sweep_register();
}
