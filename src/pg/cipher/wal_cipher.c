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
 * Which generation encrypts a page depends on its address (the keyring's
 * WAL table), so every server that writes the same WAL uses the same keys
 * for it, and a generation is not used for WAL before readers that follow
 * the WAL can have learnt it.
 *
 * A page is trusted only where it belongs: its xlp_pageaddr must be its
 * place (segment from the file name, offset in the file; the offset within
 * a segment for xlogtemp.N and RECOVERYXLOG). Any other page is a stale one
 * (a recycled segment, or a segment being overwritten): it is not
 * decrypted, only its mark is cleared, so PostgreSQL reads it as it reads
 * any stale page (end of WAL), whatever generation it claims. A page that
 * belongs but carries a generation the keyring does not hold is an error
 * that names the generation (on a standby, that WAL is read again from its
 * upstream server or archive).
 *
 * Reads and writes may start and end anywhere: unit_io.c's engine runs the
 * loop over pages, this file says what a page is (a page only partly in the
 * caller's range is read whole from the file, and for a write merged and
 * written back whole; a stale page on disk counts as zeros).
 *
 * Hot path (XLogWrite under WALWriteLock): pages are encrypted once into the
 * engine's per-process scratch area and written with one pwrite per chunk;
 * no allocation, no lock.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "storage/fd.h"

#include "pg/cipher/cipher.h"

#define WAL_PAGE XLOG_BLCKSZ

StaticAssertDecl(XLOG_BLCKSZ == CMK_UNIT_BYTES, "cmk assumes 8 kB WAL pages (the units of unit_io.c)");
StaticAssertDecl(XLOG_PAGE_MAGIC == CMK_WAL_PAGE_MAGIC, "the core's WAL page magic is this server's");
StaticAssertDecl((XLP_ALL_FLAGS & CMK_WAL_GENERATION_MASK) == 0,
				 "generation bits must not overlap xlp_info flags");
StaticAssertDecl(offsetof(XLogPageHeaderData, xlp_pageaddr) == 8 && SizeOfXLogShortPHD == 24,
				 "the core's WAL page header layout is this server's");
StaticAssertDecl(SizeOfXLogLongPHD == 40 && XLP_LONG_HEADER == 0x0002,
				 "the core's long WAL page header is this server's");

/* A page read back for a partial read or write, and its merged copy
 * (aligned for O_DIRECT WAL writes). */
static char page_buf[WAL_PAGE] pg_attribute_aligned(4096);
static char merged[WAL_PAGE] pg_attribute_aligned(4096);

/*
 * Per descriptor: the WAL position of byte 0 of the file (pg_wal/<segment>),
 * or NO_SEGMENT when the name does not say (xlogtemp.N, RECOVERYXLOG).
 */
#define NO_SEGMENT UINT64CONST(0xFFFFFFFFFFFFFFFF)
static XLogRecPtr fd_segment_start[CMK_FD_TABLE_SIZE];

void
cmk_wal_file_opened(int fd, const char *path)
{
	const char *name = strrchr(path, '/');
	TimeLineID	tli;
	XLogSegNo	segno;

	name = name ? name + 1 : path;
	fd_segment_start[fd] = NO_SEGMENT;
	if (strlen(name) == 24 && strspn(name, "0123456789ABCDEF") == 24 && wal_segment_size > 0)
	{
		XLogFromFileName(name, &tli, &segno, wal_segment_size);
		XLogSegNoOffsetToRecPtr(segno, 0, wal_segment_size, fd_segment_start[fd]);
	}
}

/* Whether the page read at offset of fd is where its header says it is. */
static inline bool
page_belongs(int fd, const char *page, off_t offset)
{
	XLogRecPtr	addr = ((const XLogPageHeaderData *) page)->xlp_pageaddr;
	XLogRecPtr	start = fd_segment_start[fd];

	if (start != NO_SEGMENT)
		return addr == start + (XLogRecPtr) offset;
	return wal_segment_size > 0 && addr % wal_segment_size == (XLogRecPtr) offset % wal_segment_size;
}

/* Encrypts one page into out (in != out) with the generation of its address.
 * Returns false, with the page copied unchanged, when it is not a plaintext
 * WAL page (zeros, or already marked). */
bool
cmk_wal_page_encrypt_copy(const char *in, char *out)
{
	uint32		generation;

	if (!cmk_wal_page_is_plaintext_wal((const uint8 *) in))
	{
		memcpy(out, in, WAL_PAGE);
		return false;
	}
	generation = cmk_wal_generation_for(((const XLogPageHeaderData *) in)->xlp_pageaddr);
	if (cmk_wal_page_encrypt(cmk_cipher_for(generation, CMK_PURPOSE_WAL), generation,
							 (const uint8 *) in, (uint8 *) out))
		return true;
	memcpy(out, in, WAL_PAGE);
	return false;
}

/* Clears the generation mark of a stale page, leaving its bytes as they are. */
static inline void
unmark(char *page)
{
	((XLogPageHeaderData *) page)->xlp_info &= ~CMK_WAL_GENERATION_MASK;
}

/*
 * A page that belongs where it is, of a generation this keyring does not
 * hold. Returns -1 (errno EIO) for a standby, which reads that WAL again
 * from its upstream server or archive; ERROR otherwise.
 */
static int
unknown_generation(int fd, const char *page, off_t offset, uint32 generation)
{
	XLogRecPtr	addr = ((const XLogPageHeaderData *) page)->xlp_pageaddr;
	static XLogRecPtr warned_addr = InvalidXLogRecPtr;

	if (AmStartupProcess() && StandbyMode)
	{
		if (warned_addr != addr)
			ereport(WARNING,
					(errmsg("cmk: WAL page at %X/%X in this server's pg_wal is encrypted with key generation %u, which the keyring does not hold",
							LSN_FORMAT_ARGS(addr), generation),
					 errdetail("The generation was retired after this server wrote that page."),
					 errhint("The page is read again from the upstream server or the archive.")));
		warned_addr = addr;
		errno = EIO;
		return -1;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("cmk: WAL page at %X/%X (offset %lld of a WAL file) is encrypted with key generation %u, which the keyring does not hold",
					LSN_FORMAT_ARGS(addr), (long long) offset, generation),
			 errdetail("cmk_retire_generation() removed it while this WAL was still needed, or pg_cmk/keyring is not the keyring of this data directory."),
			 errhint("Restore pg_cmk/keyring from a backup taken before generation %u was retired (it holds every generation this WAL needs), or rebuild this server from a new base backup.",
					 generation)));
	return -1;					/* keep compiler quiet */
}

/* Decrypts in place a page read at offset of fd; 0, or -1 with errno. */
static int
decrypt_page(int fd, char *page, off_t offset)
{
	uint32		generation = cmk_wal_page_generation((const uint8 *) page);
	cmk_xts    *xts;

	if (generation == 0)
		return 0;
	if (!page_belongs(fd, page, offset))
	{
		unmark(page);
		return 0;
	}
	xts = cmk_cipher_if_known(generation, CMK_PURPOSE_WAL);
	if (xts == NULL)
		return unknown_generation(fd, page, offset, generation);
	if (!cmk_wal_page_decrypt(xts, (uint8 *) page))
		elog(PANIC, "cmk: could not decrypt a WAL page");
	return 0;
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

/* The part [from, to) of the page at page_off, decrypted, to dst. */
static int
wal_read_part(int fd, off_t page_off, off_t from, off_t to, char *dst)
{
	if (!read_whole_page(fd, page_off))
		return 0;				/* leave what was read; the caller validates */
	if (decrypt_page(fd, page_buf, page_off) != 0)
		return -1;
	memcpy(dst, page_buf + (from - page_off), to - from);
	return 0;
}

static int
wal_decrypt_whole(int fd, off_t page_off, char *page)
{
	return decrypt_page(fd, page, page_off);
}

static void
wal_encrypt_whole(int fd, off_t page_off, const char *in, char *out)
{
	cmk_wal_page_encrypt_copy(in, out);
}

/* Merges src, the part [from, to) of the page at page_off, with the page on disk. */
static int
wal_write_part(int fd, off_t page_off, off_t from, off_t to, const char *src)
{
	if (!read_whole_page(fd, page_off))
		return -1;
	/* What is on disk counts only if it belongs here: else zeros. */
	if (cmk_wal_page_generation((const uint8 *) page_buf) != 0 || cmk_wal_page_is_plaintext_wal((const uint8 *) page_buf))
	{
		if (!page_belongs(fd, page_buf, page_off))
			memset(page_buf, 0, WAL_PAGE);
		else if (decrypt_page(fd, page_buf, page_off) != 0)
			return -1;
	}
	memcpy(page_buf + (from - page_off), src, to - from);
	if (cmk_wal_page_encrypt_copy(page_buf, merged))
		return cmk_pwrite_all(fd, merged, WAL_PAGE, page_off) < 0 ? -1 : 0;
	/* not a WAL page (zero fill): as asked */
	return cmk_pwrite_all(fd, src, to - from, from) < 0 ? -1 : 0;
}

static const cmk_unit_class wal_units = {
	.decrypt_whole = wal_decrypt_whole,
	.read_part = wal_read_part,
	.encrypt_whole = wal_encrypt_whole,
	.write_part = wal_write_part,
};

int
cmk_wal_after_read(int fd, char *buf, size_t len, off_t offset)
{
	return cmk_unit_after_read(&wal_units, fd, buf, len, offset);
}

ssize_t
cmk_wal_write(int fd, const char *buf, size_t count, off_t offset)
{
	return cmk_unit_write(&wal_units, fd, buf, count, offset);
}
