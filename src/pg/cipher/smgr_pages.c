/*
 * What the storage manager's read, write and extend slots point at once
 * bind/smgr_binding.c has patched them: md.c's own functions around the
 * page cipher (page_cipher.c). Reads are refused first while the server is
 * inaccessible (keys/access_gate.c). Writes encrypt into a per-process
 * scratch page, never in the caller's buffer (it may be a shared buffer
 * under a share lock); nothing here allocates.
 */
#include "postgres.h"

#include "storage/md.h"
#include "storage/smgr.h"

#include "pg/cipher/cipher.h"

/* Per-process scratch page for encrypted copies: no allocation per write. */
static PGAlignedBlock scratch;

void
cmk_smgr_extend(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer, bool skipFsync)
{
	char	   *out = cmk_page_encrypt(buffer, scratch.data, reln->smgr_rnode.node.relNode, blocknum);

	mdextend(reln, forknum, blocknum, out, skipFsync);
}

void
cmk_smgr_read(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer)
{
	cmk_access_check_read();
	mdread(reln, forknum, blocknum, buffer);
	cmk_page_decrypt(buffer, reln->smgr_rnode.node.relNode, blocknum);
}

void
cmk_smgr_write(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer, bool skipFsync)
{
	char	   *out = cmk_page_encrypt(buffer, scratch.data, reln->smgr_rnode.node.relNode, blocknum);

	mdwrite(reln, forknum, blocknum, out, skipFsync);
}
