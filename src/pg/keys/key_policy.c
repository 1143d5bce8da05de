/*
 * The server owner's key policy (DESIGN.md "Key URL policy"). Which keys may
 * wrap the keyring is cmk.allowed_key_urls, and whether a Key Vault key
 * without purge protection is accepted is cmk.require_purge_protection.
 * Both are set in postgresql.conf (or a file it includes) by whoever owns
 * the server's files, never from inside the database: a value that comes
 * from postgresql.auto.conf (ALTER SYSTEM) stops the start, and ALTER SYSTEM
 * SET of them is refused, for superusers too. ALTER SYSTEM SET cmk.key_url
 * must name a key the policy allows.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "pg/keys/keys.h"

/* Settings only postgresql.conf may set. */
static const char *const owner_only_settings[] = {"cmk.allowed_key_urls", "cmk.require_purge_protection", NULL};

static ProcessUtility_hook_type prev_process_utility = NULL;

static bool
owner_only(const char *name)
{
	for (int i = 0; owner_only_settings[i]; i++)
		if (pg_strcasecmp(name, owner_only_settings[i]) == 0)
			return true;
	return false;
}

/* In the postmaster, after the configuration files are read. */
void
cmk_key_policy_check_sources(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		const char *file = vars[i]->sourcefile;
		const char *base;

		if (!owner_only(vars[i]->name) || vars[i]->source != PGC_S_FILE || file == NULL)
			continue;
		base = strrchr(file, '/');
		base = base ? base + 1 : file;
		if (strcmp(base, PG_AUTOCONF_FILENAME) == 0)
			ereport(FATAL,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cmk: %s is set in \"%s\" (line %d), which ALTER SYSTEM writes", vars[i]->name, file,
							vars[i]->sourceline),
					 errdetail("Only the server's owner sets %s, in postgresql.conf or a file it includes.", vars[i]->name),
					 errhint("Remove the line from %s and set %s in postgresql.conf.", PG_AUTOCONF_FILENAME,
							 vars[i]->name)));
	}
}

/* ERROR (and a "refused" event) unless the policy allows key_url. */
void
cmk_require_key_url_allowed(const char *key_url, const char *what)
{
	cmk_error	err;

	if (cmk_core_check_key_allowed(cmk_allowed_key_urls, cmk_keys->kek_base, key_url, &err) == 0)
		return;
	cmk_event(what, key_url, "refused", err.message);
	cmk_report_core_error(ERROR, err.kind == CMK_ERR_CONFIG ? ERRCODE_INSUFFICIENT_PRIVILEGE : ERRCODE_INVALID_PARAMETER_VALUE,
						  NULL, &err);
}

static const char *
string_value(VariableSetStmt *set)
{
	A_Const    *c;

	if (list_length(set->args) != 1 || !IsA(linitial(set->args), A_Const))
		return NULL;
	c = (A_Const *) linitial(set->args);
	return (!c->isnull && IsA(&c->val, String)) ? strVal(&c->val) : NULL;
}

static void
check_alter_system(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, AlterSystemStmt))
	{
		VariableSetStmt *set = ((AlterSystemStmt *) pstmt->utilityStmt)->setstmt;

		/* RESET and SET ... TO DEFAULT only remove a line: always allowed. */
		if (set->kind == VAR_SET_VALUE && set->name && owner_only(set->name))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cmk: %s cannot be set with ALTER SYSTEM", set->name),
					 errdetail("Only the server's owner sets %s, in postgresql.conf or a file it includes; a value in %s stops the server from starting.",
							   set->name, PG_AUTOCONF_FILENAME)));
		if (set->kind == VAR_SET_VALUE && set->name && pg_strcasecmp(set->name, "cmk.key_url") == 0 &&
			cmk_keys != NULL && string_value(set) != NULL)
		{
			cmk_error	err;

			if (cmk_core_check_key_url(string_value(set), &err) == 0)
				cmk_require_key_url_allowed(string_value(set), "key_url_change");
		}
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
cmk_key_policy_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = check_alter_system;
}
