/*
 * Binding to the server's file I/O (DESIGN.md "Where encryption happens"):
 * the executable's GOT slots for open, close, read, write, pread, pwrite and
 * pwritev are pointed at wrappers. WAL does not go through the VFD layer,
 * and temporary files do not go through smgr, so this is where their bytes
 * can be seen. The postmaster patches the GOT before forking, every child
 * inherits it. Full RELRO leaves the GOT read-only: it is made writable for
 * the patch and protected again.
 *
 * A per-process table, indexed by file descriptor, records the class of
 * each file that cmk encrypts (decided by its path when opened); every other
 * descriptor goes straight to libc at the cost of one table lookup.
 * Fail closed: a symbol whose GOT slot is missing, found twice, or does not
 * hold libc's function stops start-up.
 */
#include "postgres.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pg/cmk.h"
#include "pg/file_io.h"
#include "pg/got_patch.h"

cmk_real_io_t cmk_real_io;

uint8		cmk_fd_class[CMK_FD_TABLE_SIZE];

typedef struct got_target
{
	const char *name;
	void	   *libc;			/* libc's function, as this library sees it */
	void	   *wrapper;
	void	  **slot;			/* in the executable's GOT */
	int			found;
} got_target;



static ssize_t cmk_read(int fd, void *buf, size_t count);
static ssize_t cmk_write(int fd, const void *buf, size_t count);
static ssize_t cmk_pread(int fd, void *buf, size_t count, off_t offset);
static ssize_t cmk_pwrite(int fd, const void *buf, size_t count, off_t offset);
static ssize_t cmk_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset);
static int	cmk_ftruncate(int fd, off_t length);
static ssize_t cmk_read_chk(int fd, void *buf, size_t count, size_t buflen);

/* glibc's _FORTIFY_SOURCE variant of read(), imported beside read(). */
extern ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen);

static got_target targets[] = {
	{"open", (void *) open, (void *) cmk_open_wrapper},
	{"close", (void *) close, (void *) cmk_close_wrapper},
	{"read", (void *) read, (void *) cmk_read},
	{"write", (void *) write, (void *) cmk_write},
	{"pread", (void *) pread, (void *) cmk_pread},
	{"pwrite", (void *) pwrite, (void *) cmk_pwrite},
	{"pwritev", (void *) pwritev, (void *) cmk_pwritev},
	{"ftruncate", (void *) ftruncate, (void *) cmk_ftruncate},
	{"__read_chk", (void *) __read_chk, (void *) cmk_read_chk},
	{"fopen", (void *) fopen, (void *) cmk_fopen},
};

#define N_TARGETS lengthof(targets)


/* Encrypted files opened with O_APPEND: appends are emulated (see cmk_open_wrapper). */
static bool fd_append[CMK_FD_TABLE_SIZE];

/* ---- wrappers ---- */

int
cmk_open_wrapper(const char *path, int flags,...)
{
	mode_t		mode = 0;
	int			fd;
	cmk_file_class class;
	bool		append = false;

	if (flags & (O_CREAT | O_TMPFILE))
	{
		va_list		ap;

		va_start(ap, flags);
		mode = (mode_t) va_arg(ap, int);
		va_end(ap);
	}
	class = cmk_classify_path(path);
	if (class != CMK_FILE_PLAIN)
	{
		/*
		 * A write that covers part of a page or unit must read it back, so
		 * write-only means read-write; and under O_APPEND, Linux pwrite()
		 * ignores its offset, which a read-modify-write needs: cmk_write
		 * appends by itself instead.
		 */
		append = (flags & O_APPEND) != 0;
		flags &= ~O_APPEND;
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
	}
	fd = cmk_real_io.open(path, flags, mode);
	if (fd >= 0)
	{
		if (likely(fd < CMK_FD_TABLE_SIZE))
		{
			cmk_fd_class[fd] = (uint8) class;
			fd_append[fd] = append;
			if (class != CMK_FILE_PLAIN)
				cmk_file_opened(fd, class, path);
		}
		else if (class != CMK_FILE_PLAIN)
		{
			/* Refuse rather than write such a file in plaintext. */
			cmk_real_io.close(fd);
			errno = EMFILE;
			return -1;
		}
	}
	return fd;
}

int
cmk_close_wrapper(int fd)
{
	if (fd >= 0 && fd < CMK_FD_TABLE_SIZE)
		cmk_fd_class[fd] = CMK_FILE_PLAIN;
	return cmk_real_io.close(fd);
}

static ssize_t
cmk_pread(int fd, void *buf, size_t count, off_t offset)
{
	cmk_file_class class = cmk_fd_class_of(fd);
	ssize_t		r = cmk_real_io.pread(fd, buf, count, offset);

	if (unlikely(class != CMK_FILE_PLAIN) && r > 0 &&
		cmk_file_after_read(class, fd, buf, (size_t) r, offset) != 0)
		return -1;
	return r;
}

static ssize_t
cmk_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	cmk_file_class class = cmk_fd_class_of(fd);

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.pwrite(fd, buf, count, offset);
	return cmk_file_write(class, fd, buf, count, offset);
}

static ssize_t
cmk_read(int fd, void *buf, size_t count)
{
	cmk_file_class class = cmk_fd_class_of(fd);
	off_t		offset;
	ssize_t		r;

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.read(fd, buf, count);
	offset = lseek(fd, 0, SEEK_CUR);
	r = cmk_real_io.read(fd, buf, count);
	if (r > 0 && offset >= 0 && cmk_file_after_read(class, fd, buf, (size_t) r, offset) != 0)
		return -1;
	return r;
}

static ssize_t
cmk_read_chk(int fd, void *buf, size_t count, size_t buflen)
{
	/* count > buflen is the overflow that __read_chk exists to stop */
	if (likely(cmk_fd_class_of(fd) == CMK_FILE_PLAIN) || count > buflen)
		return cmk_real_io.read_chk(fd, buf, count, buflen);
	return cmk_read(fd, buf, count);
}

static ssize_t
cmk_write(int fd, const void *buf, size_t count)
{
	cmk_file_class class = cmk_fd_class_of(fd);
	off_t		offset;
	ssize_t		r;

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.write(fd, buf, count);
	offset = lseek(fd, 0, fd_append[fd] ? SEEK_END : SEEK_CUR);
	if (offset < 0)
		return -1;
	r = cmk_file_write(class, fd, buf, count, offset);
	if (r > 0)
		lseek(fd, offset + r, SEEK_SET);
	return r;
}

static ssize_t
cmk_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	cmk_file_class class = cmk_fd_class_of(fd);

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.pwritev(fd, iov, iovcnt, offset);
	return cmk_file_writev(class, fd, iov, iovcnt, offset);
}

static int
cmk_ftruncate(int fd, off_t length)
{
	cmk_file_class class = cmk_fd_class_of(fd);

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.ftruncate(fd, length);
	return cmk_file_truncate(class, fd, length);
}

/* ---- whole reads and writes with the real calls ---- */

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

/* ---- binding ---- */

void
cmk_io_binding_install(void)
{
	cmk_got_slot slots[N_TARGETS];

	for (size_t t = 0; t < N_TARGETS; t++)
		slots[t].name = targets[t].name;
	if (!cmk_got_find(NULL, slots, N_TARGETS))
		ereport(FATAL, (errmsg("cmk: cannot read the server executable's dynamic section")));
	for (size_t t = 0; t < N_TARGETS; t++)
	{
		if (slots[t].found != 1 || *slots[t].slot != targets[t].libc)
			ereport(FATAL,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cmk: cannot bind to this server's file I/O: the import of %s was found %d times%s",
							targets[t].name, slots[t].found,
							slots[t].found == 1 ? " and does not point at the C library's function" : ""),
					 errhint("Another library may have replaced it, or the server was built differently; cmk cannot run here.")));
	}

	/* Everything found: remember libc's functions, then patch. */
	cmk_real_io.open = (int (*) (const char *, int,...)) targets[0].libc;
	cmk_real_io.close = (int (*) (int)) targets[1].libc;
	cmk_real_io.read = (ssize_t (*) (int, void *, size_t)) targets[2].libc;
	cmk_real_io.write = (ssize_t (*) (int, const void *, size_t)) targets[3].libc;
	cmk_real_io.pread = (ssize_t (*) (int, void *, size_t, off_t)) targets[4].libc;
	cmk_real_io.pwrite = (ssize_t (*) (int, const void *, size_t, off_t)) targets[5].libc;
	cmk_real_io.pwritev = (ssize_t (*) (int, const struct iovec *, int, off_t)) targets[6].libc;
	cmk_real_io.ftruncate = (int (*) (int, off_t)) targets[7].libc;
	cmk_real_io.read_chk = (ssize_t (*) (int, void *, size_t, size_t)) targets[8].libc;
	cmk_real_io.fopen = (FILE *(*) (const char *, const char *)) targets[9].libc;

	for (size_t t = 0; t < N_TARGETS; t++)
		cmk_got_write(&slots[t], targets[t].wrapper);
}

/*
 * Extensions that write user data through their own imports: their GOT
 * slots for the same functions get the same wrappers. Runs after every
 * preloaded library is loaded (shmem_request_hook), in the postmaster.
 */
void
cmk_io_binding_install_in(const char *object_suffix)
{
	cmk_got_slot slots[N_TARGETS + 1];
	int			n = 0;

	for (size_t t = 0; t < N_TARGETS; t++)
		slots[n++].name = targets[t].name;
	slots[n++].name = "fileno";
	if (!cmk_got_find(object_suffix, slots, n))
		return;					/* not loaded */
	for (int t = 0; t < n; t++)
	{
		void	   *wrapper = t < (int) N_TARGETS ? targets[t].wrapper : (void *) cmk_fileno;
		void	   *libc = t < (int) N_TARGETS ? targets[t].libc : (void *) fileno;

		if (slots[t].found == 0)
			continue;
		if (slots[t].found != 1 || *slots[t].slot != libc)
			ereport(FATAL,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cmk: cannot bind to the file I/O of %s: the import of %s was found %d times",
							object_suffix, slots[t].name, slots[t].found)));
		cmk_got_write(&slots[t], wrapper);
	}
}

