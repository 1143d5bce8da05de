/*
 * Binding to the server's file I/O (DESIGN.md "Where encryption happens"):
 * the executable's GOT slots for open, close, read, write, pread, pwrite and
 * pwritev are pointed at wrappers. WAL does not go through the VFD layer,
 * and temporary files do not go through smgr, so this is where their bytes
 * can be seen. The postmaster patches the GOT before forking, every child
 * inherits it. Full RELRO leaves the GOT read-only: it is made writable for
 * the patch and protected again.
 *
 * The wrappers (fd_io.c, stdio_streams.c) hand files of an encrypted class
 * to the operations the cipher layer gives cmk_io_binding_install.
 *
 * Fail closed: a symbol whose GOT slot is missing, found twice, or does not
 * hold libc's function stops start-up.
 */
#include "postgres.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pg/bind/bind.h"

typedef struct got_target
{
	const char *name;
	void	   *libc;			/* libc's function, as this library sees it */
	void	   *wrapper;
	void	  **slot;			/* in the executable's GOT */
	int			found;
} got_target;

/* glibc's _FORTIFY_SOURCE variant of read(), imported beside read(). */
extern ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen);

static got_target targets[] = {
	{"open", (void *) open, (void *) cmk_open_wrapper},
	{"close", (void *) close, (void *) cmk_close_wrapper},
	{"read", (void *) read, (void *) cmk_read_wrapper},
	{"write", (void *) write, (void *) cmk_write_wrapper},
	{"pread", (void *) pread, (void *) cmk_pread_wrapper},
	{"pwrite", (void *) pwrite, (void *) cmk_pwrite_wrapper},
	{"pwritev", (void *) pwritev, (void *) cmk_pwritev_wrapper},
	{"ftruncate", (void *) ftruncate, (void *) cmk_ftruncate_wrapper},
	{"__read_chk", (void *) __read_chk, (void *) cmk_read_chk_wrapper},
	{"fopen", (void *) fopen, (void *) cmk_fopen},
};

#define N_TARGETS lengthof(targets)

void
cmk_io_binding_install(const cmk_file_class_ops *ops)
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
	cmk_file_ops = ops;
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

