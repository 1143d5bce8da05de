/*
 * The SQL layer (DESIGN.md "Layers"): the functions of cmk--0.1.sql, on
 * top of every other layer. Each file is one group of SQL functions; they
 * call down, nothing calls them but the server.
 *   dek.c             cmk_rotate_dek, cmk_retire_generation, cmk_sweep_progress
 *   rotate.c          cmk_rotate_key
 *   status.c          cmk_status
 *   verify.c          cmk_verify
 *   relation_pages.c  cmk_relation_pages
 *   top_level.c       keyring changes run as top-level statements only
 */
#ifndef CMK_PG_SQL_H
#define CMK_PG_SQL_H

#include "pg/sweep/sweep.h"

/* top_level.c */
extern void cmk_top_level_init(void);
extern void cmk_require_top_level(const char *function);

#endif							/* CMK_PG_SQL_H */
