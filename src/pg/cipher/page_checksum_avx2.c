/*
 * PostgreSQL's page checksum compiled for AVX2 (the Makefile adds -mavx2 for
 * this file only); page_checksum.c calls it only on CPUs that have AVX2.
 */
#include "postgres.h"

#include "pg/cipher/cipher.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define pg_checksum_page cmk_checksum_page_avx2
#include "storage/checksum_impl.h"
#undef pg_checksum_page
#endif
