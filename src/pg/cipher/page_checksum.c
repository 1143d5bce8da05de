/*
 * Page checksums for the page cipher: PostgreSQL's own algorithm
 * (storage/checksum_impl.h), run on the widest vector unit the CPU has.
 *
 * Debian builds the server for baseline x86-64, where the 32 FNV-1a lanes of
 * pg_checksum_block cannot use a 32-bit vector multiply; the same source built
 * for AVX2 is about four times faster (bench/results). cmk computes up to two
 * checksums per page it reads or writes, so this is most of its cost besides
 * AES. The faster build is used only after it gave the server's own result
 * on a test page.
 */
#include "postgres.h"

#include "storage/checksum.h"

#include "pg/cipher/cipher.h"

uint16		(*cmk_checksum_page) (char *page, BlockNumber blkno) = pg_checksum_page;

/* Same result as pg_checksum_page on a page that exercises every lane. */
static bool
same_as_server(uint16 (*candidate) (char *, BlockNumber))
{
	PGAlignedBlock page;
	uint32		state = 2166136261u;

	for (int i = 0; i < BLCKSZ; i++)
	{
		state = state * 16777619u + (uint32) i;
		page.data[i] = (char) (state >> 24);
	}
	for (BlockNumber blkno = 0; blkno < 4; blkno++)
		if (candidate(page.data, blkno * 131071) != pg_checksum_page(page.data, blkno * 131071))
			return false;
	return true;
}

void
cmk_page_checksum_init(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
	{
		if (same_as_server(cmk_checksum_page_avx2))
			cmk_checksum_page = cmk_checksum_page_avx2;
		else
			ereport(LOG,
					(errmsg("cmk: the AVX2 page checksum differs from the server's; using the server's")));
	}
#endif
}
