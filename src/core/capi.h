/*
 * The C interface between the PostgreSQL glue (C, src/pg) and the C++ core.
 *
 * Every function here is noexcept: the C++ side catches every exception in
 * one wrapper and reports it through cmk_error, so the caller ereports only
 * after all C++ frames are gone (no exception crosses into PostgreSQL, no
 * longjmp crosses a C++ destructor). Callbacks passed in must not ereport.
 */
#ifndef CMK_CAPI_H
#define CMK_CAPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMK_DEK_BYTES 32
#define CMK_MAX_GENERATIONS 255
#define CMK_XTS_TWEAK_BYTES 16
/* A key URL is at most this long (cmk::kMaxKeyUrlBytes); a key id is a key
 * URL's base with a version, and fits CMK_KEK_ID_MAX bytes with its NUL. */
#define CMK_KEY_URL_MAX 2048
#define CMK_KEK_ID_MAX (CMK_KEY_URL_MAX + 1 + 128)

typedef enum cmk_error_kind
{
	CMK_OK = 0,
	CMK_ERR_CONFIG,
	CMK_ERR_KEY_UNAVAILABLE,
	CMK_ERR_WRONG_KEY,
	CMK_ERR_KEYRING_CORRUPT,
	CMK_ERR_TRANSIENT,
	CMK_ERR_PROTOCOL,
	CMK_ERR_IO,
	CMK_ERR_CRYPTO,
	CMK_ERR_INTERNAL
} cmk_error_kind;

typedef struct cmk_error
{
	cmk_error_kind kind;
	char		message[1024];
	char		detail[1024];
	char		hint[512];
} cmk_error;

/* Settings of the key providers, from cmk.* GUCs. NULL or 0 = default.
 * environment: the Azure credentials' variables as "NAME=value" strings one
 * after the other, each ended by a NUL, the block by an empty string (the
 * postmaster's copy, src/pg/keys/credentials.c); NULL = none. The core never
 * reads the process environment. */
typedef struct cmk_provider_settings
{
	const char *wrap_algorithm;
	const char *api_version;
	const char *auth;
	const char *ca_file;
	int			request_timeout_ms;
	int			retry_total_ms;
	/* The server owner's key policy (cmk.allowed_key_urls; NULL or "" = the
	 * vault, or directory, of the key that wraps the keyring), and
	 * cmk.require_purge_protection = off (0: Key Vault keys must be
	 * purge-protected at first start and at rotation). */
	const char *allowed_key_urls;
	int			allow_purgeable_key;
	const char *environment;
} cmk_provider_settings;

/* Whether the Azure credentials read the environment variable `name`:
 * 0 no, 1 yes, 2 yes and its value is a secret. */
int			cmk_core_credential_variable(const char *name);

/* One unwrapped generation; lives in the locked key segment. */
typedef struct cmk_key_slot
{
	uint32_t	generation;		/* 0 = unused */
	uint8_t		dek[CMK_DEK_BYTES];
} cmk_key_slot;

/* A generation in the WAL table: current since the WAL record ending at
 * current_from_lsn (0: first, or unknown), encrypting WAL pages from
 * from_lsn (the start of the second segment after it). */
typedef struct cmk_wal_generation
{
	uint64_t	from_lsn;
	uint64_t	current_from_lsn;
	uint32_t	generation;
} cmk_wal_generation;

/* What the glue keeps about the keyring (no key material besides slots). */
typedef struct cmk_key_state
{
	uint32_t	current_generation;
	uint32_t	n_slots;
	char		provider[32];
	char		kek_base[CMK_KEY_URL_MAX + 1];
	char		kek_version[128];
	char		wrap_algorithm[32];
	int64_t		created_at;		/* of the current generation */
	int			keyring_created;	/* this start created it */
	uint32_t	temp_generation;	/* temporary files of this server run (glue) */
	uint32_t	installed_timeline; /* the WAL record that installed the keyring */
	uint64_t	installed_lsn;
	uint64_t	wal_segment_bytes;	/* set by the glue before opening the keys */
	cmk_key_slot slots[CMK_MAX_GENERATIONS];
	cmk_key_slot staged;		/* a generation being added (rotation lock) */
	uint32_t	retired_epoch;	/* bumped when a generation's key is wiped */

	/*
	 * WAL pages are encrypted with the generation of the last entry whose
	 * from_lsn is at or below the page's address (the first entry below
	 * all); ascending. Readers retry while wal_table_seq is odd or changed.
	 */
	uint32_t	wal_table_seq;
	uint32_t	n_wal;
	cmk_wal_generation wal[CMK_MAX_GENERATIONS];
} cmk_key_state;

/* Messages for the server log, one per line: warnings (configuration that
 * disagrees with the keyring) and the providers' operational log (retries,
 * sign-ins); filled on failure too. */
typedef struct cmk_messages
{
	char		warnings[2048];
	char		log[4096];
} cmk_messages;

/*
 * Opens (or on first start creates) $datadir/pg_cmk/keyring and unwraps every
 * generation into *state. encrypted_data_exists is called only when there is
 * no keyring; it returns nonzero when encrypted pages are present.
 */
int			cmk_core_open_keys(const char *datadir, const char *key_url,
							   const cmk_provider_settings *settings,
							   int (*encrypted_data_exists) (void *arg), void *arg,
							   cmk_key_state *state, cmk_messages *warnings,
							   cmk_error *err);

/* The KEK check of the background worker: reads the exact current KEK
 * version and unwraps the current generation (must equal the DEK in use);
 * with want_newest, also learns the newest enabled version of that key. */
typedef struct cmk_kek_check
{
	char		current_version[128];
	char		newest_version[128];
	int			enabled;
	int64_t		expires;		/* unix seconds, 0 = none */
} cmk_kek_check;

int			cmk_core_check_kek(const char *datadir, const cmk_key_state *state,
							   const cmk_provider_settings *settings, int want_newest,
							   cmk_kek_check *out, cmk_messages *messages, cmk_error *err);

/* Rotation: a new keyring with every generation wrapped by new_key_url,
 * each verified by unwrapping again. Nothing is written: *bytes (free with
 * cmk_core_free) is the new file, to be WAL-logged and then installed. */
int			cmk_core_rewrap_keyring(const char *datadir, const cmk_key_state *state,
									const char *new_key_url, const cmk_provider_settings *settings,
									uint8_t **bytes, size_t *len, cmk_messages *messages, cmk_error *err);

/*
 * A keyring change (the bytes its WAL record carries) is applied in steps,
 * so that everything that can fail happens before anything is changed:
 *  - cmk_core_keyring_generations: the generations it has, and
 *    cmk_core_keyring_unknown: the generations it has that *state does not
 *    hold (*n set; gens has room for CMK_MAX_GENERATIONS);
 *  - cmk_core_unwrap_generations: unwraps those (the only step that calls a
 *    key provider) into out[n], each checked against its key check value;
 *  - cmk_core_finish_keyring_change: checks every generation's key check
 *    value against the keys held (*state plus extra[n_extra]) and the MAC,
 *    and returns the file to write (free with cmk_core_free), marked as
 *    installed by the WAL record ending at (timeline, lsn), which makes
 *    current a generation that becomes current;
 *  - cmk_core_apply_keyring: updates *state from that file: keys of new
 *    generations from extra, the current generation, KEK ids, the WAL table;
 *    generations the file lacks are wiped unless listed in keep.
 */
int			cmk_core_keyring_generations(const uint8_t *bytes, size_t len, uint32_t *gens, uint32_t *n,
										 cmk_error *err);
int			cmk_core_keyring_unknown(const uint8_t *bytes, size_t len, const cmk_key_state *state,
									 uint32_t *gens, uint32_t *n, cmk_error *err);
int			cmk_core_unwrap_generations(const uint8_t *bytes, size_t len, const uint32_t *gens, uint32_t n,
										const cmk_provider_settings *settings, cmk_key_slot *out,
										cmk_messages *messages, cmk_error *err);
int			cmk_core_finish_keyring_change(const uint8_t *bytes, size_t len, const cmk_key_state *state,
										   const cmk_key_slot *extra, uint32_t n_extra,
										   uint32_t timeline, uint64_t lsn,
										   uint8_t **file, size_t *file_len, cmk_error *err);
int			cmk_core_apply_keyring(const uint8_t *file, size_t len, cmk_key_state *state,
								   const cmk_key_slot *extra, uint32_t n_extra,
								   const uint32_t *keep, uint32_t n_keep, cmk_error *err);

/* DEK rotation: a keyring with a new generation (wrapped by the current KEK,
 * verified by unwrapping) made current, its key in *new_slot; or without a
 * retired one; nothing written, as above. */
int			cmk_core_add_generation(const char *datadir, const cmk_key_state *state,
									const cmk_provider_settings *settings,
									uint8_t **bytes, size_t *len, cmk_key_slot *new_slot,
									cmk_messages *messages, cmk_error *err);
int			cmk_core_remove_generation(const char *datadir, const cmk_key_state *state, uint32_t generation,
									   uint8_t **bytes, size_t *len, cmk_error *err);

void		cmk_core_free(void *p);

/* Validates a key URL without contacting anything. */
int			cmk_core_check_key_url(const char *key_url, cmk_error *err);

/* Validates a cmk.allowed_key_urls value. */
int			cmk_core_check_key_policy(const char *allowed_key_urls, cmk_error *err);

/* Whether key_url may wrap the keyring: allowed by allowed_key_urls, or
 * (NULL or "") by the vault or directory of current_kek_base. Reads no
 * file, contacts nothing; the error says what the policy allows. */
int			cmk_core_check_key_allowed(const char *allowed_key_urls, const char *current_kek_base,
									   const char *key_url, cmk_error *err);

/* Sets up this process's locked memory for key material (src/core/
 * secure_memory.h: mlock'ed, MADV_DONTDUMP, wiped when freed, locked again
 * in forked children), where every sub-key, cipher context and transient
 * copy of a key made by the core lives. Call it in the postmaster before
 * any key is touched; nonzero with err filled if the kernel refuses. */
int			cmk_core_secure_memory_init(cmk_error *err);

/* Wipes key material (OPENSSL_cleanse, not optimised away). */
void		cmk_core_wipe(void *p, size_t len);

/* AES-256-XTS with a sub-key of one DEK. */
typedef enum cmk_key_purpose
{
	CMK_PURPOSE_DATA_PAGES = 0,
	CMK_PURPOSE_WAL = 1
} cmk_key_purpose;

typedef struct cmk_xts cmk_xts;

cmk_xts    *cmk_xts_create(const uint8_t *dek, cmk_key_purpose purpose, cmk_error *err);
void		cmk_xts_free(cmk_xts *xts);
/* The library that runs this cipher ("libgcrypt", "OpenSSL (provider functions)", ...). */
const char *cmk_xts_backend(const cmk_xts *xts);
/* Whether its key schedules are in locked memory that core dumps leave out
 * (all but the plain-EVP fallback). */
int			cmk_xts_key_memory_protected(const cmk_xts *xts);
/* len >= 16; in == out allowed. Return 0 on success. */
int			cmk_xts_encrypt(cmk_xts *xts, const uint8_t *in, uint8_t *out, size_t len,
							const uint8_t *tweak);
int			cmk_xts_decrypt(cmk_xts *xts, const uint8_t *in, uint8_t *out, size_t len,
							const uint8_t *tweak);

/* Temporary-class files (src/core/temp_unit.h): 8 kB units, each encrypted
 * on its own (XTS, FF1 below 16 bytes) with the path's hash and the unit
 * number as the tweak. The path is relative to the data directory, as
 * PostgreSQL opens it. len <= 8192; in == out allowed. Return 0 on success. */
typedef struct cmk_temp_cipher cmk_temp_cipher;

cmk_temp_cipher *cmk_temp_cipher_create(const uint8_t *dek, cmk_error *err);
void		cmk_temp_cipher_free(cmk_temp_cipher *cipher);
uint64_t	cmk_temp_path_hash(const char *path);
int			cmk_temp_unit_encrypt(cmk_temp_cipher *cipher, uint64_t path_hash, uint64_t unit,
								  const uint8_t *in, uint8_t *out, size_t len);
int			cmk_temp_unit_decrypt(cmk_temp_cipher *cipher, uint64_t path_hash, uint64_t unit,
								  const uint8_t *in, uint8_t *out, size_t len);

/* Data pages (src/core/data_page.h, DESIGN.md "Data pages"): the one
 * implementation of the format, which the server's smgr wrappers call. The
 * kind and key generation a stored page carries; encrypt a plaintext page
 * into out (must not be in: the caller's page may be a shared buffer under a
 * share lock), returns 1 if encrypted, 0 if not (not a plaintext page,
 * generation outside 1..255, cipher failure); decrypt in place, 1 if it was
 * encrypted and is now plaintext. checksum: the server's pg_checksum_page
 * when data checksums are on (pd_checksum on disk covers the ciphertext;
 * after decryption it holds the plaintext's, or a value sure to fail when
 * the ciphertext's did not match), NULL when they are off. No allocation,
 * lock or system call. */
#define CMK_DATA_PAGE_CLEAR_BYTES 16	/* bytes [0, 16) stay plaintext */
typedef enum cmk_data_page_kind
{
	CMK_DATA_PAGE_NEW = 0,		/* all zeros: passes through */
	CMK_DATA_PAGE_PLAINTEXT = 1,
	CMK_DATA_PAGE_ENCRYPTED = 2
} cmk_data_page_kind;
typedef uint16_t (*cmk_page_checksum_fn) (char *page, uint32_t blkno);

cmk_data_page_kind cmk_data_page_classify(const uint8_t *page);
uint32_t	cmk_data_page_generation(const uint8_t *page);
int			cmk_data_page_encrypt(cmk_xts *xts, uint32_t generation, uint32_t relfilenode, uint32_t blkno,
								  cmk_page_checksum_fn checksum, const uint8_t *in, uint8_t *out);
int			cmk_data_page_decrypt(cmk_xts *xts, uint32_t relfilenode, uint32_t blkno,
								  cmk_page_checksum_fn checksum, uint8_t *page);

/* WAL pages (src/core/wal_page.h): the key generation a page carries (0 =
 * plaintext or not a WAL page); encrypt into out (may equal in), returns 1 if
 * encrypted, 0 if the page passes through; decrypt in place, 1 if it was
 * encrypted. */
#define CMK_WAL_PAGE_MAGIC 0xD110
#define CMK_WAL_GENERATION_MASK 0xFF00
uint32_t	cmk_wal_page_generation(const uint8_t *page);
int			cmk_wal_page_is_plaintext_wal(const uint8_t *page);
int			cmk_wal_page_encrypt(cmk_xts *xts, uint32_t generation, const uint8_t *in, uint8_t *out);
int			cmk_wal_page_decrypt(cmk_xts *xts, uint8_t *page);

/* Coverage report of a data directory (src/core/verify.h, pg_cmk verify),
 * for cmk_verify(): one row per relation fork (segments together), WAL
 * segment or other file that cmk encrypts, counted in that class's units
 * (pages, or files). The scan is of a running server's directory: files may
 * appear and vanish meanwhile. interrupted (may be NULL) is polled between
 * chunks of 512 kB and must not ereport; nonzero stops the scan with an
 * error. Rows stay valid until cmk_verify_free. */
#define CMK_DATA_PAGE_GENERATION_MASK 0xFF00
#define CMK_PG_CONTROL_VERSION 1300
#define CMK_PG_CONTROL_BLCKSZ_OFFSET 216
#define CMK_PG_CONTROL_RELSEG_SIZE_OFFSET 220
#define CMK_PG_CONTROL_CHECKSUM_VERSION_OFFSET 252

typedef struct cmk_verify_result cmk_verify_result;

typedef struct cmk_verify_row
{
	const char *file_class;		/* data_pages, wal, pgsql_tmp, replslot_spill,
								 * twophase, pgss_query_texts, pgss_dump,
								 * notify_queue */
	const char *relation;		/* path relative to the data directory */
	int64_t		encrypted;
	int64_t		plaintext;
	int64_t		empty;			/* new (all-zero) pages, empty files */
	int64_t		unmarked;		/* files whose bytes carry no mark */
} cmk_verify_row;

cmk_verify_result *cmk_verify_scan(const char *datadir, int (*interrupted) (void *arg), void *arg,
								   cmk_error *err);
size_t		cmk_verify_row_count(const cmk_verify_result *result);
void		cmk_verify_get_row(const cmk_verify_result *result, size_t i, cmk_verify_row *row);
void		cmk_verify_free(cmk_verify_result *result);

#ifdef __cplusplus
}
#endif

#endif							/* CMK_CAPI_H */
