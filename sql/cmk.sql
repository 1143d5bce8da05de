-- SQL interface of cmk (the server runs with cmk preloaded and a file: KEK)
CREATE EXTENSION cmk;

-- What the server encrypts with; no key material anywhere.
SELECT provider, kek LIKE 'file:%/kek.pem' AS file_kek, length(kek_version) AS fingerprint_length,
       key_generation, wrap_algorithm, state, key_created_at <= now() AS created_in_past
FROM cmk_status;

-- Pages of a relation as stored on disk.
CREATE TABLE cmk_t (id int PRIMARY KEY, v text);
INSERT INTO cmk_t SELECT g, 'row ' || g FROM generate_series(1, 2000) g;
CHECKPOINT;
SELECT fork, encrypted_pages > 0 AS encrypted, plaintext_pages, new_pages
FROM cmk_relation_pages('cmk_t') ORDER BY fork;
SELECT fork, encrypted_pages > 0 AS encrypted, plaintext_pages
FROM cmk_relation_pages('cmk_t_pkey') ORDER BY fork;
SELECT count(*) FROM cmk_t;

-- Relations without storage have no pages.
CREATE VIEW cmk_v AS SELECT 1 AS one;
SELECT * FROM cmk_relation_pages('cmk_v');
SELECT * FROM cmk_relation_pages(NULL);

-- Nobody but superusers (and pg_monitor for the status) may look.
CREATE ROLE cmk_nobody;
GRANT SELECT ON cmk_t TO cmk_nobody;
SET ROLE cmk_nobody;
SELECT provider FROM cmk_status;
SELECT * FROM cmk_status();
SELECT * FROM cmk_relation_pages('cmk_t');
RESET ROLE;
GRANT pg_monitor TO cmk_nobody;
SET ROLE cmk_nobody;
SELECT provider, key_generation FROM cmk_status;
SELECT * FROM cmk_relation_pages('cmk_t');
RESET ROLE;

-- Settings: the cmk. prefix is reserved, key settings need a restart.
SHOW cmk.key_wrap_algorithm;
SHOW cmk.auth;
SET cmk.no_such_setting = 1;
SET cmk.key_url = 'file:/other.pem';

DROP VIEW cmk_v;
DROP TABLE cmk_t;
DROP ROLE cmk_nobody;
DROP EXTENSION cmk;
