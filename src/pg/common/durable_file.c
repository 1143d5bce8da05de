/*
 * cmk's files under $PGDATA/pg_cmk (keyring, sweep state, temporary-file
 * generation, ...) are only ever replaced whole: write a temporary file,
 * fsync it, then PostgreSQL's durable_rename (which fsyncs the file, renames
 * it and fsyncs the directory). A crash at any point leaves either the old
 * or the new file, never a torn one.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "pg/common/common.h"

/*
 * Writes path (created or truncated) with data and fsyncs it. Reports
 * failures at elevel and returns false (when elevel < ERROR); a file it
 * could not complete is removed.
 */
bool
cmk_write_file_synced(const char *path, const void *data, size_t len, int elevel)
{
	int			fd;
	size_t		done = 0;

	fd = OpenTransientFile(path, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
	{
		ereport(elevel, (errcode_for_file_access(), errmsg("cmk: could not create \"%s\": %m", path)));
		return false;
	}
	while (done < len)
	{
		ssize_t		n;

		errno = 0;
		n = write(fd, (const char *) data + done, len - done);
		if (n <= 0)
		{
			int			save = errno ? errno : ENOSPC;

			if (errno == EINTR)
				continue;
			CloseTransientFile(fd);
			unlink(path);
			errno = save;
			ereport(elevel, (errcode_for_file_access(), errmsg("cmk: could not write \"%s\": %m", path)));
			return false;
		}
		done += (size_t) n;
	}
	if (pg_fsync(fd) != 0)
	{
		int			save = errno;

		CloseTransientFile(fd);
		unlink(path);
		errno = save;
		ereport(elevel, (errcode_for_file_access(), errmsg("cmk: could not fsync \"%s\": %m", path)));
		return false;
	}
	if (CloseTransientFile(fd) != 0)
	{
		int			save = errno;

		unlink(path);
		errno = save;
		ereport(elevel, (errcode_for_file_access(), errmsg("cmk: could not close \"%s\": %m", path)));
		return false;
	}
	return true;
}

/*
 * Replaces path with data durably (path<tmp_suffix>, fsync, durable_rename).
 * Returns false after reporting at elevel (< ERROR); the old file is intact.
 */
bool
cmk_replace_file_via(const char *path, const char *tmp_suffix, const void *data, size_t len, int elevel)
{
	char		tmp[MAXPGPATH];

	snprintf(tmp, sizeof(tmp), "%s%s", path, tmp_suffix);
	if (!cmk_write_file_synced(tmp, data, len, elevel))
		return false;
	if (durable_rename(tmp, path, elevel) != 0)
	{
		unlink(tmp);
		return false;
	}
	return true;
}

/* cmk_replace_file_via with path.tmp. */
bool
cmk_replace_file(const char *path, const void *data, size_t len, int elevel)
{
	return cmk_replace_file_via(path, ".tmp", data, len, elevel);
}
