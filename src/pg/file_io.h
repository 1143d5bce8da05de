/*
 * Files cmk encrypts below the storage manager (WAL, temporary files, ...):
 * their classes, the per-descriptor class table, and the real libc entry
 * points the wrappers call. See io_binding.c and the per-class files.
 */
#ifndef CMK_FILE_IO_H
#define CMK_FILE_IO_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef enum cmk_file_class
{
	CMK_FILE_PLAIN = 0,			/* not ours: straight through */
	CMK_FILE_WAL,				/* pg_wal segments, xlogtemp.N, RECOVERYXLOG */
	CMK_FILE_TEMP				/* temporary files: pgsql_tmp, spill, two-phase */
} cmk_file_class;

typedef struct cmk_real_io_t
{
	int			(*open) (const char *path, int flags,...);
	int			(*close) (int fd);
	ssize_t		(*read) (int fd, void *buf, size_t count);
	ssize_t		(*write) (int fd, const void *buf, size_t count);
	ssize_t		(*pread) (int fd, void *buf, size_t count, off_t offset);
	ssize_t		(*pwrite) (int fd, const void *buf, size_t count, off_t offset);
	ssize_t		(*pwritev) (int fd, const struct iovec *iov, int iovcnt, off_t offset);
	int			(*ftruncate) (int fd, off_t length);
	ssize_t		(*read_chk) (int fd, void *buf, size_t count, size_t buflen);
	FILE	   *(*fopen) (const char *path, const char *mode);
} cmk_real_io_t;

extern cmk_real_io_t cmk_real_io;

#define CMK_FD_TABLE_SIZE 65536
extern uint8 cmk_fd_class[CMK_FD_TABLE_SIZE];

static inline cmk_file_class
cmk_fd_class_of(int fd)
{
	return (fd >= 0 && fd < CMK_FD_TABLE_SIZE) ? (cmk_file_class) cmk_fd_class[fd] : CMK_FILE_PLAIN;
}

/* io_binding.c */
extern void cmk_io_binding_install(void);
extern void cmk_io_binding_install_in(const char *object_suffix);
extern int	cmk_open_wrapper(const char *path, int flags,...);
extern int	cmk_close_wrapper(int fd);
extern ssize_t cmk_pread_full(int fd, char *buf, size_t count, off_t offset);
extern ssize_t cmk_pwrite_all(int fd, const char *buf, size_t count, off_t offset);

/* stdio_binding.c: fopen() of encrypted files gives an encrypting stream */
extern FILE *cmk_fopen(const char *path, const char *mode);
extern int	cmk_fileno(FILE *stream);

/* file_classes.c: which files are encrypted, and dispatch per class */
extern cmk_file_class cmk_classify_path(const char *path);
extern void cmk_refuse_unencrypted_file_settings(void);
extern int	cmk_file_after_read(cmk_file_class class, int fd, void *buf, size_t len, off_t offset);
extern ssize_t cmk_file_write(cmk_file_class class, int fd, const void *buf, size_t count, off_t offset);
extern ssize_t cmk_file_writev(cmk_file_class class, int fd, const struct iovec *iov, int iovcnt, off_t offset);
extern int	cmk_file_truncate(cmk_file_class class, int fd, off_t length);
extern void cmk_file_opened(int fd, cmk_file_class class, const char *path);

/* temp_cipher.c */
extern void cmk_temp_file_opened(int fd, const char *path);
extern void cmk_temp_after_read(int fd, char *buf, size_t len, off_t offset);
extern ssize_t cmk_temp_write(int fd, const char *buf, size_t count, off_t offset);
extern int	cmk_temp_truncate(int fd, off_t length);
extern void cmk_temp_rekey_at_start(void);

/* wal_cipher.c */
extern void cmk_wal_file_opened(int fd, const char *path);
extern int	cmk_wal_after_read(int fd, char *buf, size_t len, off_t offset);
extern ssize_t cmk_wal_write(int fd, const char *buf, size_t count, off_t offset);
extern bool cmk_wal_page_encrypt_copy(const char *in, char *out);
extern void cmk_count_live_wal_pages(uint32 generation, int64 *pages, int64 *segments);

#endif							/* CMK_FILE_IO_H */
