# WAL is encrypted: committed rows that only WAL holds (no checkpoint) are
# not in any file, an immediate stop replays them, and a cluster that ran
# without cmk first (plaintext WAL) recovers once cmk is on (mixed WAL).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $quiet = "checkpoint_timeout = 1h\nmax_wal_size = 4GB\nautovacuum = off\n";

# Control: without cmk the same rows are in the WAL in plaintext.
my $plain = plain_node('plain', conf => $quiet);
$plain->start;
$plain->safe_psql('postgres', "CREATE TABLE t (id int PRIMARY KEY, v text); CHECKPOINT;");
$plain->safe_psql('postgres', "INSERT INTO t SELECT g, 'cmkCANARYwal_' || g FROM generate_series(1, 5000) g");
ok(scalar(files_containing('cmkCANARYwal', $plain->data_dir . '/pg_wal')) > 0, 'control: plaintext WAL holds the canary');
$plain->stop('immediate');

my $node = cmk_node('wal', conf => $quiet);
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text); CHECKPOINT;");
$node->safe_psql('postgres', "INSERT INTO t SELECT g, 'cmkCANARYwal_' || g FROM generate_series(1, 5000) g");
$node->safe_psql('postgres', "UPDATE t SET v = v || '_updated' WHERE id % 2 = 0; DELETE FROM t WHERE id % 10 = 0;");
my $expected = $node->safe_psql('postgres', "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t");
is_deeply([ files_containing('cmkCANARYwal', $node->data_dir) ], [],
	'committed rows only in WAL: canary absent from every file of the data directory');
$node->stop('immediate');
is_deeply([ files_containing('cmkCANARYwal', $node->data_dir) ], [], 'and after an immediate stop');
$node->start;
is($node->safe_psql('postgres', "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t"), $expected,
	'crash recovery replays the encrypted WAL: every row, updates and deletes');

# Segments switched, recycled and written by many transactions.
$node->safe_psql('postgres', "SELECT pg_switch_wal()");
for my $i (1 .. 5)
{
	$node->safe_psql('postgres', "INSERT INTO t SELECT g, 'cmkCANARYwal_b$i' FROM generate_series(10000 * $i, 10000 * $i + 999) g");
}
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE 'cmkCANARYwal_b%'"), '5000', 'rows across segment switches replayed');
$node->stop;
is_deeply([ files_containing('cmkCANARYwal', $node->data_dir) ], [], 'canary absent after a clean stop');

# Mixed WAL: plaintext WAL from before cmk, encrypted WAL after.
my $mixed = plain_node('mixed', conf => $quiet);
$mixed->start;
$mixed->safe_psql('postgres', "CREATE TABLE t (id int PRIMARY KEY, v text); CHECKPOINT;");
$mixed->safe_psql('postgres', "INSERT INTO t SELECT g, 'before_cmk_' || g FROM generate_series(1, 3000) g");
$mixed->stop('immediate');    # those rows must be replayed from plaintext WAL
my $kek = $mixed->basedir . '/kek.pem';
make_kek($kek);
$mixed->append_conf('postgresql.conf', "shared_preload_libraries = 'cmk'\ncmk.key_url = 'file:$kek'\n");
$mixed->start;
is($mixed->safe_psql('postgres', 'SELECT count(*) FROM t'), '3000', 'cmk replays WAL written before it was loaded');
$mixed->safe_psql('postgres', "INSERT INTO t SELECT g, 'cmkCANARYmixed_' || g FROM generate_series(3001, 6000) g");
$mixed->stop('immediate');    # the same segment now holds plaintext and encrypted pages
$mixed->start;
is($mixed->safe_psql('postgres', 'SELECT count(*) FROM t'), '6000', 'mixed plaintext and encrypted WAL replays');
$mixed->stop;
is_deeply([ files_containing('cmkCANARYmixed', $mixed->data_dir) ], [], 'WAL written under cmk holds no canary');
ok(scalar(files_containing('before_cmk_', $mixed->data_dir . '/pg_wal')) > 0,
	'WAL from before cmk stays plaintext until recycled (documented)');

done_testing();
