/*
 * Before a keyring is created, make sure the data directory holds no page
 * that a lost keyring once encrypted: creating a new keyring over such pages
 * would hide the real problem. Reads the first block of every relation file
 * (global/, base/<db>/, pg_tblspc/<ts>/<version dir>/<db>/).
 *
 * Runs inside the C++ core's call (as its callback), so it must not ereport:
 * plain libc only, unreadable entries are skipped.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "catalog/catalog.h"

#include "pg/cmk.h"

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
file_starts_encrypted(const char *path)
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

/* depth 0: files here; depth 1: database directories below. */
static bool
scan_directory(const char *dir, int depth)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;
	bool		found = false;

	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL)
	{
		char		path[MAXPGPATH];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (depth > 0)
			found = scan_directory(path, depth - 1);
		else if (is_relation_file_name(de->d_name))
			found = file_starts_encrypted(path);
	}
	closedir(d);
	return found;
}

int
cmk_encrypted_data_exists(void *arg)
{
	const char *datadir = (const char *) arg;
	char		path[MAXPGPATH];

	snprintf(path, sizeof(path), "%s/global", datadir);
	if (scan_directory(path, 0))
		return 1;
	snprintf(path, sizeof(path), "%s/base", datadir);
	if (scan_directory(path, 1))
		return 1;
	/* pg_tblspc/<oid>/PG_15_<catversion>/<db>/<files> */
	snprintf(path, sizeof(path), "%s/pg_tblspc", datadir);
	if (scan_directory(path, 3))
		return 1;
	return 0;
}
