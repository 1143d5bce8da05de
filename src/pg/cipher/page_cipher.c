/*
 * Relation pages on disk (DESIGN.md "Data pages"):
 *   bytes [0, 16)    plaintext page header: pd_lsn, pd_checksum, pd_flags,
 *                    pd_lower, pd_upper; the key generation sits in the
 *                    pd_flags bits PostgreSQL does not use (8..15)
 *   bytes [16, 8192) AES-256-XTS, tweak = (relfilenode, block number)
 * All-zero pages and pages without a generation pass through unchanged.
 * With data checksums on, pd_checksum on disk covers the ciphertext (so
 * pg_checksums, pg_basebackup and pgBackRest verify raw files), and the
 * plaintext checksum is set again on read for PostgreSQL's own check.
 *
 * Hot path: no allocation, no lock, no system call.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/bufpage.h"

#include "pg/cipher/cipher.h"

#define CMK_HEADER_BYTES 16

StaticAssertDecl(BLCKSZ == 8192, "cmk assumes 8 kB pages");
StaticAssertDecl(offsetof(PageHeaderData, pd_upper) + sizeof(LocationIndex) <= CMK_HEADER_BYTES,
				 "the plaintext header must cover pd_upper");
StaticAssertDecl((PD_VALID_FLAG_BITS & CMK_PD_GENERATION_MASK) == 0,
				 "generation bits must not overlap PostgreSQL's page flags");

static inline void
make_tweak(uint8 *tweak, uint32 relnode, BlockNumber blkno)
{
	/*
	 * Little-endian, as IEEE 1619 numbers its data units: two word stores
	 * (cmk runs on x86-64 only) where a byte loop cost ~30 instructions a page.
	 */
	uint32		words[CMK_XTS_TWEAK_BYTES / sizeof(uint32)] = {relnode, blkno, 0, 0};

	StaticAssertStmt(sizeof(words) == CMK_XTS_TWEAK_BYTES, "tweak is four words");
#ifdef WORDS_BIGENDIAN
	words[0] = pg_bswap32(relnode);
	words[1] = pg_bswap32(blkno);
#endif
	memcpy(tweak, words, CMK_XTS_TWEAK_BYTES);
}

cmk_page_kind
cmk_page_classify(const char *page)
{
	const PageHeaderData *ph = (const PageHeaderData *) page;

	if ((ph->pd_flags & CMK_PD_GENERATION_MASK) != 0)
		return CMK_PAGE_ENCRYPTED;
	if (ph->pd_upper == 0 && cmk_all_zeros(page, BLCKSZ))
		return CMK_PAGE_NEW;
	return CMK_PAGE_PLAINTEXT;
}

/*
 * Returns what to write: `page` when it passes through unchanged, else
 * `scratch` holding the encrypted copy. The caller's page is never modified:
 * it may be a shared buffer under a share lock.
 */
char *
cmk_page_encrypt(const char *page, char *scratch, uint32 relnode, BlockNumber blkno)
{
	const PageHeaderData *ph = (const PageHeaderData *) page;
	PageHeaderData *out = (PageHeaderData *) scratch;
	uint32		generation = cmk_current_generation();
	uint8		tweak[CMK_XTS_TWEAK_BYTES];

	if (ph->pd_upper == 0 && cmk_all_zeros(page, BLCKSZ))
		return (char *) page;
	if (unlikely((ph->pd_flags & CMK_PD_GENERATION_MASK) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("cmk: block %u of relation file %u is about to be written with cmk's flags already set",
						blkno, relnode)));

	memcpy(scratch, page, CMK_HEADER_BYTES);
	make_tweak(tweak, relnode, blkno);
	if (unlikely(cmk_xts_encrypt(cmk_cipher_for(generation, CMK_PURPOSE_DATA_PAGES),
								 (const uint8 *) page + CMK_HEADER_BYTES,
								 (uint8 *) scratch + CMK_HEADER_BYTES,
								 BLCKSZ - CMK_HEADER_BYTES, tweak) != 0))
		ereport(ERROR, (errmsg("cmk: could not encrypt block %u of relation file %u", blkno, relnode)));
	out->pd_flags |= (uint16) (generation << CMK_PD_GENERATION_SHIFT);
	if (DataChecksumsEnabled())
		out->pd_checksum = cmk_checksum_page(scratch, blkno);
	return scratch;
}

/*
 * A page of a generation the keyring does not hold (yet). During WAL replay
 * that happens to pages a backup copied after a rotation it has not
 * replayed yet: the visibility map and free space map, which replay reads
 * without a full-page image and zeroes when invalid (PostgreSQL rebuilds
 * them). The page is left as stored, with its generation bits set, so that
 * PostgreSQL's own check finds it invalid. Anywhere else it is an error.
 */
static void
unknown_generation(uint32 relnode, BlockNumber blkno, uint32 generation)
{
	if (AmStartupProcess())
	{
		ereport(WARNING,
				(errmsg("cmk: block %u of relation file %u is encrypted with key generation %u, which the keyring does not hold yet",
						blkno, relnode, generation),
				 errdetail("WAL replay has not reached the rotation that created it (a backup copied the page after the rotation); the page is treated as invalid.")));
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("cmk: block %u of relation file %u is encrypted with key generation %u, which the keyring does not hold",
					blkno, relnode, generation),
			 errdetail("cmk_retire_generation() removed it while a page still used it, or pg_cmk/keyring is not the keyring of this data directory."),
			 errhint("Restore pg_cmk/keyring from a backup taken before generation %u was retired, or restore this server from a base backup.",
					 generation)));
}

/* Decrypts in place a page just read from disk. */
void
cmk_page_decrypt(char *page, uint32 relnode, BlockNumber blkno)
{
	PageHeaderData *ph = (PageHeaderData *) page;
	uint32		generation = cmk_page_generation(page);
	bool		checksums;
	bool		ciphertext_ok = true;
	uint8		tweak[CMK_XTS_TWEAK_BYTES];

	cmk_xts    *xts;

	if (generation == 0)
		return;					/* plaintext or new page */
	xts = cmk_cipher_if_known(generation, CMK_PURPOSE_DATA_PAGES);
	if (unlikely(xts == NULL))
	{
		unknown_generation(relnode, blkno, generation);
		return;					/* left as stored: PostgreSQL finds it invalid */
	}

	checksums = DataChecksumsEnabled();
	if (checksums)
		ciphertext_ok = (cmk_checksum_page(page, blkno) == ph->pd_checksum);

	make_tweak(tweak, relnode, blkno);
	if (unlikely(cmk_xts_decrypt(xts,
								 (const uint8 *) page + CMK_HEADER_BYTES,
								 (uint8 *) page + CMK_HEADER_BYTES,
								 BLCKSZ - CMK_HEADER_BYTES, tweak) != 0))
		ereport(ERROR, (errmsg("cmk: could not decrypt block %u of relation file %u", blkno, relnode)));
	ph->pd_flags &= ~CMK_PD_GENERATION_MASK;

	if (checksums)
	{
		uint16		plain = cmk_checksum_page(page, blkno);

		/*
		 * A ciphertext that failed its checksum gets a plaintext checksum
		 * that is sure to fail too, so PostgreSQL reports the page exactly as
		 * it reports a corrupt plaintext page.
		 */
		ph->pd_checksum = ciphertext_ok ? plain : (uint16) (plain ^ 1);
	}
}
