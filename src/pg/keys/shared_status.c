/*
 * cmk's part of PostgreSQL's shared memory: the status that the key worker
 * writes and every backend reads (cmk_status, the connection gate), and the
 * lock that serializes keyring replacements. Key material is not here: it
 * lives in the locked segment of key_memory.c.
 */
#include "postgres.h"

#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "pg/keys/keys.h"

cmk_shared_status *cmk_status_shared = NULL;

/* The status's access state, for the inline read check (keys.h). */
volatile int *cmk_access_flag = NULL;

/* In the postmaster's shmem_request_hook. */
void
cmk_shared_status_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(cmk_shared_status)));
	RequestNamedLWLockTranche("cmk", 1);
}

/*
 * In shmem_startup_hook (the postmaster, and each child under EXEC_BACKEND):
 * creates or finds the status, and points the access gate at it.
 */
void
cmk_shared_status_attach(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cmk_status_shared = ShmemInitStruct("cmk status", sizeof(cmk_shared_status), &found);
	if (!found)
	{
		memset(cmk_status_shared, 0, sizeof(cmk_shared_status));
		SpinLockInit(&cmk_status_shared->mutex);
		strlcpy(cmk_status_shared->last_result, "not checked yet", sizeof(cmk_status_shared->last_result));
	}
	LWLockRelease(AddinShmemInitLock);
	cmk_access_flag = &cmk_status_shared->access_state;
}

LWLock *
cmk_rotation_lock(void)
{
	return &GetNamedLWLockTranche("cmk")[0].lock;
}

/* A consistent copy of the status, taken under its spinlock. */
void
cmk_shared_status_read(cmk_shared_status *out)
{
	SpinLockAcquire(&cmk_status_shared->mutex);
	memcpy(out, cmk_status_shared, sizeof(*out));
	SpinLockRelease(&cmk_status_shared->mutex);
}
