/*
 * Binding to the storage manager of a stock PostgreSQL 15 (DESIGN.md "Where
 * encryption happens"). PostgreSQL 15 has no storage hook: smgr.c calls
 * md.c through `smgrsw`, a const table of f_smgr entries in the executable's
 * RELRO data. We find that table by its exact contents (the exported md*
 * functions in f_smgr order), make its page writable for a moment, and
 * replace the read, write and extend slots with the wrappers the cipher
 * layer gives (cipher/smgr_pages.c: md.c's functions around the page
 * cipher). This runs in the postmaster before any child is forked, so
 * every process inherits the patched table.
 *
 * Fail closed: a pattern found zero or several times, or a protection
 * change the kernel refuses, stops start-up. The check is the binary's
 * contents, not its version number: any PostgreSQL 15.x whose table matches
 * is bound (DESIGN.md "Binding by contents").
 * This module is the only one that knows how cmk is bound; a server with a
 * real storage hook would replace just this file.
 */
#include "postgres.h"

#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include "storage/md.h"
#include "storage/smgr.h"
#include "utils/guc.h"

#include "pg/bind/bind.h"

/* f_smgr of PostgreSQL 15 (smgr.c), as an array of function pointers. */
#define F_SMGR_SLOTS 15
#define SLOT_EXTEND 7
#define SLOT_READ 9
#define SLOT_WRITE 10

static void *volatile *smgrsw_slots = NULL;
static bool smgrsw_in_relro = false;

typedef struct scan_state
{
	const void *pattern[F_SMGR_SLOTS];
	int			matches;
	void	  **match;
	uintptr_t	relro_start;
	uintptr_t	relro_end;
	bool		seen_main;
} scan_state;

static int
scan_main_program(struct dl_phdr_info *info, size_t size, void *data)
{
	scan_state *st = (scan_state *) data;

	/* The first object reported is the executable itself. */
	if (st->seen_main)
		return 1;
	st->seen_main = true;

	for (int i = 0; i < info->dlpi_phnum; i++)
	{
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_GNU_RELRO)
		{
			st->relro_start = info->dlpi_addr + ph->p_vaddr;
			st->relro_end = st->relro_start + ph->p_memsz;
		}
	}
	for (int i = 0; i < info->dlpi_phnum; i++)
	{
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t	start,
					end;

		/*
		 * Only the writable segments (data, and the RELRO part of it where
		 * smgrsw lives): scanning the 8 MB of text too took 4 ms of every
		 * start and could never yield a usable match.
		 */
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_R) || !(ph->p_flags & PF_W))
			continue;
		start = TYPEALIGN(sizeof(void *), info->dlpi_addr + ph->p_vaddr);
		end = info->dlpi_addr + ph->p_vaddr + ph->p_filesz;
		for (uintptr_t p = start; p + sizeof(st->pattern) <= end; p += sizeof(void *))
		{
			void	  **cand = (void **) p;

			if (cand[0] != st->pattern[0] || memcmp(cand, st->pattern, sizeof(st->pattern)) != 0)
				continue;
			st->matches++;
			st->match = cand;
		}
	}
	return 1;
}

/* Finds smgrsw; FATAL unless it is there exactly once. */
void
cmk_smgr_binding_locate(void)
{
	scan_state	st = {
		.pattern = {
			(const void *) mdinit, NULL, (const void *) mdopen, (const void *) mdclose,
			(const void *) mdcreate, (const void *) mdexists, (const void *) mdunlink,
			(const void *) mdextend, (const void *) mdprefetch, (const void *) mdread,
			(const void *) mdwrite, (const void *) mdwriteback, (const void *) mdnblocks,
			(const void *) mdtruncate, (const void *) mdimmedsync
		}
	};

	dl_iterate_phdr(scan_main_program, &st);
	if (st.matches != 1)
		ereport(FATAL,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cmk: cannot bind to this server's storage manager: its table of md functions was found %d times in the data segment",
						st.matches),
				 errdetail("cmk binds to a PostgreSQL 15 executable whose storage-manager table holds md.c's functions in PostgreSQL 15's order; this executable's (PostgreSQL %s) does not, as in a server patched with its own storage layer.",
						   GetConfigOption("server_version", false, false)),
				 errhint("Run cmk on Debian's or the PostgreSQL project's PostgreSQL 15 server, or remove cmk from shared_preload_libraries.")));
	smgrsw_slots = (void *volatile *) st.match;
	smgrsw_in_relro = (uintptr_t) st.match >= st.relro_start &&
		(uintptr_t) (st.match + F_SMGR_SLOTS) <= st.relro_end;
}

static void
set_protection(uintptr_t start, size_t len, int prot, const char *what)
{
	if (mprotect((void *) start, len, prot) != 0)
		ereport(FATAL,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cmk: could not %s the storage manager table: %m", what),
				 errdetail("cmk must change the protection of one page of the server's read-only data at start-up."),
				 errhint("A hardened kernel policy (SELinux execmod, PaX) forbids it; cmk cannot run under it.")));
}

/* Replaces the read, write and extend slots. */
void
cmk_smgr_binding_install(cmk_smgr_extend_fn extend, cmk_smgr_read_fn read, cmk_smgr_write_fn write)
{
	long		pagesize = sysconf(_SC_PAGESIZE);
	uintptr_t	first = (uintptr_t) smgrsw_slots & ~(uintptr_t) (pagesize - 1);
	uintptr_t	last = ((uintptr_t) (smgrsw_slots + F_SMGR_SLOTS) + pagesize - 1) & ~(uintptr_t) (pagesize - 1);

	Assert(smgrsw_slots != NULL);
	set_protection(first, last - first, PROT_READ | PROT_WRITE, "make writable");
	smgrsw_slots[SLOT_EXTEND] = (void *) extend;
	smgrsw_slots[SLOT_READ] = (void *) read;
	smgrsw_slots[SLOT_WRITE] = (void *) write;
	if (smgrsw_in_relro)
		set_protection(first, last - first, PROT_READ, "protect again");

	if (smgrsw_slots[SLOT_EXTEND] != (void *) extend ||
		smgrsw_slots[SLOT_READ] != (void *) read ||
		smgrsw_slots[SLOT_WRITE] != (void *) write)
		ereport(FATAL, (errmsg("cmk: the storage manager table did not take the new entries")));
}

