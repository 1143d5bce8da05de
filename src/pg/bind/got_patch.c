/*
 * Finding and writing GOT slots of a loaded ELF object (the server
 * executable, or a shared library such as pg_stat_statements.so): the
 * relocations of its dynamic section name the imported symbol of each slot.
 * With full RELRO the slots are read-only after start-up: a write makes the
 * page writable for a moment and protects it again.
 */
#include "postgres.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pg/bind/bind.h"

typedef struct object_query
{
	const char *suffix;			/* NULL: the executable (first object) */
	bool		done;
	ElfW(Addr)	base;
	const ElfW(Dyn) *dynamic;
	uintptr_t	relro_start;
	uintptr_t	relro_end;
} object_query;

static bool
ends_with(const char *s, const char *suffix)
{
	size_t		ls = strlen(s),
				lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int
find_object(struct dl_phdr_info *info, size_t size, void *data)
{
	object_query *q = (object_query *) data;
	bool		first = !q->done && q->suffix == NULL;

	if (q->done)
		return 1;
	if (!first && (q->suffix == NULL || info->dlpi_name == NULL || !ends_with(info->dlpi_name, q->suffix)))
		return 0;
	q->done = true;
	q->base = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum; i++)
	{
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			q->dynamic = (const ElfW(Dyn) *) (info->dlpi_addr + ph->p_vaddr);
		else if (ph->p_type == PT_GNU_RELRO)
		{
			q->relro_start = info->dlpi_addr + ph->p_vaddr;
			q->relro_end = q->relro_start + ph->p_memsz;
		}
	}
	return 1;
}

/* ld.so relocates d_ptr entries of the loaded image; accept both forms. */
static uintptr_t
dyn_ptr(const object_query *q, ElfW(Addr) p)
{
	return p < q->base ? q->base + p : p;
}

static void
scan_relocations(const object_query *q, const ElfW(Rela) *rela, size_t bytes,
				 const ElfW(Sym) *symtab, const char *strtab,
				 cmk_got_slot *slots, int n)
{
	for (size_t i = 0; i < bytes / sizeof(ElfW(Rela)); i++)
	{
		unsigned long type = ELF64_R_TYPE(rela[i].r_info);
		const char *name;

		if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
			continue;
		name = strtab + symtab[ELF64_R_SYM(rela[i].r_info)].st_name;
		for (int t = 0; t < n; t++)
		{
			if (strcmp(name, slots[t].name) != 0)
				continue;
			slots[t].found++;
			slots[t].slot = (void **) (q->base + rela[i].r_offset);
			slots[t].in_relro = (uintptr_t) slots[t].slot >= q->relro_start &&
				(uintptr_t) slots[t].slot < q->relro_end;
		}
	}
}

bool
cmk_got_find(const char *object_suffix, cmk_got_slot *slots, int n)
{
	object_query q = {.suffix = object_suffix};
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *jmprel = NULL,
			   *rela = NULL;
	size_t		jmprel_bytes = 0,
				rela_bytes = 0;

	for (int t = 0; t < n; t++)
	{
		slots[t].found = 0;
		slots[t].slot = NULL;
	}
	dl_iterate_phdr(find_object, &q);
	if (!q.done || q.dynamic == NULL)
		return false;
	for (const ElfW(Dyn) *d = q.dynamic; d->d_tag != DT_NULL; d++)
	{
		switch (d->d_tag)
		{
			case DT_SYMTAB:
				symtab = (const ElfW(Sym) *) dyn_ptr(&q, d->d_un.d_ptr);
				break;
			case DT_STRTAB:
				strtab = (const char *) dyn_ptr(&q, d->d_un.d_ptr);
				break;
			case DT_JMPREL:
				jmprel = (const ElfW(Rela) *) dyn_ptr(&q, d->d_un.d_ptr);
				break;
			case DT_PLTRELSZ:
				jmprel_bytes = d->d_un.d_val;
				break;
			case DT_RELA:
				rela = (const ElfW(Rela) *) dyn_ptr(&q, d->d_un.d_ptr);
				break;
			case DT_RELASZ:
				rela_bytes = d->d_un.d_val;
				break;
		}
	}
	if (symtab == NULL || strtab == NULL)
		return false;
	if (jmprel)
		scan_relocations(&q, jmprel, jmprel_bytes, symtab, strtab, slots, n);
	if (rela)
		scan_relocations(&q, rela, rela_bytes, symtab, strtab, slots, n);
	return true;
}

void
cmk_got_write(const cmk_got_slot *slot, void *value)
{
	long		pagesize = sysconf(_SC_PAGESIZE);
	uintptr_t	page = (uintptr_t) slot->slot & ~(uintptr_t) (pagesize - 1);

	if (mprotect((void *) page, pagesize, PROT_READ | PROT_WRITE) != 0)
		ereport(FATAL,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cmk: could not make an import table writable: %m"),
				 errhint("A hardened kernel policy (SELinux execmod, PaX) forbids it; cmk cannot run under it.")));
	*(void *volatile *) slot->slot = value;
	if (slot->in_relro && mprotect((void *) page, pagesize, PROT_READ) != 0)
		ereport(FATAL, (errmsg("cmk: could not protect an import table again: %m")));
}
