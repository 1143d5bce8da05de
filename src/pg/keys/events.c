/*
 * Key events (start-up unwrap, check failures, rotations, state changes):
 * one tab-separated line each in $PGDATA/pg_cmk/events (time as TimestampTz,
 * event, key id, outcome, detail), kept across restarts, read by the
 * cmk_events view; each is also written to the server log. Never key
 * material.
 *
 * Nothing a caller passes can empty or flood the file: every field is cut
 * to a fixed length (so a line is at most CMK_EVENT_MAX_LINE bytes), and the
 * retention is by count: when the file passes EVENTS_TRIM_BYTES it is
 * replaced (tmp, fsync, durable_rename) by its newest EVENTS_KEEP lines,
 * whole. EVENTS_TRIM_BYTES exceeds EVENTS_KEEP lines of the longest kind,
 * so the newest EVENTS_KEEP events are always there. Appends and the trim
 * hold an flock on the file, so no append lands in a file being replaced.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/string.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg/keys/keys.h"

#define EVENTS_FILE "pg_cmk/events"
#define EVENTS_KEEP 1000

/* Field limits (bytes); longer values are cut and end in "...". */
#define EVENT_NAME_MAX 64
#define EVENT_KEY_ID_MAX (CMK_KEY_URL_MAX + 200)	/* a key URL, maybe with a version */
#define EVENT_OUTCOME_MAX 64
#define EVENT_DETAIL_MAX 1024
#define CMK_EVENT_MAX_LINE (24 + EVENT_NAME_MAX + EVENT_KEY_ID_MAX + EVENT_OUTCOME_MAX + EVENT_DETAIL_MAX + 5)
#define EVENTS_TRIM_BYTES (4 * 1024 * 1024)

StaticAssertDecl(EVENTS_TRIM_BYTES > EVENTS_KEEP * CMK_EVENT_MAX_LINE,
				 "the trim must never cut into the newest EVENTS_KEEP events");

/*
 * A field as stored: at most max bytes, tabs and newlines turned into
 * spaces, cut at a character boundary and marked "..." when longer.
 */
static char *
bounded(const char *s, int max)
{
	StringInfoData out;

	initStringInfo(&out);
	for (; s && *s; s++)
	{
		if (out.len >= max - 3)
		{
			while (out.len > 0 && (out.data[out.len - 1] & 0xC0) == 0x80)
				out.len--;
			if (out.len > 0 && (out.data[out.len - 1] & 0x80))
				out.len--;
			out.data[out.len] = '\0';
			appendStringInfoString(&out, "...");
			break;
		}
		appendStringInfoChar(&out, (*s == '\t' || *s == '\n' || *s == '\r') ? ' ' : *s);
	}
	return out.data;
}

/*
 * Replaces the file by its newest EVENTS_KEEP whole lines. Called with the
 * file locked; returns false (file unchanged) on any failure, reported to
 * the log only: an event is never worth an ERROR.
 */
static bool
trim_events(const char *path, int fd, off_t size)
{
	char	   *buf;
	char	   *start;
	int			lines = 0;
	bool		ok;

	buf = palloc_extended(size, MCXT_ALLOC_NO_OOM);
	if (buf == NULL)
		return false;
	if (pread(fd, buf, size, 0) != size)
	{
		pfree(buf);
		return false;
	}
	/* From the end, back over EVENTS_KEEP newline-terminated lines. */
	start = buf + size;
	while (start > buf)
	{
		if (start[-1] == '\n' && start != buf + size && ++lines >= EVENTS_KEEP)
			break;
		start--;
	}
	if (start == buf)
	{
		pfree(buf);
		return false;			/* nothing old enough to drop */
	}
	ok = cmk_replace_file(path, start, buf + size - start, LOG);
	pfree(buf);
	if (!ok)
		return false;
	return true;
}

/* Opens the events file for appending, locked, with its size; -1 on failure. */
static int
open_locked(const char *path, off_t *size)
{
	for (int attempt = 0; attempt < 10; attempt++)
	{
		struct stat fst;
		struct stat pst;
		int			fd = open(path, O_RDWR | O_CREAT | O_APPEND | PG_BINARY, 0600);

		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX) != 0 || fstat(fd, &fst) != 0)
		{
			close(fd);
			return -1;
		}
		/* A trim may have replaced the file while we waited for the lock. */
		if (stat(path, &pst) == 0 && pst.st_ino == fst.st_ino && pst.st_dev == fst.st_dev)
		{
			*size = fst.st_size;
			return fd;
		}
		close(fd);
	}
	return -1;
}

void
cmk_event(const char *event, const char *key_id, const char *outcome, const char *detail)
{
	char	   *f_event = bounded(event, EVENT_NAME_MAX);
	char	   *f_key = bounded(key_id, EVENT_KEY_ID_MAX);
	char	   *f_outcome = bounded(outcome, EVENT_OUTCOME_MAX);
	char	   *f_detail = bounded(detail, EVENT_DETAIL_MAX);
	StringInfoData line;
	char		path[MAXPGPATH];
	int			fd;
	off_t		size;

	ereport(LOG,
			(errmsg("cmk: %s: %s%s%s", f_event, f_outcome, f_key[0] ? ", key " : "", f_key),
			 f_detail[0] ? errdetail("%s", f_detail) : 0));

	initStringInfo(&line);
	appendStringInfo(&line, INT64_FORMAT "\t%s\t%s\t%s\t%s\n", (int64) GetCurrentTimestamp(),
					 f_event, f_key, f_outcome, f_detail);
	Assert(line.len <= CMK_EVENT_MAX_LINE);

	snprintf(path, sizeof(path), "%s/%s", DataDir, EVENTS_FILE);
	fd = open_locked(path, &size);
	if (fd >= 0 && size >= EVENTS_TRIM_BYTES && trim_events(path, fd, size))
	{
		close(fd);				/* releases the lock on the replaced file */
		fd = open_locked(path, &size);
	}
	if (fd < 0)
		ereport(LOG, (errmsg("cmk: could not open \"%s\": %m", path)));
	else
	{
		char		last = '\n';
		bool		ok = true;

		/* A line torn by a crash must not swallow this one. */
		if (size > 0 && pread(fd, &last, 1, size - 1) != 1)
			last = '\n';
		if (last != '\n')
			ok = write(fd, "\n", 1) == 1;
		if (!ok || write(fd, line.data, line.len) != line.len || pg_fsync(fd) != 0)
			ereport(LOG, (errmsg("cmk: could not append to \"%s\": %m", path)));
		close(fd);
	}
	pfree(line.data);
	pfree(f_event);
	pfree(f_key);
	pfree(f_outcome);
	pfree(f_detail);
}

PG_FUNCTION_INFO_V1(cmk_events);

Datum
cmk_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		path[MAXPGPATH];
	FILE	   *f;
	StringInfoData buf;

	InitMaterializedSRF(fcinfo, 0);
	snprintf(path, sizeof(path), "%s/%s", DataDir, EVENTS_FILE);
	f = AllocateFile(path, "r");
	if (f == NULL)
	{
		if (errno == ENOENT)
			return (Datum) 0;
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not open \"%s\": %m", path)));
	}
	initStringInfo(&buf);
	/* Lines of any length: none is dropped for being long. */
	while (pg_get_line_buf(f, &buf))
	{
		char	   *fields[5];
		char	   *p = buf.data;
		Datum		values[5];
		bool		nulls[5] = {0};
		int			n = 0;

		buf.data[strcspn(buf.data, "\n")] = '\0';
		while (n < 5)
		{
			fields[n++] = p;
			p = strchr(p, '\t');
			if (p == NULL)
				break;
			*p++ = '\0';
		}
		if (n < 5)
			continue;			/* a torn line */
		values[0] = TimestampTzGetDatum((TimestampTz) strtoll(fields[0], NULL, 10));
		for (int i = 1; i < 5; i++)
		{
			nulls[i] = fields[i][0] == '\0';
			values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(fields[i]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	FreeFile(f);
	pfree(buf.data);
	return (Datum) 0;
}
