/*
 * The lowest layer of the glue (DESIGN.md "Layers"): helpers every other
 * layer uses, with no knowledge of binding, keys or ciphers. The core's C
 * interface (core/capi.h) comes with it: every layer may call the core.
 *   core_errors.c    a core error or message list turned into ereport
 *   durable_file.c   files replaced whole (temp, fsync, durable_rename)
 *   workers.c        cmk's background workers described
 */
#ifndef CMK_PG_COMMON_H
#define CMK_PG_COMMON_H

#include "core/capi.h"
#include "postmaster/bgworker.h"

/* Whether len bytes at p are all zero: memcmp against itself shifted by one
 * byte, glibc's vectorized memcmp rather than a byte loop. */
static inline bool
cmk_all_zeros(const void *p, size_t len)
{
	const char *c = (const char *) p;

	return len == 0 || (c[0] == 0 && memcmp(c, c + 1, len - 1) == 0);
}

/* core_errors.c */

/*
 * Reports a core error at elevel: "cmk: <what>: <message>" ("cmk: <message>"
 * when what is NULL), with the error's detail and hint, under sqlerrcode
 * (0: the level's default, as ereport without errcode; cmk_core_error_sqlstate
 * gives one by the error's kind). Returns only when elevel < ERROR.
 */
extern void cmk_report_core_error(int elevel, int sqlerrcode, const char *what, const cmk_error *err);
/* The SQLSTATE that fits a core error's kind. */
extern int	cmk_core_error_sqlstate(const cmk_error *err);
/* Logs each line of lines (the core's messages) at elevel with one "cmk: " prefix. */
extern void cmk_log_core_lines(int elevel, const char *lines);
/* A GUC check hook's refusal with a core error's text; returns false. */
extern bool cmk_guc_check_refuse(const cmk_error *err);

/* durable_file.c */
extern bool cmk_write_file_synced(const char *path, const void *data, size_t len, int elevel);
extern bool cmk_replace_file(const char *path, const void *data, size_t len, int elevel);
extern bool cmk_replace_file_via(const char *path, const char *tmp_suffix, const void *data, size_t len, int elevel);

/* workers.c: a worker of this library running function (its type is type,
 * its name type unless name is given), attached to shared memory, with a
 * database connection when connect. */
extern void cmk_worker_describe(BackgroundWorker *worker, const char *type, const char *name,
								const char *function, bool connect,
								BgWorkerStartTime start, int restart_s);

#endif							/* CMK_PG_COMMON_H */
