/*
 * cmk_rotate_key(key_url): points the server at another KEK (a new version
 * of the same key, or another key or vault): every generation is re-wrapped
 * by the new key and checked by unwrapping again, the keyring is replaced
 * atomically (through WAL, so standbys follow), and cmk.key_url is set with
 * ALTER SYSTEM so that configuration and keyring agree. Superusers and
 * members of cmk_key_admin may call it (EXECUTE is granted to that role).
 *
 * Every check comes before the keyring changes, in this order: a top-level
 * statement of its own (top_level.c); the right to ALTER SYSTEM SET
 * cmk.key_url; a well-formed key URL of at most 2048 bytes; the server
 * owner's policy (key_policy.c; nothing read or requested before); then, in
 * the core, possession of the current key (it unwraps every generation),
 * the new key's vault safety, and wrap plus verifying unwrap.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "pg/sql/sql.h"

PG_FUNCTION_INFO_V1(cmk_rotate_key);

Datum
cmk_rotate_key(PG_FUNCTION_ARGS)
{
	text	   *arg = PG_GETARG_TEXT_PP(0);
	char	   *url;
	cmk_error	err;
	AlterSystemStmt *stmt;
	VariableSetStmt *set;
	A_Const    *value;
	char		id[CMK_KEK_ID_MAX];

	cmk_require_top_level("cmk_rotate_key()");

	/* The same right ALTER SYSTEM SET cmk.key_url needs, checked first. */
	if (!superuser() && pg_parameter_aclcheck("cmk.key_url", GetUserId(), ACL_ALTER_SYSTEM) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cmk: permission denied to set parameter \"cmk.key_url\""),
				 errdetail("cmk_rotate_key() sets cmk.key_url with ALTER SYSTEM; the keyring was not changed."),
				 errhint("Membership in cmk_key_admin grants it (GRANT ALTER SYSTEM ON PARAMETER cmk.key_url).")));

	if (VARSIZE_ANY_EXHDR(arg) > CMK_KEY_URL_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cmk: the key URL is longer than %d bytes", CMK_KEY_URL_MAX)));
	url = text_to_cstring(arg);
	if (cmk_core_check_key_url(url, &err) != 0)
		cmk_report_core_error(ERROR, ERRCODE_INVALID_PARAMETER_VALUE, NULL, &err);
	cmk_require_key_url_allowed(url, "kek_rotation");

	cmk_replace_keyring(url);

	/* Configuration follows the keyring: ALTER SYSTEM SET cmk.key_url. */
	value = makeNode(A_Const);
	value->val.sval.type = T_String;
	value->val.sval.sval = url;
	value->location = -1;
	set = makeNode(VariableSetStmt);
	set->kind = VAR_SET_VALUE;
	set->name = "cmk.key_url";
	set->args = list_make1(value);
	stmt = makeNode(AlterSystemStmt);
	stmt->setstmt = set;
	AlterSystemSetConfigFile(stmt);

	cmk_kek_id(id, sizeof(id));
	PG_RETURN_TEXT_P(cstring_to_text(id));
}
