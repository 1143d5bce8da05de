/*
 * cmk_verify(): pg_cmk verify's coverage report over this server's data
 * directory, one row per relation fork, WAL segment or other file that cmk
 * encrypts (src/core/verify.h). Files are read as stored on disk, not
 * through shared buffers: run CHECKPOINT first for the complete picture.
 *
 * Files of the classes that carry no mark (pgsql_tmp, spill files,
 * pg_stat_statements query texts) count as encrypted here: a running
 * server with cmk wrote every one of them through cmk (PostgreSQL removes
 * or rewrites them at start), and their bytes cannot say so. pg_cmk verify,
 * which cannot know who wrote a stopped directory's files, calls them
 * unmarked.
 */
#include "postgres.h"

#include "catalog/pg_control.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "pg/sql/sql.h"

PG_FUNCTION_INFO_V1(cmk_verify);

/* The core reads pages and pg_control with its own copy of these layouts. */
StaticAssertDecl(CMK_DATA_PAGE_GENERATION_MASK == CMK_PD_GENERATION_MASK, "one data page generation mask");
StaticAssertDecl(PG_CONTROL_VERSION == CMK_PG_CONTROL_VERSION &&
				 offsetof(ControlFileData, blcksz) == CMK_PG_CONTROL_BLCKSZ_OFFSET &&
				 offsetof(ControlFileData, relseg_size) == CMK_PG_CONTROL_RELSEG_SIZE_OFFSET &&
				 offsetof(ControlFileData, data_checksum_version) == CMK_PG_CONTROL_CHECKSUM_VERSION_OFFSET,
				 "the core's pg_control layout is this server's");

/* Called from the core's scan: only reads flags, never ereports. */
static int
verify_interrupted(void *arg)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

Datum
cmk_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	cmk_verify_result *result;
	cmk_error	err;

	InitMaterializedSRF(fcinfo, 0);
	result = cmk_verify_scan(DataDir, verify_interrupted, NULL, &err);
	if (result == NULL)
	{
		CHECK_FOR_INTERRUPTS();
		cmk_report_core_error(ERROR, err.kind == CMK_ERR_IO ? ERRCODE_IO_ERROR : ERRCODE_INTERNAL_ERROR, NULL, &err);
	}

	PG_TRY();
	{
		size_t		n = cmk_verify_row_count(result);

		for (size_t i = 0; i < n; i++)
		{
			cmk_verify_row row;
			Datum		values[5];
			bool		nulls[5] = {0};

			cmk_verify_get_row(result, i, &row);
			values[0] = CStringGetTextDatum(row.file_class);
			values[1] = CStringGetTextDatum(row.relation);
			values[2] = Int64GetDatum(row.encrypted + row.unmarked);
			values[3] = Int64GetDatum(row.plaintext);
			values[4] = Int64GetDatum(row.empty);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		cmk_verify_free(result);
	}
	PG_END_TRY();
	return (Datum) 0;
}
