/*
 * The leaf of the binding layer: libc's own I/O functions, as the server's
 * GOT held them before io_binding.c pointed it at the wrappers, and whole
 * reads and writes with them. Everything that must reach the disk without
 * going through a wrapper (the cipher layer's read-merge-write, the
 * wrappers themselves) calls these.
 */
#include "postgres.h"

#include <unistd.h>

#include "pg/bind/bind.h"

cmk_real_io_t cmk_real_io;

/* Reads up to count bytes at offset, retrying short reads; bytes read or -1. */
ssize_t
cmk_pread_full(int fd, char *buf, size_t count, off_t offset)
{
	size_t		got = 0;

	while (got < count)
	{
		ssize_t		r = cmk_real_io.pread(fd, buf + got, count - got, offset + got);

		if (r < 0)
		{
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += r;
	}
	return (ssize_t) got;
}

/* Writes all of buf at offset; count or -1 (ENOSPC for a zero-byte write). */
ssize_t
cmk_pwrite_all(int fd, const char *buf, size_t count, off_t offset)
{
	size_t		done = 0;

	while (done < count)
	{
		ssize_t		r = cmk_real_io.pwrite(fd, buf + done, count - done, offset + done);

		if (r < 0)
		{
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
		{
			errno = ENOSPC;
			return -1;
		}
		done += r;
	}
	return (ssize_t) done;
}
