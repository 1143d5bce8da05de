/*
 * The core reports through plain structs (cmk_error, cmk_messages: see
 * core/capi.h), never by throwing into PostgreSQL. Turning them into
 * ereport is the same everywhere, so it lives here once: the message with
 * "cmk: " in front, the detail and hint when the core gave them.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "pg/common/common.h"

int
cmk_core_error_sqlstate(const cmk_error *err)
{
	switch (err->kind)
	{
		case CMK_ERR_CONFIG:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case CMK_ERR_KEYRING_CORRUPT:
			return ERRCODE_DATA_CORRUPTED;
		case CMK_ERR_IO:
			return ERRCODE_IO_ERROR;
		default:
			return ERRCODE_INTERNAL_ERROR;
	}
}

void
cmk_report_core_error(int elevel, int sqlerrcode, const char *what, const cmk_error *err)
{
	ereport(elevel,
			(sqlerrcode != 0 ? errcode(sqlerrcode) : 0,
			 what ? errmsg("cmk: %s: %s", what, err->message) : errmsg("cmk: %s", err->message),
			 err->detail[0] ? errdetail("%s", err->detail) : 0,
			 err->hint[0] ? errhint("%s", err->hint) : 0));
}

void
cmk_log_core_lines(int elevel, const char *lines)
{
	const char *line = lines;

	while (line != NULL && *line != '\0')
	{
		const char *end = strchr(line, '\n');
		int			len = end ? (int) (end - line) : (int) strlen(line);

		if (len > 0)
		{
			if (strncmp(line, "cmk: ", 5) == 0)
			{
				line += 5;
				len -= 5;
			}
			ereport(elevel, (errmsg("cmk: %.*s", len, line)));
		}
		line = end ? end + 1 : NULL;
	}
}

bool
cmk_guc_check_refuse(const cmk_error *err)
{
	GUC_check_errmsg("%s", err->message);
	if (err->detail[0])
		GUC_check_errdetail("%s", err->detail);
	if (err->hint[0])
		GUC_check_errhint("%s", err->hint);
	return false;
}
