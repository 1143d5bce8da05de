/*
 * Some files with user data are written through stdio: pg_stat_statements
 * writes its query texts with fwrite() on a stream from AllocateFile(), and
 * reads its dump with fread(). stdio's own write() calls are internal to
 * libc and pass no GOT, so the stream itself must encrypt: fopen() (the
 * server's import, used by AllocateFile) of an encrypted file returns a
 * fopencookie() stream whose read, write and seek go through the file
 * class's cipher on a descriptor opened by cmk. fileno() of such a stream
 * (imported by pg_stat_statements for ftruncate) returns that descriptor.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "pg/bind/bind.h"

#define MAX_STREAMS 16

typedef struct cmk_stream
{
	FILE	   *file;
	int			fd;
	cmk_file_class class;
	off_t		pos;
	bool		append;
} cmk_stream;

static cmk_stream streams[MAX_STREAMS];

static ssize_t
stream_read(void *cookie, char *buf, size_t size)
{
	cmk_stream *s = (cmk_stream *) cookie;
	ssize_t		r = cmk_real_io.pread(s->fd, buf, size, s->pos);

	if (r > 0)
	{
		if (cmk_file_ops->after_read(s->class, s->fd, buf, (size_t) r, s->pos) != 0)
			return -1;
		s->pos += r;
	}
	return r;
}

static ssize_t
stream_write(void *cookie, const char *buf, size_t size)
{
	cmk_stream *s = (cmk_stream *) cookie;
	ssize_t		r;

	if (s->append)
		s->pos = lseek(s->fd, 0, SEEK_END);
	r = cmk_file_ops->write(s->class, s->fd, buf, size, s->pos);
	if (r <= 0)
		return 0;				/* stdio's convention for an error */
	s->pos += r;
	return r;
}

static int
stream_seek(void *cookie, off64_t *offset, int whence)
{
	cmk_stream *s = (cmk_stream *) cookie;
	off_t		base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? s->pos : lseek(s->fd, 0, SEEK_END);

	if (base < 0 || base + *offset < 0)
	{
		errno = EINVAL;
		return -1;
	}
	s->pos = base + *offset;
	*offset = s->pos;
	return 0;
}

static int
stream_close(void *cookie)
{
	cmk_stream *s = (cmk_stream *) cookie;
	int			rc = cmk_close_wrapper(s->fd);

	s->file = NULL;
	s->fd = -1;
	return rc;
}

FILE *
cmk_fopen(const char *path, const char *mode)
{
	cmk_file_class class = cmk_file_ops->classify(path);
	cookie_io_functions_t io = {stream_read, stream_write, stream_seek, stream_close};
	bool		plus = strchr(mode, '+') != NULL;
	int			flags;
	cmk_stream *s = NULL;

	if (class == CMK_FILE_PLAIN)
		return cmk_real_io.fopen(path, mode);

	switch (mode[0])
	{
		case 'r':
			flags = plus ? O_RDWR : O_RDONLY;
			break;
		case 'w':
			flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
			break;
		case 'a':
			flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
			break;
		default:
			errno = EINVAL;
			return NULL;
	}
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].file == NULL)
		{
			s = &streams[i];
			break;
		}
	if (s == NULL)
	{
		errno = EMFILE;
		return NULL;
	}
	s->fd = cmk_open_wrapper(path, flags & ~O_APPEND, 0666);
	if (s->fd < 0)
		return NULL;
	s->class = class;
	s->pos = 0;
	s->append = (flags & O_APPEND) != 0;
	s->file = fopencookie(s, mode, io);
	if (s->file == NULL)
	{
		int			save = errno;

		cmk_close_wrapper(s->fd);
		s->fd = -1;
		errno = save;
	}
	return s->file;
}

int
cmk_fileno(FILE *stream)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (streams[i].file == stream && stream != NULL)
			return streams[i].fd;
	return fileno(stream);
}
