/*
 * While the KEK is unavailable the server is inaccessible: every process
 * that can read or write user data is stopped and stays refused until the
 * key works again; the postmaster, the cached DEK and the processes that
 * only flush or replay (checkpointer, background writer, WAL writer,
 * startup, WAL receiver, archiver, logger, autovacuum launcher, cmk's key
 * worker and sweep launcher) stay up, so nothing is lost, and access
 * returns by itself when the key does.
 *
 * Gated processes: client backends, walsenders, autovacuum workers, and
 * background workers connected to a database (parallel workers, logical
 * replication apply and tablesync workers, cmk's sweep workers, any
 * extension's workers). The gates, all inherited from the postmaster:
 *   - new connections, client or replication: ClientAuthentication_hook;
 *   - every query a gated process starts (SQL, SPI, parallel query):
 *     ExecutorStart_hook;
 *   - every commit or PREPARE of a transaction that wrote (has an xid):
 *     transaction callback, so a logical replication apply worker applies
 *     nothing;
 *   - every read of a relation page from disk: cmk_access_check_read() in
 *     the storage-manager read wrapper;
 * and the key worker ends gated processes (SIGTERM) at every check while
 * the server is inaccessible (key_worker.c). A background worker ended or
 * refused exits; the postmaster or its launcher (the logical replication
 * launcher) starts it again, and it is refused again until the key works.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "libpq/auth.h"
#include "miscadmin.h"

#include "pg/keys/keys.h"


static ClientAuthentication_hook_type prev_client_auth = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;

bool
cmk_gated_process(BackendType type, Oid database)
{
	switch (type)
	{
		case B_BACKEND:
		case B_WAL_SENDER:
		case B_AUTOVAC_WORKER:
			return true;
		case B_BG_WORKER:
			return OidIsValid(database);
		default:
			return false;
	}
}

static bool
refused_here(void)
{
	return cmk_status_shared != NULL && cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE &&
		cmk_gated_process(MyBackendType, MyDatabaseId);
}

static void
refuse(int elevel, const char *what)
{
	char		kek[CMK_KEK_ID_MAX];
	char		reason[sizeof(cmk_status_shared->reason)];

	cmk_kek_id(kek, sizeof(kek));
	SpinLockAcquire(&cmk_status_shared->mutex);
	strlcpy(reason, cmk_status_shared->reason, sizeof(reason));
	SpinLockRelease(&cmk_status_shared->mutex);
	ereport(elevel,
			(errcode(ERRCODE_CANNOT_CONNECT_NOW),
			 errmsg("cmk: the server is inaccessible because its key encryption key %s is unavailable%s", kek, what),
			 errdetail("%s", reason),
			 errhint("Restore access to the key (enable it, grant the server's identity get, wrapKey and unwrapKey); the server becomes accessible again by itself within cmk.key_check_interval.")));
}

static void
cmk_client_auth(Port *port, int status)
{
	if (prev_client_auth)
		prev_client_auth(port, status);
	if (status == STATUS_OK && cmk_status_shared != NULL &&
		cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE)
		refuse(FATAL, "");
}

static void
cmk_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (refused_here())
		refuse(ERROR, ": no query runs");
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
cmk_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
		 event == XACT_EVENT_PRE_PREPARE) &&
		TransactionIdIsValid(GetTopTransactionIdIfAny()) && refused_here())
		refuse(ERROR, ": no transaction commits");
}

/* From the storage-manager read wrapper: only when the state says so. */
void
cmk_access_refuse_read(void)
{
	if (refused_here() && CritSectionCount == 0)
		refuse(ERROR, ": no page is read");
}

void
cmk_access_gate_init(void)
{
	prev_client_auth = ClientAuthentication_hook;
	ClientAuthentication_hook = cmk_client_auth;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = cmk_executor_start;
	RegisterXactCallback(cmk_xact_callback, NULL);
}
