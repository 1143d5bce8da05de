/*
 * The wrappers the server's libc imports are pointed at (io_binding.c), and
 * the per-process table, indexed by file descriptor, of the class of each
 * file that cmk encrypts (decided by its path when opened). Every other
 * descriptor goes straight to libc at the cost of one table lookup; a file
 * of an encrypted class goes to the operations the cipher layer set
 * (cmk_file_ops).
 */
#include "postgres.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pg/bind/bind.h"

uint8		cmk_fd_class[CMK_FD_TABLE_SIZE];
const cmk_file_class_ops *cmk_file_ops = NULL;

/* Encrypted files opened with O_APPEND: appends are emulated (see cmk_open_wrapper). */
static bool fd_append[CMK_FD_TABLE_SIZE];

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
	class = cmk_file_ops->classify(path);
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
				cmk_file_ops->opened(fd, class, path);
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

ssize_t
cmk_pread_wrapper(int fd, void *buf, size_t count, off_t offset)
{
	cmk_file_class class = cmk_fd_class_of(fd);
	ssize_t		r = cmk_real_io.pread(fd, buf, count, offset);

	if (unlikely(class != CMK_FILE_PLAIN) && r > 0 &&
		cmk_file_ops->after_read(class, fd, buf, (size_t) r, offset) != 0)
		return -1;
	return r;
}

ssize_t
cmk_pwrite_wrapper(int fd, const void *buf, size_t count, off_t offset)
{
	cmk_file_class class = cmk_fd_class_of(fd);

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.pwrite(fd, buf, count, offset);
	return cmk_file_ops->write(class, fd, buf, count, offset);
}

ssize_t
cmk_read_wrapper(int fd, void *buf, size_t count)
{
	cmk_file_class class = cmk_fd_class_of(fd);
	off_t		offset;
	ssize_t		r;

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.read(fd, buf, count);
	offset = lseek(fd, 0, SEEK_CUR);
	r = cmk_real_io.read(fd, buf, count);
	if (r > 0 && offset >= 0 && cmk_file_ops->after_read(class, fd, buf, (size_t) r, offset) != 0)
		return -1;
	return r;
}

ssize_t
cmk_read_chk_wrapper(int fd, void *buf, size_t count, size_t buflen)
{
	/* count > buflen is the overflow that __read_chk exists to stop */
	if (likely(cmk_fd_class_of(fd) == CMK_FILE_PLAIN) || count > buflen)
		return cmk_real_io.read_chk(fd, buf, count, buflen);
	return cmk_read_wrapper(fd, buf, count);
}

ssize_t
cmk_write_wrapper(int fd, const void *buf, size_t count)
{
	cmk_file_class class = cmk_fd_class_of(fd);
	off_t		offset;
	ssize_t		r;

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.write(fd, buf, count);
	offset = lseek(fd, 0, fd_append[fd] ? SEEK_END : SEEK_CUR);
	if (offset < 0)
		return -1;
	r = cmk_file_ops->write(class, fd, buf, count, offset);
	if (r > 0)
		lseek(fd, offset + r, SEEK_SET);
	return r;
}

ssize_t
cmk_pwritev_wrapper(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	cmk_file_class class = cmk_fd_class_of(fd);

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.pwritev(fd, iov, iovcnt, offset);
	return cmk_file_ops->writev(class, fd, iov, iovcnt, offset);
}

int
cmk_ftruncate_wrapper(int fd, off_t length)
{
	cmk_file_class class = cmk_fd_class_of(fd);

	if (likely(class == CMK_FILE_PLAIN))
		return cmk_real_io.ftruncate(fd, length);
	return cmk_file_ops->truncate(class, fd, length);
}
