# Every kind of relation is encrypted on disk, reads back intact, survives a
# crash, and passes amcheck and pg_checksums; with data checksums on and off.
# A plaintext control cluster with the same data proves the scan can fail.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYdata';

# Objects of every storage kind holding the canary.
my $setup = <<"EOS";
CREATE EXTENSION btree_gist;
CREATE TABLE heap_t (id int PRIMARY KEY, v text, arr text[], big text);
ALTER TABLE heap_t ALTER big SET STORAGE EXTERNAL;  -- TOAST, uncompressed
INSERT INTO heap_t SELECT g, '${canary}_' || g, ARRAY['${canary}_gin_' || g],
  repeat('${canary}_toast_', 300) || g FROM generate_series(1, 3000) g;
CREATE INDEX heap_btree ON heap_t (v);
CREATE INDEX heap_hash ON heap_t USING hash (v);
CREATE INDEX heap_gin ON heap_t USING gin (arr);
CREATE INDEX heap_gist ON heap_t USING gist (v);
CREATE INDEX heap_spgist ON heap_t USING spgist (v);
CREATE INDEX heap_brin ON heap_t USING brin (v) WITH (pages_per_range = 1);
CREATE UNLOGGED TABLE unlogged_t AS SELECT id, v FROM heap_t;
CREATE INDEX unlogged_btree ON unlogged_t (v);
CREATE MATERIALIZED VIEW mv AS SELECT id, v || '_mv' AS v FROM heap_t;
EOS

my @objects = qw(heap_t heap_btree heap_hash heap_gin heap_gist heap_spgist
  heap_brin unlogged_t unlogged_btree mv);
# Hash indexes store hash codes only, never the key text.
my %stores_text = map { $_ => 1 } grep { $_ ne 'heap_hash' } @objects;

my $result_query = <<'EOQ';
SELECT count(*), md5(string_agg(v || arr::text || big, ',' ORDER BY id)) FROM heap_t;
EOQ

sub index_queries
{
	my ($node) = @_;
	my %q = (
		heap_btree => "SELECT count(*) FROM heap_t WHERE v = '${canary}_42'",
		heap_hash => "SELECT count(*) FROM heap_t WHERE v = '${canary}_43'",
		heap_gin => "SELECT count(*) FROM heap_t WHERE arr \@> ARRAY['${canary}_gin_44']",
		heap_gist => "SELECT count(*) FROM heap_t WHERE v = '${canary}_45'",
		heap_spgist => "SELECT count(*) FROM heap_t WHERE v = '${canary}_46'",
		heap_brin => "SELECT count(*) FROM heap_t WHERE v = '${canary}_47'",
		unlogged_btree => "SELECT count(*) FROM unlogged_t WHERE v = '${canary}_48'",
	);
	my @heap_indexes = grep { /^heap_/ && $_ ne 'heap_t' } keys %q;
	for my $idx (sort keys %q)
	{
		# Leave the planner no other index: drop the rest, then roll back.
		my $others = join(', ', grep { $_ ne $idx } @heap_indexes);
		my $sql = "BEGIN; DROP INDEX $others; SET LOCAL enable_seqscan = off;";
		my $plan = $node->safe_psql('postgres', "$sql EXPLAIN $q{$idx}; ROLLBACK;");
		like($plan, qr/$idx/, "plan uses $idx");
		is($node->safe_psql('postgres', "$sql $q{$idx}; ROLLBACK;"), '1', "$idx finds its row");
	}
}

# The control: the same data without cmk is in plaintext in these files.
my $plain = plain_node('plain');
$plain->start;
$plain->safe_psql('postgres', $setup);
my %plain_path = map { $_ => $plain->safe_psql('postgres', "SELECT pg_relation_filepath('$_')") } @objects;
my $expected = $plain->safe_psql('postgres', $result_query);
$plain->stop;
my %plain_hits = map { $_ => 1 } files_containing($canary, $plain->data_dir . '/base');
for my $obj (grep { $stores_text{$_} } @objects)
{
	ok($plain_hits{ $plain->data_dir . "/$plain_path{$obj}" }, "control: $obj holds the canary in plaintext without cmk");
}

for my $checksums (0, 1)
{
	my $tag = $checksums ? 'checksums on' : 'checksums off';
	my $node = cmk_node("cmk_cs$checksums", checksums => $checksums, conf => "temp_buffers = 100\n");
	$node->start;
	ok($node->log_contains(qr/cmk: AES-256-XTS by libgcrypt/),
		"$tag: the server runs the cipher with libgcrypt's VAES/AVX2 XTS (DESIGN.md)");
	$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE EXTENSION amcheck;');
	$node->safe_psql('postgres', $setup);
	# A clean restart writes every buffer, unlogged ones included.
	$node->restart;

	is($node->safe_psql('postgres', $result_query), $expected, "$tag: every row reads back as written");
	index_queries($node);

	# Temporary tables live in local buffers; with temp_buffers at its minimum
	# they spill to the relation file, which exists only in this session.
	my $temp_check = $node->safe_psql('postgres', <<"EOS");
CREATE TEMP TABLE temp_t AS SELECT g AS id, '${canary}_temp_' || g AS v FROM generate_series(1, 30000) g;
SELECT (SELECT position('${canary}'::bytea IN pg_read_binary_file(pg_relation_filepath('temp_t')))) || ',' ||
       (SELECT sum(encrypted_pages) > 0 AND sum(plaintext_pages) = 0 FROM cmk_relation_pages('temp_t')) || ',' ||
       (SELECT count(*) FROM temp_t WHERE v LIKE '${canary}%');
EOS
	is($temp_check, '0,true,30000', "$tag: temporary table pages on disk are encrypted and read back");

	# Every page that reached disk is encrypted.
	for my $obj (@objects)
	{
		my $r = $node->safe_psql('postgres',
			"SELECT coalesce(sum(encrypted_pages), 0) > 0, coalesce(sum(plaintext_pages), 0) FROM cmk_relation_pages('$obj') WHERE fork <> 'init'");
		is($r, "t|0", "$tag: $obj has encrypted pages and no plaintext page");
	}
	my $toast = $node->safe_psql('postgres', "SELECT reltoastrelid::regclass FROM pg_class WHERE relname = 'heap_t'");
	is($node->safe_psql('postgres', "SELECT sum(encrypted_pages) > 100, sum(plaintext_pages) FROM cmk_relation_pages('$toast')"),
		"t|0", "$tag: TOAST table is encrypted");

	# amcheck over the heap and every btree index.
	is($node->safe_psql('postgres', "SELECT count(*) FROM verify_heapam('heap_t')"), '0', "$tag: verify_heapam finds nothing");
	is($node->safe_psql('postgres', "SELECT count(*) FROM verify_heapam('$toast')"), '0', "$tag: verify_heapam of TOAST finds nothing");
	$node->safe_psql('postgres', <<'EOS');
SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam
WHERE a.amname = 'btree' AND c.relpersistence <> 't';
EOS
	pass("$tag: bt_index_check with heapallindexed on every btree index");

	# Committed rows survive an immediate stop (crash) and replay.
	$node->safe_psql('postgres', "INSERT INTO heap_t SELECT g, '${canary}_' || g, '{}', 'x' FROM generate_series(3001, 3500) g");
	$node->stop('immediate');
	$node->start;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM heap_t'), '3500', "$tag: every committed row after crash recovery");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM unlogged_t'), '0', "$tag: unlogged table reset from its init fork after the crash");
	$node->safe_psql('postgres', "INSERT INTO unlogged_t SELECT id, v FROM heap_t");
	is($node->safe_psql('postgres', "SET enable_seqscan = off; SELECT count(*) FROM unlogged_t WHERE v = '${canary}_49'"), '1',
		"$tag: unlogged table and index usable after reset");
	$node->stop;

	my @hits = files_containing($canary, $node->data_dir . '/base', $node->data_dir . '/global');
	is_deeply(\@hits, [], "$tag: canary absent from every file under base/ and global/");

	if ($checksums)
	{
		command_ok([ 'pg_checksums', '--check', '-D', $node->data_dir ], 'pg_checksums --check passes on an encrypted cluster');
		# The vectorized checksum cmk writes with is checked against the server's at start.
		unlike(slurp_file($node->logfile), qr/page checksum differs/, 'the vectorized page checksum agrees with the server\'s');
	}
	$node->start;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM heap_t'), '3500', "$tag: rows after clean restart");
	$node->stop;
}

done_testing();
