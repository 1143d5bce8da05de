/*
 * The relation files of the data directory, walked (cmk_walk_relation_files:
 * sql/dek.c counts a generation's pages with it); and, before a keyring is
 * created, the check that the data directory holds no page that a lost
 * keyring once encrypted: creating a new keyring over such pages would hide
 * the real problem (cmk_encrypted_data_exists, given to keys/ by cmk.c):
 * reads the first block of every relation file (global/, base/<db>/,
 * pg_tblspc/<ts>/<version dir>/<db>/).
 *
 * Runs inside the C++ core's call (as its callback), so it must not ereport:
 * plain libc only, unreadable entries are skipped.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "catalog/catalog.h"

#include "pg/sweep/sweep.h"

static bool
is_relation_file_name(const char *name)
{
	/* <relfilenode>[_fsm|_vm|_init][.<segment>] */
	const char *p = name;

	if (!isdigit((unsigned char) *p))
		return false;
	while (isdigit((unsigned char) *p))
		p++;
	if (*p == '_')
	{
		if (strncmp(p, "_fsm", 4) == 0)
			p += 4;
		else if (strncmp(p, "_vm", 3) == 0)
			p += 3;
		else if (strncmp(p, "_init", 5) == 0)
			p += 5;
		else
			return false;
	}
	if (*p == '.')
	{
		p++;
		if (!isdigit((unsigned char) *p))
			return false;
		while (isdigit((unsigned char) *p))
			p++;
	}
	return *p == '\0';
}

static bool
file_starts_encrypted(const char *path, void *arg)
{
	PGAlignedBlock block;
	int			fd = open(path, O_RDONLY | PG_BINARY);
	ssize_t		n;

	if (fd < 0)
		return false;
	n = read(fd, block.data, BLCKSZ);
	close(fd);
	return n == BLCKSZ && cmk_page_classify(block.data) == CMK_PAGE_ENCRYPTED;
}

/* depth 0: files here; depth > 0: directories below. Stops when fn says so. */
static bool
scan_directory(const char *dir, int depth, cmk_relation_file_fn fn, void *arg)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;
	bool		stop = false;

	if (d == NULL)
		return false;
	while (!stop && (de = readdir(d)) != NULL)
	{
		char		path[MAXPGPATH];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (depth > 0)
			stop = scan_directory(path, depth - 1, fn, arg);
		else if (is_relation_file_name(de->d_name))
			stop = fn(path, arg);
	}
	closedir(d);
	return stop;
}

/*
 * Calls fn for every relation file of the data directory (global/,
 * base/<db>/, pg_tblspc/<ts>/<version>/<db>/) until it returns true;
 * returns whether it did. Plain libc, no ereport.
 */
bool
cmk_walk_relation_files(const char *datadir, cmk_relation_file_fn fn, void *arg)
{
	char		path[MAXPGPATH];

	snprintf(path, sizeof(path), "%s/global", datadir);
	if (scan_directory(path, 0, fn, arg))
		return true;
	snprintf(path, sizeof(path), "%s/base", datadir);
	if (scan_directory(path, 1, fn, arg))
		return true;
	snprintf(path, sizeof(path), "%s/pg_tblspc", datadir);
	return scan_directory(path, 3, fn, arg);
}

int
cmk_encrypted_data_exists(void *arg)
{
	return cmk_walk_relation_files((const char *) arg, file_starts_encrypted, NULL) ? 1 : 0;
}
