/*
 * The cipher layer (DESIGN.md "Data pages", "WAL", "Other files that hold
 * user data", "Layers"): what cmk does to the bytes of each class of file,
 * with the keys of keys/ and the binding of bind/, both below it.
 *   page_cipher.c       relation pages (pd_flags generation, XTS, checksum)
 *   page_checksum*.c    pg_checksum_page, vectorized where the CPU allows
 *   smgr_pages.c        md.c's read, write and extend around the page cipher
 *   unit_io.c           the one read-merge-write engine of 8 kB units
 *   wal_cipher.c        WAL pages (a unit class of the engine)
 *   temp_cipher.c       temporary-class files (a unit class), re-keyed at start
 *   file_classes.c      which files are encrypted; the binding's operations
 */
#ifndef CMK_PG_CIPHER_H
#define CMK_PG_CIPHER_H

#include "storage/block.h"
#include "storage/bufpage.h"

#include "pg/bind/bind.h"
#include "pg/keys/keys.h"

/* page_cipher.c: relation pages */
#define CMK_PD_GENERATION_SHIFT 8
#define CMK_PD_GENERATION_MASK 0xFF00
typedef enum cmk_page_kind
{
	CMK_PAGE_NEW,				/* all zeros */
	CMK_PAGE_PLAINTEXT,
	CMK_PAGE_ENCRYPTED
} cmk_page_kind;

/* The key generation of a stored page (0: plaintext or new). */
static inline uint32
cmk_page_generation(const char *page)
{
	return (((const PageHeaderData *) page)->pd_flags & CMK_PD_GENERATION_MASK) >> CMK_PD_GENERATION_SHIFT;
}

extern char *cmk_page_encrypt(const char *page, char *scratch, uint32 relnode, BlockNumber blkno);
extern void cmk_page_decrypt(char *page, uint32 relnode, BlockNumber blkno);
extern cmk_page_kind cmk_page_classify(const char *page);

/* page_checksum.c: pg_checksum_page, vectorized where the CPU allows */
extern uint16 (*cmk_checksum_page) (char *page, BlockNumber blkno);
extern void cmk_page_checksum_init(void);
extern uint16 cmk_checksum_page_avx2(char *page, BlockNumber blkno);

/* smgr_pages.c: given to cmk_smgr_binding_install */
extern void cmk_smgr_extend(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer, bool skipFsync);
extern void cmk_smgr_read(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer);
extern void cmk_smgr_write(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer, bool skipFsync);

/* unit_io.c: a file class's units, for the engine */
#define CMK_UNIT_BYTES 8192
typedef struct cmk_unit_class
{
	/* Decrypts in place the whole unit read at unit_off; 0, or -1 with errno. */
	int			(*decrypt_whole) (int fd, off_t unit_off, char *unit);
	/* Copies [from, to) of the stored unit at unit_off, decrypted, to dst; 0, or -1 (the read fails). */
	int			(*read_part) (int fd, off_t unit_off, off_t from, off_t to, char *dst);
	/* Encrypts the whole unit for unit_off from in into out (never the same). */
	void		(*encrypt_whole) (int fd, off_t unit_off, const char *in, char *out);
	/* Merges src, [from, to) of the unit at unit_off, into the stored unit and writes it; 0 or -1. */
	int			(*write_part) (int fd, off_t unit_off, off_t from, off_t to, const char *src);
} cmk_unit_class;

extern int	cmk_unit_after_read(const cmk_unit_class *class, int fd, char *buf, size_t len, off_t offset);
extern ssize_t cmk_unit_write(const cmk_unit_class *class, int fd, const char *buf, size_t count, off_t offset);

/* wal_cipher.c */
extern void cmk_wal_file_opened(int fd, const char *path);
extern int	cmk_wal_after_read(int fd, char *buf, size_t len, off_t offset);
extern ssize_t cmk_wal_write(int fd, const char *buf, size_t count, off_t offset);
extern bool cmk_wal_page_encrypt_copy(const char *in, char *out);

/* temp_cipher.c */
extern void cmk_temp_file_opened(int fd, const char *path);
extern void cmk_temp_after_read(int fd, char *buf, size_t len, off_t offset);
extern ssize_t cmk_temp_write(int fd, const char *buf, size_t count, off_t offset);
extern int	cmk_temp_truncate(int fd, off_t length);
extern void cmk_temp_rekey_at_start(void);

/* file_classes.c */
extern void cmk_refuse_unencrypted_file_settings(void);
extern const cmk_file_class_ops cmk_file_class_operations;

#endif							/* CMK_PG_CIPHER_H */
