/* cmk--0.1.sql: the SQL interface of cmk */

\echo Use "CREATE EXTENSION cmk" to load this file. \quit

CREATE FUNCTION cmk_status(
    OUT provider text,
    OUT key_url text,
    OUT kek text,
    OUT kek_version text,
    OUT key_generation integer,
    OUT wrap_algorithm text,
    OUT key_created_at timestamptz,
    OUT state text,
    OUT last_check_result text,
    OUT last_check timestamptz,
    OUT last_success timestamptz,
    OUT last_error text,
    OUT inaccessible_reason text,
    OUT worker_pid integer)
RETURNS record
AS 'MODULE_PATHNAME', 'cmk_status'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW cmk_status AS SELECT * FROM cmk_status();

CREATE FUNCTION cmk_relation_pages(
    relation regclass,
    OUT fork text,
    OUT encrypted_pages bigint,
    OUT plaintext_pages bigint,
    OUT new_pages bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'cmk_relation_pages'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE FUNCTION cmk_events(
    OUT event_time timestamptz,
    OUT event text,
    OUT key_id text,
    OUT outcome text,
    OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'cmk_events'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW cmk_events AS SELECT * FROM cmk_events();

CREATE FUNCTION cmk_rotate_key(key_url text)
RETURNS text
AS 'MODULE_PATHNAME', 'cmk_rotate_key'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cmk_rotate_dek()
RETURNS integer
AS 'MODULE_PATHNAME', 'cmk_rotate_dek'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cmk_retire_generation(generation integer)
RETURNS void
AS 'MODULE_PATHNAME', 'cmk_retire_generation'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cmk_sweep_progress(
    OUT state text,
    OUT target_generation integer,
    OUT databases_done integer,
    OUT databases_total integer,
    OUT relations_done bigint,
    OUT relations_total bigint,
    OUT pages_scanned bigint,
    OUT pages_rewritten bigint,
    OUT current_relation text,
    OUT started_at timestamptz,
    OUT finished_at timestamptz,
    OUT pages_scanned_per_second double precision,
    OUT pages_rewritten_per_second double precision,
    OUT estimated_seconds_left double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'cmk_sweep_progress'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW cmk_sweep_progress AS SELECT * FROM cmk_sweep_progress();

-- The key administrator's role: may rotate the KEK and read the status and
-- events, nothing else (no table access). Roles are cluster-wide: created
-- once, kept if the extension is dropped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cmk_key_admin') THEN
        CREATE ROLE cmk_key_admin NOLOGIN;
    END IF;
END
$$;

-- Everything reveals or changes how data is protected: only superusers and those granted.
REVOKE ALL ON FUNCTION cmk_status() FROM PUBLIC;
REVOKE ALL ON cmk_status FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_relation_pages(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_events() FROM PUBLIC;
REVOKE ALL ON cmk_events FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_rotate_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_rotate_dek() FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_retire_generation(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_sweep_progress() FROM PUBLIC;
REVOKE ALL ON cmk_sweep_progress FROM PUBLIC;
GRANT SELECT ON cmk_sweep_progress TO pg_monitor, cmk_key_admin;
GRANT EXECUTE ON FUNCTION cmk_sweep_progress() TO pg_monitor, cmk_key_admin;
GRANT EXECUTE ON FUNCTION cmk_rotate_dek(), cmk_retire_generation(integer) TO cmk_key_admin;
GRANT SELECT ON cmk_status, cmk_events TO pg_monitor, cmk_key_admin;
GRANT EXECUTE ON FUNCTION cmk_status(), cmk_events() TO pg_monitor, cmk_key_admin;
GRANT EXECUTE ON FUNCTION cmk_rotate_key(text) TO cmk_key_admin;
GRANT ALTER SYSTEM ON PARAMETER cmk.key_url TO cmk_key_admin;

-- cmk_verify(): what is encrypted in this server's data directory, per file
-- (pg_cmk verify's report; src/pg/sql/verify.c). Files are read as stored:
-- run CHECKPOINT first, pages still only in shared buffers are not on disk.
CREATE FUNCTION cmk_verify(
    OUT file_class text,
    OUT relation text,
    OUT encrypted bigint,
    OUT plaintext bigint,
    OUT empty bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'cmk_verify'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
REVOKE EXECUTE ON FUNCTION cmk_verify() FROM PUBLIC;
