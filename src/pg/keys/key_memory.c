/*
 * Unwrapped keys live in one small segment that the postmaster maps before
 * any child is forked: shared (every process sees a new generation), locked
 * in memory (never swapped), excluded from core dumps, and wiped when the
 * postmaster exits. Each process derives its cipher contexts from it once
 * per generation and purpose; the postmaster creates those of the current
 * generation, so forked children inherit them ready to use.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "pg/keys/keys.h"

cmk_key_state *cmk_keys = NULL;
static size_t cmk_keys_size = 0;
static cmk_xts *ciphers[2][CMK_MAX_GENERATIONS + 1];
static cmk_temp_cipher *temp_ciphers[CMK_MAX_GENERATIONS + 1];

static void
wipe_keys(int code, Datum arg)
{
	if (cmk_keys)
		cmk_core_wipe(cmk_keys, cmk_keys_size);
}

/*
 * Maps the key segment: locked in memory, excluded from core dumps, wiped
 * at exit, shared with every child; then moves the Azure credentials out of
 * the environment into it (credentials.c). Sub-keys and cipher contexts go
 * to the core's locked, no-dump arena.
 */
void
cmk_key_memory_map(void)
{
	cmk_error	err;
	long		pagesize = sysconf(_SC_PAGESIZE);
	void	   *seg;

	if (cmk_core_secure_memory_init(&err) != 0)
		cmk_report_core_error(FATAL, ERRCODE_CONFIG_FILE_ERROR, "cannot protect key material", &err);

	/* The key state, then the Azure credentials (credentials.c). */
	cmk_keys_size = TYPEALIGN(pagesize, MAXALIGN(sizeof(cmk_key_state)) + CMK_CREDENTIALS_BYTES);
	seg = mmap(NULL, cmk_keys_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (seg == MAP_FAILED)
		ereport(FATAL, (errmsg("cmk: could not map the key segment: %m")));
	if (mlock(seg, cmk_keys_size) != 0)
		ereport(FATAL,
				(errmsg("cmk: could not lock the key segment in memory: %m"),
				 errhint("Raise the memory lock limit (ulimit -l, LimitMEMLOCK) of the server to at least %zu kB.",
						 cmk_keys_size / 1024)));
	if (madvise(seg, cmk_keys_size, MADV_DONTDUMP) != 0)
		ereport(FATAL, (errmsg("cmk: could not exclude the key segment from core dumps: %m")));
	cmk_keys = (cmk_key_state *) seg;
	on_proc_exit(wipe_keys, 0);
	cmk_credentials_capture((char *) seg + MAXALIGN(sizeof(cmk_key_state)), CMK_CREDENTIALS_BYTES);
}

/*
 * Opens the keyring (creates it on first start, asking data_exists first
 * whether encrypted pages would be orphaned) and unwraps every generation
 * into the segment; logs the core's messages and the event.
 */
void
cmk_keys_open(cmk_encrypted_data_probe data_exists, void *arg)
{
	cmk_provider_settings settings;
	cmk_messages messages;
	cmk_error	err;
	char		kek[CMK_KEK_ID_MAX];
	int			rc;

	if (cmk_key_url == NULL || cmk_key_url[0] == '\0')
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cmk: cmk.key_url is not set"),
				 errdetail("cmk needs the key encryption key that wraps the data encryption key."),
				 errhint("Set cmk.key_url = 'file:/absolute/path/kek.pem' or 'https://<vault>.vault.azure.net/keys/<name>' in postgresql.conf.")));

	cmk_provider_settings_from_gucs(&settings);
	cmk_keys->wal_segment_bytes = (uint64) wal_segment_size;
	rc = cmk_core_open_keys(DataDir, cmk_key_url, &settings, data_exists, arg,
							cmk_keys, &messages, &err);
	cmk_log_core_lines(LOG, messages.log);
	if (rc != 0)
		cmk_report_core_error(FATAL, err.kind == CMK_ERR_CONFIG ? ERRCODE_INVALID_PARAMETER_VALUE :
							  err.kind == CMK_ERR_KEYRING_CORRUPT ? ERRCODE_DATA_CORRUPTED :
							  ERRCODE_CONFIG_FILE_ERROR,
							  "cannot open the keyring", &err);
	cmk_log_core_lines(WARNING, messages.warnings);
	cmk_kek_id(kek, sizeof(kek));
	cmk_event(cmk_keys->keyring_created ? "keyring_created" : "keyring_opened", kek, "ok",
			  psprintf("key generation %u unwrapped at start-up (KEK version %s)",
					   cmk_keys->current_generation, cmk_keys->kek_version));
}

/* Sets up the current generation's ciphers in the postmaster, to be inherited. */
void
cmk_ciphers_prepare(void)
{
	cmk_xts    *data_cipher;

	data_cipher = cmk_cipher_for(cmk_keys->current_generation, CMK_PURPOSE_DATA_PAGES);
	(void) cmk_cipher_for(cmk_keys->current_generation, CMK_PURPOSE_WAL);
	(void) cmk_temp_cipher_for(cmk_keys->temp_generation);
	ereport(LOG, (errmsg("cmk: AES-256-XTS by %s", cmk_xts_backend(data_cipher))));
	if (!cmk_xts_key_memory_protected(data_cipher))
		ereport(WARNING,
				(errmsg("cmk: the AES key schedules of %s are in ordinary memory", cmk_xts_backend(data_cipher)),
				 errdetail("Neither libgcrypt nor OpenSSL's provider functions could be used; a core dump or swap can hold them."),
				 errhint("Run the server without core dumps and without swap, or with encrypted swap.")));
}

void
cmk_kek_id(char *buf, size_t len)
{
	if (strncmp(cmk_keys->kek_base, "file:", 5) == 0)
		snprintf(buf, len, "%s", cmk_keys->kek_base);
	else
		snprintf(buf, len, "%s/%s", cmk_keys->kek_base, cmk_keys->kek_version);
}

uint32
cmk_current_generation(void)
{
	return cmk_keys->current_generation;
}

/* The DEK of a generation in memory, or NULL. */
static const uint8 *
held_dek(uint32 generation)
{
	uint32		n = __atomic_load_n(&cmk_keys->n_slots, __ATOMIC_ACQUIRE);

	if (generation == 0)
		return NULL;
	for (uint32 i = 0; i < n; i++)
		if (__atomic_load_n(&cmk_keys->slots[i].generation, __ATOMIC_ACQUIRE) == generation)
			return cmk_keys->slots[i].dek;
	return NULL;
}

static void
unknown_generation_error(uint32 generation)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("cmk: data encrypted with key generation %u, which the keyring does not hold", generation),
			 errdetail("cmk_retire_generation() removed it while something still used it, or pg_cmk/keyring is not the keyring of this data directory."),
			 errhint("Restore pg_cmk/keyring from a backup taken before generation %u was retired, or restore this server from a base backup.",
					 generation)));
}

/* A generation was retired: drop this process's ciphers of those no longer held. */
static uint32 seen_retired_epoch = 0;

static void
forget_retired_ciphers(void)
{
	seen_retired_epoch = __atomic_load_n(&cmk_keys->retired_epoch, __ATOMIC_ACQUIRE);
	for (uint32 g = 1; g <= CMK_MAX_GENERATIONS; g++)
	{
		if (held_dek(g) != NULL)
			continue;
		for (int p = 0; p < 2; p++)
		{
			if (ciphers[p][g] != NULL)
				cmk_xts_free(ciphers[p][g]);
			ciphers[p][g] = NULL;
		}
		if (temp_ciphers[g] != NULL)
			cmk_temp_cipher_free(temp_ciphers[g]);
		temp_ciphers[g] = NULL;
	}
}

/*
 * The cipher of one generation and purpose, or NULL when the keyring does
 * not hold that generation. Allocates only the first time a process meets a
 * generation.
 */
cmk_xts *
cmk_cipher_if_known(uint32 generation, cmk_key_purpose purpose)
{
	cmk_error	err;
	cmk_xts    *xts;
	const uint8 *dek;

	if (unlikely(__atomic_load_n(&cmk_keys->retired_epoch, __ATOMIC_ACQUIRE) != seen_retired_epoch))
		forget_retired_ciphers();
	if (likely(generation <= CMK_MAX_GENERATIONS && ciphers[purpose][generation] != NULL))
		return ciphers[purpose][generation];
	if (generation > CMK_MAX_GENERATIONS || (dek = held_dek(generation)) == NULL)
		return NULL;
	xts = cmk_xts_create(dek, purpose, &err);
	if (xts == NULL)
		ereport(ERROR, (errmsg("cmk: could not set up the cipher of key generation %u: %s",
							   generation, err.message)));
	ciphers[purpose][generation] = xts;
	return xts;
}

/* As cmk_cipher_if_known; ERROR if the keyring does not hold the generation. */
cmk_xts *
cmk_cipher_for(uint32 generation, cmk_key_purpose purpose)
{
	cmk_xts    *xts = cmk_cipher_if_known(generation, purpose);

	if (unlikely(xts == NULL))
		unknown_generation_error(generation);
	return xts;
}

/* The same for temporary-class files (temp_cipher.c). */
cmk_temp_cipher *
cmk_temp_cipher_for(uint32 generation)
{
	cmk_error	err;
	cmk_temp_cipher *cipher;
	const uint8 *dek;

	if (unlikely(__atomic_load_n(&cmk_keys->retired_epoch, __ATOMIC_ACQUIRE) != seen_retired_epoch))
		forget_retired_ciphers();
	if (likely(generation <= CMK_MAX_GENERATIONS && temp_ciphers[generation] != NULL))
		return temp_ciphers[generation];
	if (generation > CMK_MAX_GENERATIONS || (dek = held_dek(generation)) == NULL)
		unknown_generation_error(generation);
	cipher = cmk_temp_cipher_create(dek, &err);
	if (cipher == NULL)
		ereport(ERROR, (errmsg("cmk: could not set up the temporary-file cipher of key generation %u: %s",
							   generation, err.message)));
	temp_ciphers[generation] = cipher;
	return cipher;
}

/* End of the WAL record that made generation current (0: unknown). */
uint64
cmk_current_from_lsn(uint32 generation)
{
	for (uint32 i = 0; i < cmk_keys->n_wal; i++)
		if (cmk_keys->wal[i].generation == generation)
			return cmk_keys->wal[i].current_from_lsn;
	return 0;
}

/*
 * The generation that encrypts the WAL page at pageaddr: the keyring's WAL
 * table, read under its sequence counter (changes are rare and quick).
 */
uint32
cmk_wal_generation_for(uint64 pageaddr)
{
	for (;;)
	{
		uint32		seq = __atomic_load_n(&cmk_keys->wal_table_seq, __ATOMIC_ACQUIRE);
		uint32		n;
		uint32		generation;

		if (unlikely(seq & 1))
			continue;
		n = cmk_keys->n_wal;
		generation = n > 0 ? cmk_keys->wal[0].generation : cmk_keys->current_generation;
		for (uint32 i = n; i-- > 0;)
		{
			if (pageaddr >= cmk_keys->wal[i].from_lsn)
			{
				generation = cmk_keys->wal[i].generation;
				break;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (likely(__atomic_load_n(&cmk_keys->wal_table_seq, __ATOMIC_RELAXED) == seq))
			return generation;
	}
}
