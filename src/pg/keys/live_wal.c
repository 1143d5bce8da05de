/*
 * Which key generations this server's pg_wal still needs: the retirement
 * of a generation (sql/dek.c on a primary, keyring_wal.c's redo on a
 * follower) must not remove one that live WAL pages use. Reads only the
 * plaintext page headers (the generation mark in xlp_info, xlp_pageaddr),
 * so it needs no cipher.
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "storage/fd.h"

#include "pg/keys/keys.h"

/*
 * Pages of generation in this server's pg_wal that belong where they are
 * (a recycled segment keeps stale pages of its earlier life, which nothing
 * reads): what crash recovery, standbys, slots and wal_keep_size may need.
 * Reads the files as stored.
 */
void
cmk_count_live_wal_pages(uint32 generation, int64 *pages, int64 *segments)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	PGAlignedXLogBlock page;

	*pages = *segments = 0;
	snprintf(dir, sizeof(dir), "%s/pg_wal", DataDir);
	d = AllocateDir(dir);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		char		path[MAXPGPATH];
		int			fd;
		bool		hit = false;
		TimeLineID	tli;
		XLogSegNo	segno;
		XLogRecPtr	start;
		off_t		off = 0;

		if (strlen(de->d_name) != 24 || strspn(de->d_name, "0123456789ABCDEF") != 24)
			continue;
		XLogFromFileName(de->d_name, &tli, &segno, wal_segment_size);
		XLogSegNoOffsetToRecPtr(segno, 0, wal_segment_size, start);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			continue;
		while (cmk_pread_full(fd, page.data, XLOG_BLCKSZ, off) == XLOG_BLCKSZ)
		{
			if (cmk_wal_page_generation((const uint8 *) page.data) == generation &&
				((XLogPageHeader) page.data)->xlp_pageaddr == start + off)
			{
				(*pages)++;
				hit = true;
			}
			off += XLOG_BLCKSZ;
		}
		CloseTransientFile(fd);
		if (hit)
			(*segments)++;
	}
	FreeDir(d);
}
