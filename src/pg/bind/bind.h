/*
 * The binding layer (DESIGN.md "Where encryption happens", "Layers"): how
 * cmk reaches the running server's I/O without a server patch. It knows
 * nothing of keys or ciphers; the cipher layer hands it, at start-up, the
 * functions that encrypt (an operations table for files, the page wrappers
 * for the storage manager). A server with real storage hooks would replace
 * this folder only.
 *   got_patch.c      GOT slots of loaded ELF objects, found and written
 *   real_io.c        libc's own I/O functions, whole reads and writes with them
 *   fd_io.c          the libc wrappers and the per-descriptor class table
 *   stdio_streams.c  fopen() of an encrypted file gives an encrypting stream
 *   io_binding.c     the wrappers installed in the executable's and extensions' GOT
 *   smgr_binding.c   the storage-manager table, located and patched
 */
#ifndef CMK_PG_BIND_H
#define CMK_PG_BIND_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "storage/smgr.h"

#include "pg/common/common.h"

/* got_patch.c */
typedef struct cmk_got_slot
{
	const char *name;			/* imported symbol */
	void	  **slot;			/* where the object calls it through */
	int			found;			/* relocations naming it */
	bool		in_relro;
} cmk_got_slot;

/* object_suffix NULL = the server executable. False if it is not loaded. */
extern bool cmk_got_find(const char *object_suffix, cmk_got_slot *slots, int n);
/* Writes a slot (FATAL if the kernel refuses). */
extern void cmk_got_write(const cmk_got_slot *slot, void *value);

/* real_io.c: libc's functions, as found in the GOT before it was patched */
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
extern ssize_t cmk_pread_full(int fd, char *buf, size_t count, off_t offset);
extern ssize_t cmk_pwrite_all(int fd, const char *buf, size_t count, off_t offset);

/* fd_io.c: the class of each open descriptor, and the wrappers */
typedef enum cmk_file_class
{
	CMK_FILE_PLAIN = 0,			/* not ours: straight through */
	CMK_FILE_WAL,				/* pg_wal segments, xlogtemp.N, RECOVERYXLOG */
	CMK_FILE_TEMP				/* temporary files: pgsql_tmp, spill, two-phase */
} cmk_file_class;

#define CMK_FD_TABLE_SIZE 65536
extern uint8 cmk_fd_class[CMK_FD_TABLE_SIZE];

static inline cmk_file_class
cmk_fd_class_of(int fd)
{
	return (fd >= 0 && fd < CMK_FD_TABLE_SIZE) ? (cmk_file_class) cmk_fd_class[fd] : CMK_FILE_PLAIN;
}

/*
 * What the wrappers do with a file of a class other than CMK_FILE_PLAIN:
 * set by the cipher layer (cipher/file_classes.c) before the GOT is patched.
 */
typedef struct cmk_file_class_ops
{
	cmk_file_class (*classify) (const char *path);
	void		(*opened) (int fd, cmk_file_class class, const char *path);
	/* decrypts what a read returned; 0, or -1 with errno (the read fails) */
	int			(*after_read) (cmk_file_class class, int fd, void *buf, size_t len, off_t offset);
	ssize_t		(*write) (cmk_file_class class, int fd, const void *buf, size_t count, off_t offset);
	ssize_t		(*writev) (cmk_file_class class, int fd, const struct iovec *iov, int iovcnt, off_t offset);
	int			(*truncate) (cmk_file_class class, int fd, off_t length);
} cmk_file_class_ops;

extern const cmk_file_class_ops *cmk_file_ops;
extern int	cmk_open_wrapper(const char *path, int flags,...);
extern int	cmk_close_wrapper(int fd);
extern ssize_t cmk_read_wrapper(int fd, void *buf, size_t count);
extern ssize_t cmk_write_wrapper(int fd, const void *buf, size_t count);
extern ssize_t cmk_pread_wrapper(int fd, void *buf, size_t count, off_t offset);
extern ssize_t cmk_pwrite_wrapper(int fd, const void *buf, size_t count, off_t offset);
extern ssize_t cmk_pwritev_wrapper(int fd, const struct iovec *iov, int iovcnt, off_t offset);
extern int	cmk_ftruncate_wrapper(int fd, off_t length);
extern ssize_t cmk_read_chk_wrapper(int fd, void *buf, size_t count, size_t buflen);

/* stdio_streams.c */
extern FILE *cmk_fopen(const char *path, const char *mode);
extern int	cmk_fileno(FILE *stream);

/* io_binding.c: FATAL unless every import is found once, holding libc's */
extern void cmk_io_binding_install(const cmk_file_class_ops *ops);
extern void cmk_io_binding_install_in(const char *object_suffix);

/* smgr_binding.c: md.c's read, write and extend, as f_smgr calls them */
typedef void (*cmk_smgr_extend_fn) (SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer, bool skipFsync);
typedef void (*cmk_smgr_read_fn) (SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer);
typedef void (*cmk_smgr_write_fn) (SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer, bool skipFsync);

extern void cmk_smgr_binding_locate(void);
extern void cmk_smgr_binding_install(cmk_smgr_extend_fn extend, cmk_smgr_read_fn read, cmk_smgr_write_fn write);

#endif							/* CMK_PG_BIND_H */
