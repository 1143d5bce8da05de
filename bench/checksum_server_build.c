/*
 * PostgreSQL's page checksum as Debian's server builds it (baseline x86-64,
 * -funroll-loops -ftree-vectorize as PostgreSQL's own Makefile adds for
 * checksum.c), for bench/page_cipher_bench beside cmk's AVX2 build.
 */
#include "postgres.h"

#include "storage/block.h"

extern uint16 bench_checksum_page_server_build(char *page, BlockNumber blkno);

#define pg_checksum_page bench_checksum_page_server_build
#include "storage/checksum_impl.h"
