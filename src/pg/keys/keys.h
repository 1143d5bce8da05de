/*
 * The keys layer (DESIGN.md "Key hierarchy", "Key lifecycle", "Layers"):
 * the unwrapped keys and everything that changes or guards them. Above
 * bind/ (it reads files with the real I/O), below cipher/ (which asks it
 * for the cipher of a generation).
 *   key_memory.c         the locked key segment, per-process ciphers, keyring opened at start
 *   provider_settings.c  cmk.key_url, the key policy's and the provider's settings
 *   credentials.c        the Azure credentials, out of the environment
 *   shared_status.c      the status in shared memory, the rotation lock
 *   events.c             pg_cmk/events and the log of key events
 *   key_policy.c         the server owner's key policy
 *   access_gate.c        what an inaccessible server refuses
 *   keyring_wal.c        keyring changes through WAL (custom resource manager)
 *   live_wal.c           key generations this server's pg_wal still uses
 *   key_worker.c         the background worker that checks the key
 */
#ifndef CMK_PG_KEYS_H
#define CMK_PG_KEYS_H

#include "datatype/timestamp.h"
#include "miscadmin.h"
#include "storage/spin.h"

#include "pg/bind/bind.h"

/* key_memory.c: the locked segment with unwrapped keys, per-process ciphers */
/* Whether a data directory without a keyring holds encrypted pages (sweep/data_scan.c). */
typedef int (*cmk_encrypted_data_probe) (void *arg);
extern cmk_key_state *cmk_keys;
extern void cmk_key_memory_map(void);
extern void cmk_keys_open(cmk_encrypted_data_probe data_exists, void *arg);
extern void cmk_ciphers_prepare(void);
extern cmk_xts *cmk_cipher_for(uint32 generation, cmk_key_purpose purpose);
extern cmk_temp_cipher *cmk_temp_cipher_for(uint32 generation);
extern cmk_xts *cmk_cipher_if_known(uint32 generation, cmk_key_purpose purpose);
extern uint32 cmk_current_generation(void);
extern uint32 cmk_wal_generation_for(uint64 pageaddr);
extern uint64 cmk_current_from_lsn(uint32 generation);
/* The KEK id (with version) that wraps the keyring, into buf of CMK_KEK_ID_MAX bytes. */
extern void cmk_kek_id(char *buf, size_t len);

/* provider_settings.c */
extern char *cmk_key_url;
extern char *cmk_key_wrap_algorithm;
extern char *cmk_auth;
extern char *cmk_ca_file;
extern char *cmk_key_vault_api_version;
extern int	cmk_request_timeout_ms;
extern int	cmk_key_unavailable_timeout_ms;
extern char *cmk_allowed_key_urls;
extern bool cmk_require_purge_protection;
extern void cmk_provider_define_settings(void);
extern void cmk_provider_settings_from_gucs(cmk_provider_settings *settings);

/* credentials.c: the Azure credentials, out of the environment */
#define CMK_CREDENTIALS_BYTES 8192
extern void cmk_credentials_capture(char *block, size_t size);
extern const char *cmk_credentials(void);

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

/* shared_status.c */
extern void cmk_shared_status_request(void);
extern void cmk_shared_status_attach(void);
extern void cmk_shared_status_read(cmk_shared_status *out);
extern struct LWLock *cmk_rotation_lock(void);

/* events.c: pg_cmk/events, one line per key event; also logged */
extern void cmk_event(const char *event, const char *key_id, const char *outcome, const char *detail);

/* keyring_wal.c: keyring changes go through WAL (custom resource manager) */
#define CMK_RMGR_ID 152
extern void cmk_keyring_rmgr_register(void);
extern void cmk_keyring_discard_staged(void);
extern void cmk_replace_keyring(const char *new_key_url);
extern uint32 cmk_add_generation(void);
extern void cmk_remove_generation(uint32 generation);

/* live_wal.c */
extern void cmk_count_live_wal_pages(uint32 generation, int64 *pages, int64 *segments);

/* access_gate.c: while the server is inaccessible (the key worker's
 * access state, read without a lock), gated processes read no page. */
extern volatile int *cmk_access_flag;
extern void cmk_access_refuse_read(void);
static inline void
cmk_access_check_read(void)
{
	if (unlikely(cmk_access_flag != NULL && *cmk_access_flag != 0))
		cmk_access_refuse_read();
}
extern void cmk_access_gate_init(void);
extern bool cmk_gated_process(BackendType type, Oid database);

/* key_policy.c: the server owner's key policy */
extern void cmk_key_policy_check_sources(void);
extern void cmk_key_policy_init(void);
extern void cmk_require_key_url_allowed(const char *key_url, const char *what);

/* key_worker.c */
#define CMK_ON_UNAVAILABLE_INACCESSIBLE 0
#define CMK_ON_UNAVAILABLE_SHUTDOWN 1
extern int	cmk_key_check_interval_s;
extern int	cmk_key_outage_tolerance_s;
extern int	cmk_on_key_unavailable;
extern bool cmk_follow_latest_version;
extern int	cmk_key_expiry_warning_s;
extern void cmk_key_worker_define_settings(void);
extern void cmk_key_worker_register(void);

#endif							/* CMK_PG_KEYS_H */
