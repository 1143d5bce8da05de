/*
 * Azure credentials out of the server's environment. Debian's service, a
 * systemd unit or a container hand them to the postmaster as environment
 * variables (AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PASSWORD,
 * IDENTITY_HEADER and the non-secret AZURE_*), which every child inherits:
 * backends, and through them archive_command, restore_command and COPY ...
 * PROGRAM. So the postmaster, in _PG_init before any child is forked, copies
 * the variables the credentials read into the locked, no-dump key segment
 * (which children inherit), wipes the secret ones' values where they were
 * and removes them from the environment. The core gets that copy
 * explicitly (cmk_provider_settings.environment) and never calls getenv.
 *
 * Where a secret was: PostgreSQL's postmaster moved environ to strings of
 * its own (save_ps_display_args) and left the kernel's original strings at
 * the top of the stack, which /proc/<pid>/environ shows and every child
 * inherits until it sets its process title: both are wiped.
 */
#include "postgres.h"

#include <unistd.h>

#include "pg/keys/keys.h"

extern char **environ;

static const char *credentials_block = NULL;

/* Zeroes NAME=value wherever it starts a string in [from, to). */
static void
wipe_in_area(char *from, char *to, const char *name)
{
	size_t		n = strlen(name);

	for (char *p = from; p + n < to; p++)
	{
		if ((p == from || p[-1] == '\0') && strncmp(p, name, n) == 0 && p[n] == '=')
		{
			while (p < to && *p)
				*p++ = '\0';
		}
	}
}

/* The kernel's copy of the initial environment: env_start and env_end of
 * /proc/self/stat (fields 50 and 51, Linux 3.5 and later). */
static bool
initial_environment_area(char **from, char **to)
{
	FILE	   *f = fopen("/proc/self/stat", "r");
	char		buf[2048];
	size_t		n;
	char	   *p;
	unsigned long long start = 0,
				end = 0;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which is in parentheses. */
	p = strrchr(buf, ')');
	if (p == NULL)
		return false;
	p += 2;
	for (int field = 3; field < 50 && p; field++)
	{
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p == NULL || sscanf(p, "%llu %llu", &start, &end) != 2 || start == 0 || end <= start)
		return false;
	*from = (char *) (uintptr_t) start;
	*to = (char *) (uintptr_t) end;
	return true;
}

/*
 * Postmaster only, before any child is forked: copies the credentials'
 * variables into block (size bytes, locked and shared), removes the
 * secret ones from the environment.
 */
void
cmk_credentials_capture(char *block, size_t size)
{
	char	   *secrets[32];
	int			n_secrets = 0;
	size_t		used = 0;
	char	   *area_from,
			   *area_to;

	for (char **e = environ; e && *e; e++)
	{
		char	   *eq = strchr(*e, '=');
		char		name[128];
		size_t		len = strlen(*e);
		int			kind;

		if (eq == NULL || eq - *e >= (ptrdiff_t) sizeof(name))
			continue;
		memcpy(name, *e, eq - *e);
		name[eq - *e] = '\0';
		kind = cmk_core_credential_variable(name);
		if (kind == 0)
			continue;
		if (used + len + 2 > size)
			ereport(FATAL,
					(errmsg("cmk: the Azure credentials in the server's environment are longer than %zu bytes", size)));
		memcpy(block + used, *e, len + 1);
		used += len + 1;
		if (kind == 2 && n_secrets < lengthof(secrets))
			secrets[n_secrets++] = *e;
	}
	block[used] = '\0';

	for (int i = 0; i < n_secrets; i++)
	{
		char	   *eq = strchr(secrets[i], '=');
		char		name[128];

		memcpy(name, secrets[i], eq - secrets[i]);
		name[eq - secrets[i]] = '\0';
		cmk_core_wipe(eq + 1, strlen(eq + 1));
		if (unsetenv(name) != 0)
			ereport(FATAL, (errmsg("cmk: could not remove %s from the server's environment: %m", name)));
		if (initial_environment_area(&area_from, &area_to))
			wipe_in_area(area_from, area_to, name);
	}
	credentials_block = block;
}

/* The postmaster's copy (inherited by every child), for the core. */
const char *
cmk_credentials(void)
{
	return credentials_block;
}
