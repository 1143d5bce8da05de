/*
 * cmk_relation_pages(regclass): reads a relation's files as they are on disk
 * (not through shared buffers) and counts, per fork, the pages that are
 * encrypted, plaintext or new (all zeros). Pages still only in shared
 * buffers are not seen: run CHECKPOINT first for a complete picture.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/relation.h"
#include "common/relpath.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "pg/sql/sql.h"

PG_FUNCTION_INFO_V1(cmk_relation_pages);

Datum
cmk_relation_pages(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	rel;
	PGAlignedBlock block;

	InitMaterializedSRF(fcinfo, 0);
	rel = relation_open(relid, AccessShareLock);
	if (!RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"%s\" has no storage", RelationGetRelationName(rel))));

	for (ForkNumber fork = MAIN_FORKNUM; fork <= MAX_FORKNUM; fork++)
	{
		char	   *base = relpathbackend(rel->rd_node, rel->rd_backend, fork);
		int64		counts[3] = {0, 0, 0};
		bool		exists = false;

		for (int segno = 0;; segno++)
		{
			char	   *path = segno == 0 ? pstrdup(base) : psprintf("%s.%d", base, segno);
			int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
			ssize_t		n;

			if (fd < 0)
			{
				if (errno != ENOENT)
					ereport(ERROR, (errcode_for_file_access(),
									errmsg("could not open file \"%s\": %m", path)));
				pfree(path);
				break;
			}
			exists = true;
			while ((n = read(fd, block.data, BLCKSZ)) == BLCKSZ)
			{
				counts[cmk_page_classify(block.data)]++;
				CHECK_FOR_INTERRUPTS();
			}
			if (n < 0)
				ereport(ERROR, (errcode_for_file_access(),
								errmsg("could not read file \"%s\": %m", path)));
			CloseTransientFile(fd);
			pfree(path);
		}
		if (exists)
		{
			Datum		values[4];
			bool		nulls[4] = {0};

			values[0] = CStringGetTextDatum(forkNames[fork]);
			values[1] = Int64GetDatum(counts[CMK_PAGE_ENCRYPTED]);
			values[2] = Int64GetDatum(counts[CMK_PAGE_PLAINTEXT]);
			values[3] = Int64GetDatum(counts[CMK_PAGE_NEW]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		pfree(base);
	}
	relation_close(rel, AccessShareLock);
	return (Datum) 0;
}
