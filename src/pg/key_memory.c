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

#include "miscadmin.h"
#include "storage/ipc.h"

#include "pg/cmk.h"
#include "pg/file_io.h"
#include "pg/lifecycle.h"

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

static void
report_core_error(int elevel, const char *what, const cmk_error *err)
{
	ereport(elevel,
			(errcode(err->kind == CMK_ERR_CONFIG ? ERRCODE_INVALID_PARAMETER_VALUE :
					 err->kind == CMK_ERR_KEYRING_CORRUPT ? ERRCODE_DATA_CORRUPTED :
					 ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("cmk: %s: %s", what, err->message),
			 err->detail[0] ? errdetail("%s", err->detail) : 0,
			 err->hint[0] ? errhint("%s", err->hint) : 0));
}

void
cmk_key_memory_init(void)
{
	cmk_provider_settings settings;
	cmk_messages messages;
	cmk_error	err;
	int			rc;
	long		pagesize = sysconf(_SC_PAGESIZE);
	cmk_xts    *data_cipher;
	void	   *seg;
	char	   *line;

	/* Sub-keys and cipher contexts: locked, no-dump, inherited by children. */
	if (cmk_core_secure_memory_init(&err) != 0)
		report_core_error(FATAL, "cannot protect key material", &err);

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

	if (cmk_key_url == NULL || cmk_key_url[0] == '\0')
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cmk: cmk.key_url is not set"),
				 errdetail("cmk needs the key encryption key that wraps the data encryption key."),
				 errhint("Set cmk.key_url = 'file:/absolute/path/kek.pem' or 'https://<vault>.vault.azure.net/keys/<name>' in postgresql.conf.")));

	cmk_provider_settings_from_gucs(&settings);
	rc = cmk_core_open_keys(DataDir, cmk_key_url, &settings, cmk_encrypted_data_exists, DataDir,
							cmk_keys, &messages, &err);
	for (line = strtok(messages.log, "\n"); line; line = strtok(NULL, "\n"))
		ereport(LOG, (errmsg("cmk: %s", strncmp(line, "cmk: ", 5) == 0 ? line + 5 : line)));
	if (rc != 0)
		report_core_error(FATAL, "cannot open the keyring", &err);
	for (line = strtok(messages.warnings, "\n"); line; line = strtok(NULL, "\n"))
		ereport(WARNING, (errmsg("cmk: %s", line)));
	{
		char		kek[CMK_KEK_ID_MAX];

		cmk_kek_id(kek, sizeof(kek));
		cmk_event(cmk_keys->keyring_created ? "keyring_created" : "keyring_opened", kek, "ok",
				  psprintf("key generation %u unwrapped at start-up (KEK version %s)",
						   cmk_keys->current_generation, cmk_keys->kek_version));
	}

	cmk_temp_rekey_at_start();

	/* Set up the current generation's ciphers here, to be inherited. */
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

uint32
cmk_current_generation(void)
{
	return cmk_keys->current_generation;
}

/* The DEK of a generation; ERROR if the keyring does not have it. */
static const uint8 *
dek_of(uint32 generation)
{
	for (uint32 i = 0; i < cmk_keys->n_slots; i++)
	{
		if (cmk_keys->slots[i].generation == generation && generation != 0)
			return cmk_keys->slots[i].dek;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("cmk: key generation %u is not in the keyring", generation),
			 errhint("The data was encrypted with a key generation that this keyring does not hold; restore the keyring that belongs to this data directory.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * The cipher of one generation and purpose. Allocates only the first time
 * a process meets a generation; ERROR if the keyring does not have it.
 */
cmk_xts *
cmk_cipher_for(uint32 generation, cmk_key_purpose purpose)
{
	cmk_error	err;
	cmk_xts    *xts;

	if (likely(generation <= CMK_MAX_GENERATIONS && ciphers[purpose][generation] != NULL))
		return ciphers[purpose][generation];

	xts = cmk_xts_create(dek_of(generation), purpose, &err);
	if (xts == NULL)
		ereport(ERROR, (errmsg("cmk: could not set up the cipher of key generation %u: %s",
							   generation, err.message)));
	ciphers[purpose][generation] = xts;
	return xts;
}

/* The same for temporary-class files (temp_cipher.c). */
cmk_temp_cipher *
cmk_temp_cipher_for(uint32 generation)
{
	cmk_error	err;
	cmk_temp_cipher *cipher;

	if (likely(generation <= CMK_MAX_GENERATIONS && temp_ciphers[generation] != NULL))
		return temp_ciphers[generation];

	cipher = cmk_temp_cipher_create(dek_of(generation), &err);
	if (cipher == NULL)
		ereport(ERROR, (errmsg("cmk: could not set up the temporary-file cipher of key generation %u: %s",
							   generation, err.message)));
	temp_ciphers[generation] = cipher;
	return cipher;
}
