/*
 * Declarations shared by the PostgreSQL glue of cmk (src/pg). The glue is C:
 * it includes postgres.h and talks to the C++ core only through
 * src/core/capi.h, whose functions never throw.
 */
#ifndef CMK_PG_H
#define CMK_PG_H

#include "core/capi.h"
#include "storage/block.h"

/* Whether len bytes at p are all zero: memcmp against itself shifted by one
 * byte, glibc's vectorized memcmp rather than a byte loop. */
static inline bool
cmk_all_zeros(const void *p, size_t len)
{
	const char *c = (const char *) p;

	return len == 0 || (c[0] == 0 && memcmp(c, c + 1, len - 1) == 0);
}

/* guc.c */
extern char *cmk_key_url;
extern char *cmk_key_wrap_algorithm;
extern char *cmk_auth;
extern char *cmk_ca_file;
extern char *cmk_key_vault_api_version;
extern int	cmk_request_timeout_ms;
extern int	cmk_key_unavailable_timeout_ms;
extern void cmk_guc_init(void);
extern void cmk_provider_settings_from_gucs(cmk_provider_settings *settings);

/* key_memory.c: the locked segment with unwrapped keys, per-process ciphers */
extern cmk_key_state *cmk_keys;
extern void cmk_key_memory_init(void);
extern cmk_xts *cmk_cipher_for(uint32 generation, cmk_key_purpose purpose);
extern cmk_temp_cipher *cmk_temp_cipher_for(uint32 generation);
extern cmk_xts *cmk_cipher_if_known(uint32 generation, cmk_key_purpose purpose);
extern uint32 cmk_current_generation(void);
extern uint32 cmk_wal_generation_for(uint64 pageaddr);
extern uint64 cmk_current_from_lsn(uint32 generation);

/* state_files.c: pg_cmk files replaced whole (temp, fsync, durable_rename) */
extern bool cmk_write_file_synced(const char *path, const void *data, size_t len, int elevel);
extern bool cmk_replace_file(const char *path, const void *data, size_t len, int elevel);

/* credentials.c: the Azure credentials, out of the environment */
#define CMK_CREDENTIALS_BYTES 8192
extern void cmk_credentials_capture(char *block, size_t size);
extern const char *cmk_credentials(void);

/* page_cipher.c: relation pages */
#define CMK_PD_GENERATION_SHIFT 8
#define CMK_PD_GENERATION_MASK 0xFF00
typedef enum cmk_page_kind
{
	CMK_PAGE_NEW,				/* all zeros */
	CMK_PAGE_PLAINTEXT,
	CMK_PAGE_ENCRYPTED
} cmk_page_kind;
extern char *cmk_page_encrypt(const char *page, char *scratch, uint32 relnode, BlockNumber blkno);
extern void cmk_page_decrypt(char *page, uint32 relnode, BlockNumber blkno);
extern cmk_page_kind cmk_page_classify(const char *page);

/* page_checksum.c: pg_checksum_page, vectorized where the CPU allows */
extern uint16 (*cmk_checksum_page) (char *page, BlockNumber blkno);
extern void cmk_page_checksum_init(void);
extern uint16 cmk_checksum_page_avx2(char *page, BlockNumber blkno);

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

/* smgr_binding.c: the storage-manager table of the running server */
extern void cmk_smgr_binding_locate(void);
extern void cmk_smgr_binding_install(void);

/* data_scan.c: relation files of the data directory */
typedef bool (*cmk_relation_file_fn) (const char *path, void *arg);
extern bool cmk_walk_relation_files(const char *datadir, cmk_relation_file_fn fn, void *arg);
extern int	cmk_encrypted_data_exists(void *datadir);

#endif							/* CMK_PG_H */
