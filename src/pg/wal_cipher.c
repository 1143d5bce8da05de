/*
 * WAL pages (DESIGN.md "WAL"): each XLOG_BLCKSZ page keeps bytes [0, 16)
 * in plaintext (xlp_magic, xlp_info, xlp_tli, xlp_pageaddr; the whole
 * 40-byte long header on the first page of a segment); bytes
 * [16, XLOG_BLCKSZ) are AES-256-XTS with the WAL sub-key and the tweak
 * (xlp_pageaddr, xlp_tli) read from the page itself, so byte copies of
 * segments stay readable. The key generation goes into xlp_info bits 8..15
 * (PostgreSQL uses bits 0..3) and is cleared on read; pages without it
 * (written before cmk, or all zeros) pass through, so mixed segments work.
 *
 * Reads and writes may start and end anywhere: a page only partly in the
 * caller's range is read whole from the file (and for a write, merged and
 * written back whole), because XTS needs the whole page.
 *
 * The page format itself is the core's (src/core/wal_page.h), shared with
 * pg_cmk; this file handles descriptors, offsets and scratch space.
 *
 * Hot path (XLogWrite under WALWriteLock): pages are encrypted once into a
 * per-process scratch area and written with one pwrite per chunk; no
 * allocation, no lock.
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlog_internal.h"

#include "pg/cmk.h"
#include "pg/file_io.h"

#define WAL_PAGE XLOG_BLCKSZ
#define SCRATCH_PAGES 64

StaticAssertDecl(XLOG_BLCKSZ == 8192, "cmk assumes 8 kB WAL pages");
StaticAssertDecl(XLOG_PAGE_MAGIC == CMK_WAL_PAGE_MAGIC, "the core's WAL page magic is this server's");
StaticAssertDecl((XLP_ALL_FLAGS & CMK_WAL_GENERATION_MASK) == 0,
				 "generation bits must not overlap xlp_info flags");
StaticAssertDecl(offsetof(XLogPageHeaderData, xlp_pageaddr) == 8 && SizeOfXLogShortPHD == 24,
				 "the core's WAL page header layout is this server's");
StaticAssertDecl(SizeOfXLogLongPHD == 40 && XLP_LONG_HEADER == 0x0002,
				 "the core's long WAL page header is this server's");

/* Aligned for O_DIRECT WAL writes. */
static char scratch[SCRATCH_PAGES * WAL_PAGE] pg_attribute_aligned(4096);
static char page_buf[WAL_PAGE] pg_attribute_aligned(4096);

/*
 * Encrypts one page into out (in != out). Returns false, with the page
 * copied unchanged, when it is not a plaintext WAL page (zeros, or already
 * marked).
 */
bool
cmk_wal_page_encrypt_copy(const char *in, char *out)
{
	uint32		generation = cmk_current_generation();

	if (cmk_wal_page_encrypt(cmk_cipher_for(generation, CMK_PURPOSE_WAL), generation,
							 (const uint8 *) in, (uint8 *) out))
		return true;
	memcpy(out, in, WAL_PAGE);
	return false;
}

/* Decrypts one page in place if it is marked; returns whether it was. */
bool
cmk_wal_page_decrypt_in_place(char *page)
{
	uint32		generation = cmk_wal_page_generation((const uint8 *) page);

	if (generation == 0)
		return false;
	if (!cmk_wal_page_decrypt(cmk_cipher_for(generation, CMK_PURPOSE_WAL), (uint8 *) page))
		elog(PANIC, "cmk: could not decrypt a WAL page");
	return true;
}

/* Reads the whole page at page_off into page_buf (zeros past end of file). */
static bool
read_whole_page(int fd, off_t page_off)
{
	ssize_t		got = cmk_pread_full(fd, page_buf, WAL_PAGE, page_off);

	if (got < 0)
		return false;
	memset(page_buf + got, 0, WAL_PAGE - got);
	return true;
}

void
cmk_wal_after_read(int fd, char *buf, size_t len, off_t offset)
{
	off_t		end = offset + (off_t) len;
	off_t		page_off = offset - offset % WAL_PAGE;

	for (; page_off < end; page_off += WAL_PAGE)
	{
		off_t		from = Max(page_off, offset);
		off_t		to = Min(page_off + WAL_PAGE, end);

		if (from == page_off && to == page_off + WAL_PAGE)
		{
			cmk_wal_page_decrypt_in_place(buf + (page_off - offset));
			continue;
		}
		/* Part of a page: take that part from the whole page, decrypted. */
		if (!read_whole_page(fd, page_off))
			continue;			/* leave what was read; the caller validates */
		cmk_wal_page_decrypt_in_place(page_buf);
		memcpy(buf + (from - offset), page_buf + (from - page_off), to - from);
	}
}


ssize_t
cmk_wal_write(int fd, const char *buf, size_t count, off_t offset)
{
	off_t		end = offset + (off_t) count;
	off_t		page_off = offset - offset % WAL_PAGE;
	off_t		run_start = -1;
	int			run_pages = 0;

	for (; page_off < end; page_off += WAL_PAGE)
	{
		off_t		from = Max(page_off, offset);
		off_t		to = Min(page_off + WAL_PAGE, end);

		if (from == page_off && to == page_off + WAL_PAGE)
		{
			/* A whole page: encrypt into the current run of the scratch. */
			if (run_pages == SCRATCH_PAGES)
			{
				if (cmk_pwrite_all(fd, scratch, (size_t) run_pages * WAL_PAGE, run_start) < 0)
					return -1;
				run_pages = 0;
			}
			if (run_pages == 0)
				run_start = page_off;
			cmk_wal_page_encrypt_copy(buf + (page_off - offset), scratch + (size_t) run_pages * WAL_PAGE);
			run_pages++;
			continue;
		}

		/* Part of a page: flush the run, then merge with the page on disk. */
		if (run_pages > 0)
		{
			if (cmk_pwrite_all(fd, scratch, (size_t) run_pages * WAL_PAGE, run_start) < 0)
				return -1;
			run_pages = 0;
		}
		if (!read_whole_page(fd, page_off))
			return -1;
		cmk_wal_page_decrypt_in_place(page_buf);
		memcpy(page_buf + (from - page_off), buf + (from - offset), to - from);
		if (cmk_wal_page_encrypt_copy(page_buf, scratch))
		{
			if (cmk_pwrite_all(fd, scratch, WAL_PAGE, page_off) < 0)
				return -1;
		}
		else if (cmk_pwrite_all(fd, buf + (from - offset), to - from, from) < 0)
			return -1;			/* not a WAL page (zero fill): as asked */
	}
	if (run_pages > 0 && cmk_pwrite_all(fd, scratch, (size_t) run_pages * WAL_PAGE, run_start) < 0)
		return -1;
	return (ssize_t) count;
}
