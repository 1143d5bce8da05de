/*
 * cmk_status(): what the server encrypts with, for cmk_status view.
 * No key material: the key identifier, generation and state only.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg/sql/sql.h"

PG_FUNCTION_INFO_V1(cmk_status);

Datum
cmk_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[14];
	bool		nulls[14] = {0};
	char		kek[CMK_KEK_ID_MAX];
	cmk_shared_status st;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	cmk_shared_status_read(&st);
	cmk_kek_id(kek, sizeof(kek));

	values[0] = CStringGetTextDatum(cmk_keys->provider);
	values[1] = CStringGetTextDatum(cmk_key_url);
	values[2] = CStringGetTextDatum(kek);
	values[3] = CStringGetTextDatum(cmk_keys->kek_version);
	values[4] = Int32GetDatum((int32) cmk_keys->current_generation);
	values[5] = CStringGetTextDatum(cmk_keys->wrap_algorithm);
	values[6] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) cmk_keys->created_at));
	values[7] = CStringGetTextDatum(st.access_state == CMK_ACCESS_INACCESSIBLE ? "inaccessible" : "active");
	values[8] = CStringGetTextDatum(st.last_result);
	nulls[9] = st.last_check == 0;
	values[9] = TimestampTzGetDatum(st.last_check);
	nulls[10] = st.last_success == 0;
	values[10] = TimestampTzGetDatum(st.last_success);
	nulls[11] = st.last_error[0] == '\0';
	values[11] = nulls[11] ? (Datum) 0 : CStringGetTextDatum(st.last_error);
	nulls[12] = st.reason[0] == '\0';
	values[12] = nulls[12] ? (Datum) 0 : CStringGetTextDatum(st.reason);
	nulls[13] = st.worker_pid == 0;
	values[13] = Int32GetDatum(st.worker_pid);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
