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

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pg/cmk.h"
#include "pg/file_io.h"

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

static int	cmk_open(const char *path, int flags,...);
static int	cmk_close(int fd);
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
	{"open", (void *) open, (void *) cmk_open},
	{"close", (void *) close, (void *) cmk_close},
	{"read", (void *) read, (void *) cmk_read},
	{"write", (void *) write, (void *) cmk_write},
	{"pread", (void *) pread, (void *) cmk_pread},
	{"pwrite", (void *) pwrite, (void *) cmk_pwrite},
	{"pwritev", (void *) pwritev, (void *) cmk_pwritev},
	{"ftruncate", (void *) ftruncate, (void *) cmk_ftruncate},
	{"__read_chk", (void *) __read_chk, (void *) cmk_read_chk},
};

#define N_TARGETS lengthof(targets)

static bool io_bound = false;

/* Encrypted files opened with O_APPEND: appends are emulated (see cmk_open). */
static bool fd_append[CMK_FD_TABLE_SIZE];

/* ---- wrappers ---- */

static int
cmk_open(const char *path, int flags,...)
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

static int
cmk_close(int fd)
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

	if (unlikely(class != CMK_FILE_PLAIN) && r > 0)
		cmk_file_after_read(class, fd, buf, (size_t) r, offset);
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
	if (r > 0 && offset >= 0)
		cmk_file_after_read(class, fd, buf, (size_t) r, offset);
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

/* ---- finding and patching the GOT ---- */

typedef struct dyn_info
{
	ElfW(Addr)	base;
	const ElfW(Dyn) *dynamic;
	bool		seen_main;
	uintptr_t	relro_start;
	uintptr_t	relro_end;
} dyn_info;

static int
find_main_dynamic(struct dl_phdr_info *info, size_t size, void *data)
{
	dyn_info   *di = (dyn_info *) data;

	if (di->seen_main)
		return 1;
	di->seen_main = true;
	di->base = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum; i++)
	{
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			di->dynamic = (const ElfW(Dyn) *) (info->dlpi_addr + ph->p_vaddr);
		else if (ph->p_type == PT_GNU_RELRO)
		{
			di->relro_start = info->dlpi_addr + ph->p_vaddr;
			di->relro_end = di->relro_start + ph->p_memsz;
		}
	}
	return 1;
}

/* ld.so relocates d_ptr entries of the loaded image; accept both forms. */
static uintptr_t
dyn_ptr(const dyn_info *di, ElfW(Addr) p)
{
	return p < di->base ? di->base + p : p;
}

static void
scan_relocations(const dyn_info *di, const ElfW(Rela) *rela, size_t bytes,
				 const ElfW(Sym) *symtab, const char *strtab)
{
	for (size_t i = 0; i < bytes / sizeof(ElfW(Rela)); i++)
	{
		unsigned long type = ELF64_R_TYPE(rela[i].r_info);
		const char *name;

		if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
			continue;
		name = strtab + symtab[ELF64_R_SYM(rela[i].r_info)].st_name;
		for (size_t t = 0; t < N_TARGETS; t++)
		{
			if (strcmp(name, targets[t].name) != 0)
				continue;
			targets[t].found++;
			targets[t].slot = (void **) (di->base + rela[i].r_offset);
		}
	}
}

void
cmk_io_binding_install(void)
{
	dyn_info	di = {0};
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *jmprel = NULL,
			   *rela = NULL;
	size_t		jmprel_bytes = 0,
				rela_bytes = 0;
	long		pagesize = sysconf(_SC_PAGESIZE);

	dl_iterate_phdr(find_main_dynamic, &di);
	if (di.dynamic == NULL)
		ereport(FATAL, (errmsg("cmk: the server executable has no dynamic section")));
	for (const ElfW(Dyn) *d = di.dynamic; d->d_tag != DT_NULL; d++)
	{
		switch (d->d_tag)
		{
			case DT_SYMTAB:
				symtab = (const ElfW(Sym) *) dyn_ptr(&di, d->d_un.d_ptr);
				break;
			case DT_STRTAB:
				strtab = (const char *) dyn_ptr(&di, d->d_un.d_ptr);
				break;
			case DT_JMPREL:
				jmprel = (const ElfW(Rela) *) dyn_ptr(&di, d->d_un.d_ptr);
				break;
			case DT_PLTRELSZ:
				jmprel_bytes = d->d_un.d_val;
				break;
			case DT_RELA:
				rela = (const ElfW(Rela) *) dyn_ptr(&di, d->d_un.d_ptr);
				break;
			case DT_RELASZ:
				rela_bytes = d->d_un.d_val;
				break;
		}
	}
	if (symtab == NULL || strtab == NULL)
		ereport(FATAL, (errmsg("cmk: the server executable has no dynamic symbol table")));
	if (jmprel)
		scan_relocations(&di, jmprel, jmprel_bytes, symtab, strtab);
	if (rela)
		scan_relocations(&di, rela, rela_bytes, symtab, strtab);

	for (size_t t = 0; t < N_TARGETS; t++)
	{
		got_target *tg = &targets[t];

		if (tg->found != 1 || *tg->slot != tg->libc)
			ereport(FATAL,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cmk: cannot bind to this server's file I/O: the import of %s was found %d times%s",
							tg->name, tg->found,
							tg->found == 1 ? " and does not point at the C library's function" : ""),
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

	for (size_t t = 0; t < N_TARGETS; t++)
	{
		got_target *tg = &targets[t];
		uintptr_t	page = (uintptr_t) tg->slot & ~(uintptr_t) (pagesize - 1);
		bool		relro = (uintptr_t) tg->slot >= di.relro_start && (uintptr_t) tg->slot < di.relro_end;

		if (mprotect((void *) page, pagesize, PROT_READ | PROT_WRITE) != 0)
			ereport(FATAL,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cmk: could not make the server's import table writable: %m"),
					 errhint("A hardened kernel policy (SELinux execmod, PaX) forbids it; cmk cannot run under it.")));
		*(void *volatile *) tg->slot = tg->wrapper;
		if (relro && mprotect((void *) page, pagesize, PROT_READ) != 0)
			ereport(FATAL, (errmsg("cmk: could not protect the server's import table again: %m")));
	}
	io_bound = true;
}

bool
cmk_io_bound(void)
{
	return io_bound;
}
