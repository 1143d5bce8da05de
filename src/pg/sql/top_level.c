/*
 * Keyring changes stand alone, like CREATE DATABASE: cmk_rotate_key,
 * cmk_rotate_dek and cmk_retire_generation refuse to run inside a
 * transaction block (BEGIN, or several statements sent as one query string),
 * in a subtransaction, in a pipeline, or below another statement (from a
 * function's SQL statements, a DO block, a procedure, EXPLAIN, PREPARE /
 * EXECUTE). A keyring change goes through WAL and is not undone by a
 * ROLLBACK, so no ROLLBACK must follow it.
 *
 * PostgreSQL tells PreventInTransactionBlock whether a utility statement is
 * top level; a function is not told, so cmk counts nesting itself: statements
 * run by ProcessUtility and queries run by the executor, as
 * pg_stat_statements does. A function called straight from a top-level
 * query runs at executor depth 1 and utility depth 0.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "tcop/utility.h"

#include "pg/sql/sql.h"

static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static int	utility_depth = 0;
static int	executor_depth = 0;

static void
count_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
			  DestReceiver *dest, QueryCompletion *qc)
{
	utility_depth++;
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		utility_depth--;
	}
	PG_END_TRY();
}

static void
count_executor_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once)
{
	executor_depth++;
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		executor_depth--;
	}
	PG_END_TRY();
}

/* AFTER triggers run here: a function they call is not top level either. */
static void
count_executor_finish(QueryDesc *queryDesc)
{
	executor_depth++;
	PG_TRY();
	{
		if (prev_executor_finish)
			prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		executor_depth--;
	}
	PG_END_TRY();
}

void
cmk_require_top_level(const char *function)
{
	if (IsTransactionBlock() || IsSubTransaction())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cmk: %s cannot run inside a transaction block", function),
				 errdetail("A keyring change is not undone by ROLLBACK: it runs as a statement of its own."),
				 errhint("Run SELECT %s alone, outside BEGIN ... COMMIT.", function)));
	if (MyXactFlags & XACT_FLAGS_PIPELINING)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cmk: %s cannot be executed within a pipeline", function)));
	if (utility_depth > 0 || executor_depth > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cmk: %s cannot be executed from a function or another statement", function),
				 errhint("Run SELECT %s alone, as a top-level statement.", function)));
	/* As PreventInTransactionBlock: commit right after this statement. */
	MyXactFlags |= XACT_FLAGS_NEEDIMMEDIATECOMMIT;
}

void
cmk_top_level_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = count_utility;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = count_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = count_executor_finish;
}
