/*
 * cmk_status(): what the server encrypts with, for cmk_status view.
 * No key material: the key identifier, generation and state only.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg/cmk.h"

PG_FUNCTION_INFO_V1(cmk_status);

Datum
cmk_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {0};
	char		kek[sizeof(cmk_keys->kek_base) + sizeof(cmk_keys->kek_version) + 2];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (strncmp(cmk_keys->kek_base, "file:", 5) == 0)
		snprintf(kek, sizeof(kek), "%s", cmk_keys->kek_base);
	else
		snprintf(kek, sizeof(kek), "%s/%s", cmk_keys->kek_base, cmk_keys->kek_version);

	values[0] = CStringGetTextDatum(cmk_keys->provider);
	values[1] = CStringGetTextDatum(cmk_key_url);
	values[2] = CStringGetTextDatum(kek);
	values[3] = CStringGetTextDatum(cmk_keys->kek_version);
	values[4] = Int32GetDatum((int32) cmk_keys->current_generation);
	values[5] = CStringGetTextDatum(cmk_keys->wrap_algorithm);
	values[6] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) cmk_keys->created_at));
	values[7] = CStringGetTextDatum("active");

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
