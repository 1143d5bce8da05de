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
    OUT state text)
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

-- Both reveal how data is protected: only superusers and those granted.
REVOKE ALL ON FUNCTION cmk_status() FROM PUBLIC;
REVOKE ALL ON cmk_status FROM PUBLIC;
REVOKE ALL ON FUNCTION cmk_relation_pages(regclass) FROM PUBLIC;
GRANT SELECT ON cmk_status TO pg_monitor;
GRANT EXECUTE ON FUNCTION cmk_status() TO pg_monitor;
