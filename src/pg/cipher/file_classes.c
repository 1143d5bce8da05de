/*
 * Which files below the storage manager cmk encrypts, decided by the path
 * PostgreSQL opens them by (relative to the data directory):
 *   pg_wal/<24 hex>, pg_wal/xlogtemp.<pid>, pg_wal/RECOVERYXLOG     WAL pages
 *   .../pgsql_tmp/...                      sorts, hashes, tuplestores, filesets
 *   pg_replslot/<slot>/<name>.spill        logical decoding spill files
 *   pg_twophase/<8 hex>[.tmp]              two-phase state files (written as
 *                                          .tmp, then renamed)
 *   pg_stat_tmp/pgss_query_texts.stat      pg_stat_statements query texts
 *   pg_stat/pg_stat_statements.stat[.tmp]  pg_stat_statements dump
 *   pg_notify/<4-6 hex>                    NOTIFY's queue (SLRU pages, whole
 *                                          8 kB pages by pread/pwrite;
 *                                          PostgreSQL empties it at start)
 * and the dispatch of reads and writes to each class's cipher, handed to
 * the binding layer as its operations table (cmk_file_class_operations).
 *
 * A walsender that runs a base backup reads every file as stored: a base
 * backup carries ciphertext, like a file copy. It still writes WAL (the
 * backup start and end records) encrypted, like any other process, and
 * reads its own temporary files (the backup manifest) decrypted.
 */
#include "postgres.h"

#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "utils/guc.h"

#include "pg/cipher/cipher.h"

static bool
all_hex(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isxdigit((unsigned char) s[i]))
			return false;
	return s[n] == '\0';
}

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool
in_dir(const char *path, const char *dir)
{
	/* dir is "pg_wal/", at the start of the path or after a slash */
	const char *p = strstr(path, dir);

	return p != NULL && (p == path || p[-1] == '/');
}

/*
 * Settings under which PostgreSQL would keep user data in files cmk cannot
 * encrypt: refused at start, with the reason.
 */
void
cmk_refuse_unencrypted_file_settings(void)
{
	const char *dsm = GetConfigOption("dynamic_shared_memory_type", false, false);

	/*
	 * With mmap, dynamic shared memory segments (parallel queries' tuple
	 * queues, shared hash tables and sorts) are files in pg_dynshmem/,
	 * which PostgreSQL reads and writes through mmap, not through read and
	 * write: nothing cmk could encrypt.
	 */
	if (dsm != NULL && strcmp(dsm, "mmap") == 0)
		ereport(FATAL,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cmk cannot run with dynamic_shared_memory_type = mmap"),
				 errdetail("With mmap, PostgreSQL keeps dynamic shared memory (parallel queries' tuples, hash tables and sorts) in files under pg_dynshmem/ in the data directory, mapped into memory, and cmk cannot encrypt them."),
				 errhint("Use dynamic_shared_memory_type = posix (the default on Linux) or sysv.")));
}

static cmk_file_class
classify_path(const char *path)
{
	const char *name;

	if (path == NULL)
		return CMK_FILE_PLAIN;

	name = base_name(path);
	if (in_dir(path, "pg_wal/"))
	{
		if (all_hex(name, 24) || strncmp(name, "xlogtemp.", 9) == 0 || strcmp(name, "RECOVERYXLOG") == 0)
			return CMK_FILE_WAL;
		return CMK_FILE_PLAIN;
	}
	if (in_dir(path, "pgsql_tmp/"))
		return CMK_FILE_TEMP;
	if (in_dir(path, "pg_replslot/"))
	{
		size_t		len = strlen(name);

		return (len > 6 && strcmp(name + len - 6, ".spill") == 0) ? CMK_FILE_TEMP : CMK_FILE_PLAIN;
	}
	if ((in_dir(path, "pg_stat_tmp/") && strcmp(name, "pgss_query_texts.stat") == 0) ||
		(in_dir(path, "pg_stat/") && (strcmp(name, "pg_stat_statements.stat") == 0 ||
									   strcmp(name, "pg_stat_statements.stat.tmp") == 0)))
		return CMK_FILE_TEMP;
	if (in_dir(path, "pg_notify/"))
	{
		size_t		len = strlen(name);

		return (len >= 4 && len <= 6 && all_hex(name, (int) len)) ? CMK_FILE_TEMP : CMK_FILE_PLAIN;
	}
	if (in_dir(path, "pg_twophase/") &&
		(all_hex(name, 8) || (strlen(name) == 12 && strcmp(name + 8, ".tmp") == 0 && isxdigit((unsigned char) name[0]))))
		return CMK_FILE_TEMP;
	return CMK_FILE_PLAIN;
}

/*
 * Temporary files in pgsql_tmp/: private to the process that made them
 * (a base backup never copies them). A base-backup walsender reads its own
 * (the backup manifest is buffered in one) decrypted.
 */
static bool fd_in_pgsql_tmp[CMK_FD_TABLE_SIZE];

static void
file_opened(int fd, cmk_file_class class, const char *path)
{
	if (class == CMK_FILE_TEMP)
	{
		if (fd >= 0 && fd < CMK_FD_TABLE_SIZE)
			fd_in_pgsql_tmp[fd] = in_dir(path, "pgsql_tmp/");
		cmk_temp_file_opened(fd, path);
	}
	else if (class == CMK_FILE_WAL)
		cmk_wal_file_opened(fd, path);
}

static inline bool
reading_for_base_backup(cmk_file_class class, int fd)
{
	if (!(am_walsender && MyWalSnd != NULL && MyWalSnd->state == WALSNDSTATE_BACKUP))
		return false;
	return !(class == CMK_FILE_TEMP && fd >= 0 && fd < CMK_FD_TABLE_SIZE && fd_in_pgsql_tmp[fd]);
}

/* Decrypts what a read returned; 0, or -1 with errno (the read fails). */
static int
file_after_read(cmk_file_class class, int fd, void *buf, size_t len, off_t offset)
{
	if (reading_for_base_backup(class, fd))
		return 0;
	if (class == CMK_FILE_WAL)
		return cmk_wal_after_read(fd, (char *) buf, len, offset);
	cmk_temp_after_read(fd, (char *) buf, len, offset);
	return 0;
}

static ssize_t
file_write(cmk_file_class class, int fd, const void *buf, size_t count, off_t offset)
{
	if (class == CMK_FILE_WAL)
		return cmk_wal_write(fd, (const char *) buf, count, offset);
	return cmk_temp_write(fd, (const char *) buf, count, offset);
}

/*
 * Gathers the vector. WAL segment zero-fill (XLogFileInit, wal_init_zero)
 * writes one zeroed buffer many times over: such a vector is checked once
 * per distinct buffer and goes to the real pwritev whole, as PostgreSQL
 * issued it (one system call, not one per page).
 */
static ssize_t
file_writev(cmk_file_class class, int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	ssize_t		total = 0;

	if (class == CMK_FILE_WAL)
	{
		bool		zeros = true;

		for (int i = 0; i < iovcnt && zeros; i++)
		{
			if (i > 0 && iov[i].iov_base == iov[i - 1].iov_base && iov[i].iov_len <= iov[i - 1].iov_len)
				continue;		/* the same zeroed buffer again */
			zeros = cmk_all_zeros(iov[i].iov_base, iov[i].iov_len);
		}
		if (zeros)
			return cmk_real_io.pwritev(fd, iov, iovcnt, offset);
	}

	for (int i = 0; i < iovcnt; i++)
	{
		if (file_write(class, fd, (const char *) iov[i].iov_base, iov[i].iov_len, offset + total) < 0)
			return total > 0 ? total : -1;
		total += (ssize_t) iov[i].iov_len;
	}
	return total;
}

static int
file_truncate(cmk_file_class class, int fd, off_t length)
{
	if (class == CMK_FILE_TEMP)
		return cmk_temp_truncate(fd, length);
	return cmk_real_io.ftruncate(fd, length);
}

/* What bind/'s wrappers do with the files of these classes. */
const cmk_file_class_ops cmk_file_class_operations = {
	.classify = classify_path,
	.opened = file_opened,
	.after_read = file_after_read,
	.write = file_write,
	.writev = file_writev,
	.truncate = file_truncate,
};
