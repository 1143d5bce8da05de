/*
 * Relation pages on disk (DESIGN.md "Data pages"): the server's calls into
 * the core's one implementation of the format (src/core/data_page.h,
 * through capi.h), with what only the server knows: the current key
 * generation, the cipher of each generation, whether data checksums are on
 * and the fastest build of PostgreSQL's checksum, and what to do about a
 * page of a generation the keyring does not hold.
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
#include "storage/bufpage.h"

#include "pg/cipher/cipher.h"

StaticAssertDecl(BLCKSZ == 8192, "cmk assumes 8 kB pages");
StaticAssertDecl(offsetof(PageHeaderData, pd_upper) + sizeof(LocationIndex) <= CMK_DATA_PAGE_CLEAR_BYTES,
				 "the plaintext header must cover pd_upper");
StaticAssertDecl((PD_VALID_FLAG_BITS & CMK_PD_GENERATION_MASK) == 0,
				 "generation bits must not overlap PostgreSQL's page flags");
StaticAssertDecl(CMK_PD_GENERATION_MASK == CMK_DATA_PAGE_GENERATION_MASK, "the core's generation bits");

StaticAssertDecl(CMK_PAGE_NEW == (int) CMK_DATA_PAGE_NEW && CMK_PAGE_PLAINTEXT == (int) CMK_DATA_PAGE_PLAINTEXT &&
				 CMK_PAGE_ENCRYPTED == (int) CMK_DATA_PAGE_ENCRYPTED, "the core's page kinds");

cmk_page_kind
cmk_page_classify(const char *page)
{
	return (cmk_page_kind) cmk_data_page_classify((const uint8 *) page);
}

/*
 * Returns what to write: `page` when it passes through unchanged, else
 * `scratch` holding the encrypted copy. The caller's page is never modified:
 * it may be a shared buffer under a share lock.
 */
char *
cmk_page_encrypt(const char *page, char *scratch, uint32 relnode, BlockNumber blkno)
{
	uint32		generation;

	switch (cmk_data_page_classify((const uint8 *) page))
	{
		case CMK_DATA_PAGE_NEW:
			return (char *) page;
		case CMK_DATA_PAGE_ENCRYPTED:
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("cmk: block %u of relation file %u is about to be written with cmk's flags already set",
							blkno, relnode)));
			break;
		case CMK_DATA_PAGE_PLAINTEXT:
			break;
	}
	generation = cmk_current_generation();
	if (unlikely(cmk_data_page_encrypt(cmk_cipher_for(generation, CMK_PURPOSE_DATA_PAGES), generation, relnode, blkno,
									   DataChecksumsEnabled() ? cmk_checksum_page : NULL,
									   (const uint8 *) page, (uint8 *) scratch) != 1))
		ereport(ERROR, (errmsg("cmk: could not encrypt block %u of relation file %u", blkno, relnode)));
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
	uint32		generation = cmk_page_generation(page);
	cmk_xts    *xts;

	if (generation == 0)
		return;					/* plaintext or new page */
	xts = cmk_cipher_if_known(generation, CMK_PURPOSE_DATA_PAGES);
	if (unlikely(xts == NULL))
	{
		unknown_generation(relnode, blkno, generation);
		return;					/* left as stored: PostgreSQL finds it invalid */
	}
	if (unlikely(cmk_data_page_decrypt(xts, relnode, blkno, DataChecksumsEnabled() ? cmk_checksum_page : NULL,
									   (uint8 *) page) != 1))
		ereport(ERROR, (errmsg("cmk: could not decrypt block %u of relation file %u", blkno, relnode)));
}
