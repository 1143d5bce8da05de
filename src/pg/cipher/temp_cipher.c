/*
 * Temporary files that hold user data (DESIGN.md "Other files that hold
 * user data"): sorts, hashes and tuplestores in pgsql_tmp, logical decoding
 * spill files in pg_replslot, two-phase state files in pg_twophase,
 * pg_stat_statements' texts and dump.
 *
 * They are written and read at any offset and length, and their size must
 * stay exactly what PostgreSQL wrote (BufFile and the two-phase reader use
 * the file size). So the file is cut into 8 kB units at unit-aligned
 * offsets, and the bytes of a unit that exist in the file (the whole unit,
 * or a shorter last unit) are encrypted on their own with the tweak (hash
 * of the file's path, unit number): XTS, or FF1 for fewer than 16 bytes
 * (the format is src/core/temp_unit.h's). The path, because processes
 * sharing a file (parallel hash join) open it by the same path; a ".tmp"
 * suffix is left out of the hash, because two-phase files are written
 * under that name and renamed. unit_io.c's engine runs the loop over
 * units; a write that covers part of a unit reads the unit, merges, and
 * rewrites it (temp_write_part); it never extends the file past what was
 * asked.
 *
 * These files carry no generation mark. They use the generation that was
 * current when the server started (cmk_keys->temp_generation), fixed for the
 * whole run, so a DEK rotation in the middle of a query changes nothing for
 * them. The few that outlive a run (two-phase files, the pg_stat_statements
 * dump) are re-keyed at the next start when the generation has changed
 * (cmk_temp_rekey_at_start); the others are removed by PostgreSQL at start.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "pg/cipher/cipher.h"

#define UNIT CMK_UNIT_BYTES

static uint64 fd_path_hash[CMK_FD_TABLE_SIZE];

/*
 * pg_stat_statements' query text file is appended to by many backends at
 * once, at offsets each reserved under its own spinlock, and read while
 * others append. A partial-unit write is a read-modify-write of the unit, so
 * for that file the unit is locked (open file description locks, which
 * conflict between the backends' own descriptors) around it and around reads.
 */
static bool fd_lock_units[CMK_FD_TABLE_SIZE];

static void
lock_units(int fd, off_t from, off_t len, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = from, .l_len = len};

	while (fcntl(fd, F_OFD_SETLKW, &fl) != 0 && errno == EINTR)
		;
}
/* A unit read back for a partial read or write, or a truncation. */
static char unit_buf[UNIT] pg_attribute_aligned(4096);

void
cmk_temp_file_opened(int fd, const char *path)
{
	fd_path_hash[fd] = cmk_temp_path_hash(path);
	fd_lock_units[fd] = strstr(path, "pgss_query_texts.stat") != NULL;
}

/* Encrypts (or decrypts) len bytes of one unit from in to out (may be the same). */
static void
crypt_unit_to(int fd, uint64 unit, const char *in, char *out, size_t len, bool encrypt)
{
	cmk_temp_cipher *cipher = cmk_temp_cipher_for(cmk_keys->temp_generation);
	int			rc;

	rc = encrypt ? cmk_temp_unit_encrypt(cipher, fd_path_hash[fd], unit, (const uint8 *) in, (uint8 *) out, len)
		: cmk_temp_unit_decrypt(cipher, fd_path_hash[fd], unit, (const uint8 *) in, (uint8 *) out, len);
	if (rc != 0)
		elog(PANIC, "cmk: could not %s a temporary file unit", encrypt ? "encrypt" : "decrypt");
}

static inline void
crypt_unit(int fd, uint64 unit, char *data, size_t len, bool encrypt)
{
	crypt_unit_to(fd, unit, data, data, len, encrypt);
}

/* Reads the stored bytes of one unit into unit_buf, decrypted; -1 on error. */
static ssize_t
load_unit(int fd, uint64 unit)
{
	ssize_t		got = cmk_pread_full(fd, unit_buf, UNIT, (off_t) (unit * UNIT));

	if (got > 0)
		crypt_unit(fd, unit, unit_buf, (size_t) got, false);
	return got;
}

static int
temp_decrypt_whole(int fd, off_t unit_off, char *unit)
{
	crypt_unit(fd, (uint64) unit_off / UNIT, unit, UNIT, false);
	return 0;
}

/* Part of a unit (or a last unit shorter than 8 kB): the stored unit is one
 * data unit, so load it whole and copy the part asked for. */
static int
temp_read_part(int fd, off_t unit_off, off_t from, off_t to, char *dst)
{
	ssize_t		stored = load_unit(fd, (uint64) unit_off / UNIT);

	if (stored < 0)
		return 0;
	if (to - unit_off > stored)
		to = unit_off + stored;
	if (to > from)
		memcpy(dst, unit_buf + (from - unit_off), to - from);
	return 0;
}

static void
temp_encrypt_whole(int fd, off_t unit_off, const char *in, char *out)
{
	crypt_unit_to(fd, (uint64) unit_off / UNIT, in, out, UNIT, true);
}

/* Part of a unit: merge with what is stored, rewrite the unit. */
static int
temp_write_part(int fd, off_t unit_off, off_t from, off_t to, const char *src)
{
	uint64		unit = (uint64) unit_off / UNIT;
	ssize_t		stored;
	size_t		new_len;
	ssize_t		rc;

	if (fd_lock_units[fd])
		lock_units(fd, unit_off, UNIT, F_WRLCK);
	stored = load_unit(fd, unit);
	if (stored < 0)
	{
		if (fd_lock_units[fd])
			lock_units(fd, unit_off, UNIT, F_UNLCK);
		return -1;
	}
	if (from - unit_off > stored)
		memset(unit_buf + stored, 0, (from - unit_off) - stored);	/* a hole reads as zeros */
	memcpy(unit_buf + (from - unit_off), src, to - from);
	new_len = Max((size_t) stored, (size_t) (to - unit_off));
	crypt_unit(fd, unit, unit_buf, new_len, true);
	rc = cmk_pwrite_all(fd, unit_buf, new_len, unit_off);
	if (fd_lock_units[fd])
		lock_units(fd, unit_off, UNIT, F_UNLCK);
	return rc < 0 ? -1 : 0;
}

static const cmk_unit_class temp_units = {
	.decrypt_whole = temp_decrypt_whole,
	.read_part = temp_read_part,
	.encrypt_whole = temp_encrypt_whole,
	.write_part = temp_write_part,
};

void
cmk_temp_after_read(int fd, char *buf, size_t len, off_t offset)
{
	off_t		end = offset + (off_t) len;
	off_t		first = offset - offset % UNIT;
	bool		locked = fd_lock_units[fd];

	if (locked)
	{
		/* Read again under the lock: what was read may be mid-rewrite. */
		lock_units(fd, first, end - first + UNIT, F_RDLCK);
		if (cmk_real_io.pread(fd, buf, len, offset) != (ssize_t) len)
			memset(buf, 0, len);
	}
	(void) cmk_unit_after_read(&temp_units, fd, buf, len, offset);
	if (locked)
		lock_units(fd, first, end - first + UNIT, F_UNLCK);
}

ssize_t
cmk_temp_write(int fd, const char *buf, size_t count, off_t offset)
{
	return cmk_unit_write(&temp_units, fd, buf, count, offset);
}

/* ftruncate: the unit cut in two is re-encrypted at its new length. */
int
cmk_temp_truncate(int fd, off_t length)
{
	uint64		unit = (uint64) length / UNIT;
	size_t		keep = (size_t) (length % UNIT);
	ssize_t		stored = 0;

	if (keep != 0 && (stored = load_unit(fd, unit)) < 0)
		return -1;
	if (cmk_real_io.ftruncate(fd, length) != 0)
		return -1;
	if (keep == 0 || stored == 0)
		return 0;
	keep = Min(keep, (size_t) stored);
	crypt_unit(fd, unit, unit_buf, keep, true);
	return cmk_pwrite_all(fd, unit_buf, keep, (off_t) (unit * UNIT)) < 0 ? -1 : 0;
}

/*
 * Start-up, in the postmaster, before anything reads them: files of the
 * temporary class that survive a restart (two-phase state files, the
 * pg_stat_statements dump) were written with an earlier run's generation, or
 * in plaintext before cmk was first loaded; re-encrypt them with this run's.
 * Each file's generation is found by decrypting its first unit under every
 * generation the keyring holds (and none: plaintext) until its magic number
 * appears, so a start that crashed half way is completed by the next one.
 * Each file is replaced whole (temp, fsync, durable_rename). Plain libc
 * I/O: the GOT is not patched yet.
 */
#define TWOPHASE_FILE_MAGIC 0x57F94534	/* TWOPHASE_MAGIC (twophase.c) */
#define PGSS_DUMP_MAGIC 0x20220408	/* PGSS_FILE_HEADER (pg_stat_statements.c) */

/* Encrypts or decrypts in place the first limit bytes of data (a file of
 * relpath, size bytes) with generation (0: plaintext, nothing to do). */
static void
crypt_file(const char *relpath, char *data, size_t size, uint32 generation, bool encrypt, size_t limit)
{
	cmk_temp_cipher *cipher;
	uint64		hash = cmk_temp_path_hash(relpath);

	if (generation == 0)
		return;
	cipher = cmk_temp_cipher_for(generation);
	for (size_t off = 0; off < size && off < limit; off += UNIT)
	{
		size_t		len = Min((size_t) UNIT, size - off);
		uint8	   *unit = (uint8 *) data + off;
		int			rc = encrypt ? cmk_temp_unit_encrypt(cipher, hash, off / UNIT, unit, unit, len)
			: cmk_temp_unit_decrypt(cipher, hash, off / UNIT, unit, unit, len);

		if (rc != 0)
			ereport(FATAL, (errmsg("cmk: could not %s \"%s\" to re-key it", encrypt ? "encrypt" : "decrypt", relpath)));
	}
}

/* The generation data (the file's bytes) was written with, or -1. */
static int64
file_generation(const char *relpath, const char *data, size_t size, uint32 magic)
{
	char		first[UNIT];
	size_t		len = Min((size_t) UNIT, size);
	uint32		candidates[CMK_MAX_GENERATIONS + 2];
	int			n = 0;

	if (size < sizeof(uint32))
		return -1;
	candidates[n++] = cmk_keys->current_generation;
	for (uint32 i = 0; i < cmk_keys->n_slots; i++)
		if (cmk_keys->slots[i].generation != 0 && cmk_keys->slots[i].generation != cmk_keys->current_generation)
			candidates[n++] = cmk_keys->slots[i].generation;
	candidates[n++] = 0;
	for (int c = 0; c < n; c++)
	{
		uint32		found;

		memcpy(first, data, len);
		crypt_file(relpath, first, len, candidates[c], false, UNIT);
		memcpy(&found, first, sizeof(found));
		if (found == magic)
			return candidates[c];
	}
	return -1;
}

static void
rekey_file(const char *relpath, uint32 magic, uint32 to, int *rekeyed)
{
	char		path[MAXPGPATH];
	int			fd;
	struct stat st;
	char	   *data;
	ssize_t		got = 0;
	int64		from;

	snprintf(path, sizeof(path), "%s/%s", DataDir, relpath);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0)
	{
		if (fd >= 0)
			close(fd);
		return;
	}
	data = palloc(Max(st.st_size, 1));
	while (got < st.st_size)
	{
		ssize_t		r = read(fd, data + got, st.st_size - got);

		if (r <= 0)
			break;
		got += r;
	}
	close(fd);
	if (got != st.st_size)
		ereport(FATAL, (errcode_for_file_access(), errmsg("cmk: could not read \"%s\" to re-key it: %m", path)));

	from = file_generation(relpath, data, st.st_size, magic);
	if (from < 0)
	{
		ereport(WARNING,
				(errmsg("cmk: \"%s\" does not decrypt to its magic number under any key generation of the keyring; left as it is", path)));
		pfree(data);
		return;
	}
	if ((uint32) from != to)
	{
		crypt_file(relpath, data, st.st_size, (uint32) from, false, SIZE_MAX);
		crypt_file(relpath, data, st.st_size, to, true, SIZE_MAX);
		if (!cmk_replace_file_via(path, ".cmk-rekey", data, st.st_size, LOG))
			ereport(FATAL,
					(errmsg("cmk: could not re-key \"%s\" (see the message above)", path),
					 errdetail("The file is intact; the next start re-keys it.")));
		(*rekeyed)++;
	}
	pfree(data);
}

void
cmk_temp_rekey_at_start(void)
{
	char		path[MAXPGPATH];
	char		buf[32];
	DIR		   *dir;
	struct dirent *de;
	int			rekeyed = 0;

	cmk_keys->temp_generation = cmk_keys->current_generation;
	snprintf(path, sizeof(path), "%s/pg_twophase", DataDir);
	if ((dir = opendir(path)) != NULL)
	{
		while ((de = readdir(dir)) != NULL)
		{
			if (strlen(de->d_name) == 8 && strspn(de->d_name, "0123456789ABCDEF") == 8)
				rekey_file(psprintf("pg_twophase/%s", de->d_name), TWOPHASE_FILE_MAGIC,
						   cmk_keys->temp_generation, &rekeyed);
		}
		closedir(dir);
	}
	rekey_file("pg_stat/pg_stat_statements.stat", PGSS_DUMP_MAGIC, cmk_keys->temp_generation, &rekeyed);
	if (rekeyed > 0)
		ereport(LOG, (errmsg("cmk: re-encrypted %d surviving temporary files (two-phase state, pg_stat_statements dump) with key generation %u",
							 rekeyed, cmk_keys->temp_generation)));

	/* For the record only: each file's generation is found by its contents. */
	snprintf(path, sizeof(path), "%s/pg_cmk/temp_generation", DataDir);
	snprintf(buf, sizeof(buf), "%u\n", cmk_keys->temp_generation);
	if (!cmk_replace_file(path, buf, strlen(buf), LOG))
		ereport(FATAL, (errmsg("cmk: could not write \"%s\" (see the message above)", path)));
}
