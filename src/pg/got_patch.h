/* GOT slots of loaded ELF objects: see got_patch.c. */
#ifndef CMK_GOT_PATCH_H
#define CMK_GOT_PATCH_H

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

#endif
