/*
 * The sweep layer (DESIGN.md "Key lifecycle", "Layers"): walks the data
 * directory's relation pages, above the ciphers (it classifies and rewrites
 * pages) and the keys (it re-encrypts to the current generation).
 *   data_scan.c   relation files of the data directory; encrypted pages without a keyring
 *   sweep.c       the background sweep that re-encrypts pages of older generations
 */
#ifndef CMK_PG_SWEEP_H
#define CMK_PG_SWEEP_H

#include "pg/cipher/cipher.h"

/* data_scan.c */
typedef bool (*cmk_relation_file_fn) (const char *path, void *arg);
extern bool cmk_walk_relation_files(const char *datadir, cmk_relation_file_fn fn, void *arg);
extern int	cmk_encrypted_data_exists(void *datadir);

/* sweep.c */
extern int	cmk_sweep_cost_limit;
extern int	cmk_sweep_cost_delay_ms;
extern void cmk_sweep_define_settings(void);
extern void cmk_sweep_register(void);
extern void cmk_sweep_request(void);
extern void cmk_sweep_request_at_start(void);
extern void cmk_sweep_mark_read(char *mark, size_t size);
extern const char *cmk_sweep_mark_state(const char *mark);

#endif							/* CMK_PG_SWEEP_H */
