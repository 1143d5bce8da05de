/*
 * While the KEK is unavailable the server is inaccessible: every new
 * connection (client or replication) is refused with a message that names
 * the key and the reason. The postmaster and the cached DEK stay up, so
 * nothing is lost, and access returns by itself when the key does.
 */
#include "postgres.h"

#include "libpq/auth.h"

#include "pg/cmk.h"
#include "pg/lifecycle.h"

static ClientAuthentication_hook_type prev_client_auth = NULL;

static void
cmk_client_auth(Port *port, int status)
{
	if (prev_client_auth)
		prev_client_auth(port, status);
	if (status == STATUS_OK && cmk_status_shared != NULL &&
		cmk_status_shared->access_state == CMK_ACCESS_INACCESSIBLE)
	{
		char		kek[CMK_KEK_ID_MAX];
		char		reason[sizeof(cmk_status_shared->reason)];

		cmk_kek_id(kek, sizeof(kek));
		SpinLockAcquire(&cmk_status_shared->mutex);
		strlcpy(reason, cmk_status_shared->reason, sizeof(reason));
		SpinLockRelease(&cmk_status_shared->mutex);
		ereport(FATAL,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("cmk: the server is inaccessible because its key encryption key %s is unavailable", kek),
				 errdetail("%s", reason),
				 errhint("Restore access to the key (enable it, grant the server's identity get, wrapKey and unwrapKey); the server becomes accessible again by itself within cmk.key_check_interval.")));
	}
}

void
cmk_access_gate_init(void)
{
	prev_client_auth = ClientAuthentication_hook;
	ClientAuthentication_hook = cmk_client_auth;
}
