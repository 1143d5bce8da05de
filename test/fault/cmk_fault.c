/*
 * Fault injection for cmk's tests (never built into cmk.so, never
 * installed): an LD_PRELOAD library that makes chosen file operations fail.
 * A test starts a server with LD_PRELOAD=<this library> and
 * CMK_FAULT_FILE=<control file>; every intercepted call re-reads the
 * control file when it changed (one stat). Each line of the control file is
 *
 *     <ops> <path substring> <errno name> [once] [skip=N]
 *
 * ops: a comma-separated list of open, write, pwrite, pwritev, fsync,
 * fdatasync, rename, ftruncate; the path is the one the file was opened by
 * (or either name of a rename). "once" fires for the first matching call
 * of any process (an O_EXCL marker file beside the control file), else the
 * rule fires until it is removed; skip=N lets each process's first N
 * matching calls through. An empty or missing file injects nothing.
 *
 * Production builds cannot enable it: it is a separate library that only
 * exists in a test's build directory, and the dynamic loader ignores
 * LD_PRELOAD unless whoever starts the server sets it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define MAX_RULES 16

typedef struct rule
{
	char		ops[128];
	char		path[256];
	int			err;
	int			once;
	int			skip;
	int			seen;
	int			index;
} rule;

static char *fd_path[MAX_FDS];
static rule rules[MAX_RULES];
static int	n_rules = 0;
static struct timespec rules_mtime;
static ino_t rules_ino;
static int	rules_loaded = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

#define REAL(name, ret, args) \
	static ret (*real_##name) args = NULL; \
	if (!real_##name) real_##name = (ret (*) args) dlsym(RTLD_NEXT, #name)

static int
errno_of(const char *name)
{
	static const struct { const char *n; int e; } names[] = {
		{"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}, {"EACCES", EACCES},
		{"EMFILE", EMFILE}, {"ENOMEM", ENOMEM}};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].n) == 0)
			return names[i].e;
	return EIO;
}

/* Re-reads the control file if it changed; raw syscalls only (no recursion). */
static void
load_rules(void)
{
	const char *file = getenv("CMK_FAULT_FILE");
	struct stat st;
	FILE	   *f;
	char		line[512];

	if (!file)
		return;
	if (stat(file, &st) != 0)
	{
		n_rules = 0;
		rules_loaded = 0;
		return;
	}
	if (rules_loaded && st.st_ino == rules_ino && st.st_mtim.tv_sec == rules_mtime.tv_sec &&
		st.st_mtim.tv_nsec == rules_mtime.tv_nsec)
		return;
	n_rules = 0;
	f = fopen(file, "r");
	if (!f)
		return;
	while (n_rules < MAX_RULES && fgets(line, sizeof(line), f))
	{
		rule	   *r = &rules[n_rules];
		char		err[32] = "";
		char		opt1[16] = "";
		char		opt2[16] = "";

		if (sscanf(line, "%127s %255s %31s %15s %15s", r->ops, r->path, err, opt1, opt2) < 3 || r->ops[0] == '#')
			continue;
		r->err = errno_of(err);
		r->once = strcmp(opt1, "once") == 0 || strcmp(opt2, "once") == 0;
		r->skip = 0;
		r->seen = 0;
		if (strncmp(opt1, "skip=", 5) == 0)
			r->skip = atoi(opt1 + 5);
		if (strncmp(opt2, "skip=", 5) == 0)
			r->skip = atoi(opt2 + 5);
		r->index = n_rules;
		n_rules++;
	}
	fclose(f);
	rules_mtime = st.st_mtim;
	rules_ino = st.st_ino;
	rules_loaded = 1;
}

static int
op_listed(const char *ops, const char *op)
{
	size_t		len = strlen(op);

	for (const char *p = ops; (p = strstr(p, op)) != NULL; p += len)
		if ((p == ops || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
			return 1;
	return 0;
}

/* Errno to fail with (and sets nothing), or 0. */
static int
fault_for(const char *op, const char *path1, const char *path2)
{
	int			err = 0;

	if (!getenv("CMK_FAULT_FILE"))
		return 0;
	pthread_mutex_lock(&lock);
	load_rules();
	for (int i = 0; i < n_rules && err == 0; i++)
	{
		rule	   *r = &rules[i];

		if (!op_listed(r->ops, op))
			continue;
		if (!((path1 && strstr(path1, r->path)) || (path2 && strstr(path2, r->path))))
			continue;
		if (r->seen++ < r->skip)
			continue;
		if (r->once)
		{
			char		marker[600];
			int			fd;

			REAL(open, int, (const char *, int, ...));
			snprintf(marker, sizeof(marker), "%s.fired.%d.%ld.%ld", getenv("CMK_FAULT_FILE"), r->index,
					 (long) rules_mtime.tv_sec, (long) rules_mtime.tv_nsec);
			fd = real_open(marker, O_CREAT | O_EXCL | O_WRONLY, 0600);
			if (fd < 0)
				continue;		/* fired already */
			close(fd);
		}
		err = r->err;
	}
	pthread_mutex_unlock(&lock);
	return err;
}

static void
remember(int fd, const char *path)
{
	if (fd < 0 || fd >= MAX_FDS)
		return;
	free(fd_path[fd]);
	fd_path[fd] = path ? strdup(path) : NULL;
}

static const char *
path_of(int fd)
{
	return (fd >= 0 && fd < MAX_FDS) ? fd_path[fd] : NULL;
}

/*
 * The mode argument the open calls take only when they create a file; a
 * macro because va_start must run in the variadic function itself.
 */
#define OPEN_MODE(flags) \
	({ \
		mode_t		mode_ = 0; \
		if ((flags) & (O_CREAT | O_TMPFILE)) \
		{ \
			va_list		ap_; \
			va_start(ap_, flags); \
			mode_ = va_arg(ap_, int); \
			va_end(ap_); \
		} \
		mode_; \
	})

static int
do_open(const char *name, int dirfd, const char *path, int flags, mode_t mode)
{
	int			err = fault_for("open", path, NULL);
	int			fd;

	if (err)
	{
		errno = err;
		return -1;
	}
	if (dirfd == AT_FDCWD && strcmp(name, "open") == 0)
	{
		REAL(open, int, (const char *, int, ...));
		fd = real_open(path, flags, mode);
	}
	else if (strcmp(name, "open64") == 0)
	{
		REAL(open64, int, (const char *, int, ...));
		fd = real_open64(path, flags, mode);
	}
	else
	{
		REAL(openat, int, (int, const char *, int, ...));
		fd = real_openat(dirfd, path, flags, mode);
	}
	if (fd >= 0)
		remember(fd, path);
	return fd;
}

int
open(const char *path, int flags, ...)
{
	return do_open("open", AT_FDCWD, path, flags, OPEN_MODE(flags));
}

int
open64(const char *path, int flags, ...)
{
	return do_open("open64", AT_FDCWD, path, flags, OPEN_MODE(flags));
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	return do_open("openat", dirfd, path, flags, OPEN_MODE(flags));
}

int
close(int fd)
{
	REAL(close, int, (int));
	remember(fd, NULL);
	return real_close(fd);
}

#define FAIL_IF(op, fd) \
	do { int e_ = fault_for(op, path_of(fd), NULL); if (e_) { errno = e_; return -1; } } while (0)

ssize_t
write(int fd, const void *buf, size_t count)
{
	REAL(write, ssize_t, (int, const void *, size_t));
	FAIL_IF("write", fd);
	return real_write(fd, buf, count);
}

ssize_t
pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	REAL(pwrite, ssize_t, (int, const void *, size_t, off_t));
	FAIL_IF("pwrite", fd);
	return real_pwrite(fd, buf, count, offset);
}

ssize_t
pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
	REAL(pwrite64, ssize_t, (int, const void *, size_t, off_t));
	FAIL_IF("pwrite", fd);
	return real_pwrite64(fd, buf, count, offset);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	REAL(pwritev, ssize_t, (int, const struct iovec *, int, off_t));
	FAIL_IF("pwritev", fd);
	return real_pwritev(fd, iov, iovcnt, offset);
}

int
fsync(int fd)
{
	REAL(fsync, int, (int));
	FAIL_IF("fsync", fd);
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	REAL(fdatasync, int, (int));
	FAIL_IF("fdatasync", fd);
	return real_fdatasync(fd);
}

int
ftruncate(int fd, off_t length)
{
	REAL(ftruncate, int, (int, off_t));
	FAIL_IF("ftruncate", fd);
	return real_ftruncate(fd, length);
}

int
rename(const char *from, const char *to)
{
	int			err = fault_for("rename", from, to);

	REAL(rename, int, (const char *, const char *));
	if (err)
	{
		errno = err;
		return -1;
	}
	return real_rename(from, to);
}
