/* Key lifecycle glue: shared status, events, rotation, the worker. */
#ifndef CMK_LIFECYCLE_H
#define CMK_LIFECYCLE_H

#include "datatype/timestamp.h"
#include "miscadmin.h"
#include "storage/spin.h"

typedef enum cmk_access_state
{
	CMK_ACCESS_ACTIVE = 0,
	CMK_ACCESS_INACCESSIBLE = 1
} cmk_access_state;

typedef struct cmk_shared_status
{
	slock_t		mutex;
	volatile int access_state;	/* cmk_access_state; read without the mutex */
	TimestampTz last_check;
	TimestampTz last_success;
	TimestampTz outage_since;	/* first of the current run of transient failures */
	TimestampTz inaccessible_since;
	char		last_result[32];	/* ok, transient error, denied */
	char		last_error[1024];
	char		reason[1024];	/* why the server is inaccessible */
	int			worker_pid;

	/* the sweep (sweep.c) */
	int			sweep_launcher_pid;
	struct Latch *sweep_launcher_latch;
	bool		sweep_running;
	uint32		sweep_target;
	TimestampTz sweep_started;
	TimestampTz sweep_finished;
	int			sweep_databases_total;
	int			sweep_databases_done;
	int64		sweep_relations_total;
	int64		sweep_relations_done;
	int64		sweep_pages_scanned;
	int64		sweep_pages_stale;
	int64		sweep_pages_rewritten;
	char		sweep_relation[2 * NAMEDATALEN + 2];
} cmk_shared_status;

extern cmk_shared_status *cmk_status_shared;

/* shmem.c */
extern void cmk_shmem_request(void);
extern void cmk_shmem_startup(void);
extern struct LWLock *cmk_rotation_lock(void);

/* events.c: pg_cmk/events, one line per key event; also logged */
extern void cmk_event(const char *event, const char *key_id, const char *outcome, const char *detail);

/* keyring_wal.c: keyring changes go through WAL (custom resource manager) */
#define CMK_RMGR_ID 152
extern void cmk_keyring_rmgr_register(void);
extern void cmk_replace_keyring(const char *new_key_url);
extern uint32 cmk_add_generation(void);
extern void cmk_remove_generation(uint32 generation);
extern void cmk_kek_id(char *buf, size_t len);

/* access_gate.c */
extern void cmk_access_gate_init(void);
extern bool cmk_gated_process(BackendType type, Oid database);

/* sweep.c */
extern int	cmk_sweep_cost_limit;
extern int	cmk_sweep_cost_delay_ms;
extern void cmk_sweep_register(void);
extern void cmk_sweep_request(void);
extern void cmk_sweep_request_at_start(void);

/* key_worker.c */
extern void cmk_key_worker_register(void);

/* guc.c */
extern int	cmk_key_check_interval_s;
extern int	cmk_key_outage_tolerance_s;
extern int	cmk_on_key_unavailable;
extern bool cmk_follow_latest_version;

extern char *cmk_allowed_key_urls;
extern bool cmk_require_purge_protection;
extern int	cmk_key_expiry_warning_s;

/* key_policy.c: the server owner's key policy */
extern void cmk_key_policy_check_sources(void);
extern void cmk_key_policy_init(void);
extern void cmk_require_key_url_allowed(const char *key_url, const char *what);

/* top_level.c: keyring changes run as top-level statements only */
extern void cmk_top_level_init(void);
extern void cmk_require_top_level(const char *function);

#define CMK_ON_UNAVAILABLE_INACCESSIBLE 0
#define CMK_ON_UNAVAILABLE_SHUTDOWN 1

#endif
