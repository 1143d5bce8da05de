/*
 * Key events (start-up unwrap, check failures, rotations, state changes):
 * one tab-separated line each in $PGDATA/pg_cmk/events (time as TimestampTz,
 * event, key id, outcome, detail), kept across restarts, read by the
 * cmk_events view; each is also written to the server log. Never key
 * material. The file is cut to its newer half when it passes 1 MB.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg/lifecycle.h"

#define EVENTS_FILE "pg_cmk/events"
#define EVENTS_MAX_BYTES (1024 * 1024)

static void
append_field(StringInfo line, const char *s, bool last)
{
	for (; s && *s; s++)
		appendStringInfoChar(line, (*s == '\t' || *s == '\n' || *s == '\r') ? ' ' : *s);
	appendStringInfoChar(line, last ? '\n' : '\t');
}

static void
trim_if_large(const char *path)
{
	struct stat st;
	char		tmp[MAXPGPATH];
	int			in,
				out;
	char	   *buf;
	ssize_t		n;
	char	   *start;

	if (stat(path, &st) != 0 || st.st_size < EVENTS_MAX_BYTES)
		return;
	in = open(path, O_RDONLY);
	if (in < 0)
		return;
	buf = palloc(st.st_size);
	n = read(in, buf, st.st_size);
	close(in);
	if (n <= 0)
		return;
	start = memchr(buf + n / 2, '\n', n - n / 2);
	if (start == NULL)
		return;
	start++;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		return;
	if (write(out, start, buf + n - start) == buf + n - start && fsync(out) == 0)
		rename(tmp, path);
	close(out);
	pfree(buf);
}

void
cmk_event(const char *event, const char *key_id, const char *outcome, const char *detail)
{
	StringInfoData line;
	char		path[MAXPGPATH];
	int			fd;

	ereport(LOG,
			(errmsg("cmk: %s: %s%s%s", event, outcome,
					key_id && *key_id ? ", key " : "", key_id ? key_id : ""),
			 detail && *detail ? errdetail("%s", detail) : 0));

	initStringInfo(&line);
	appendStringInfo(&line, INT64_FORMAT "\t", (int64) GetCurrentTimestamp());
	append_field(&line, event, false);
	append_field(&line, key_id, false);
	append_field(&line, outcome, false);
	append_field(&line, detail, true);

	snprintf(path, sizeof(path), "%s/%s", DataDir, EVENTS_FILE);
	trim_if_large(path);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0)
	{
		if (write(fd, line.data, line.len) != line.len)
			ereport(LOG, (errmsg("cmk: could not append to \"%s\": %m", path)));
		close(fd);
	}
	else
		ereport(LOG, (errmsg("cmk: could not open \"%s\": %m", path)));
	pfree(line.data);
}

PG_FUNCTION_INFO_V1(cmk_events);

Datum
cmk_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		path[MAXPGPATH];
	FILE	   *f;
	char		buf[4096];

	InitMaterializedSRF(fcinfo, 0);
	snprintf(path, sizeof(path), "%s/%s", DataDir, EVENTS_FILE);
	f = AllocateFile(path, "r");
	if (f == NULL)
	{
		if (errno == ENOENT)
			return (Datum) 0;
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not open \"%s\": %m", path)));
	}
	while (fgets(buf, sizeof(buf), f) != NULL)
	{
		char	   *fields[5];
		char	   *p = buf;
		Datum		values[5];
		bool		nulls[5] = {0};
		int			n = 0;

		buf[strcspn(buf, "\n")] = '\0';
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
	return (Datum) 0;
}
