# PostgreSQL copies relation files byte for byte (CREATE DATABASE FILE_COPY,
# ALTER DATABASE SET TABLESPACE) or rewrites them (WAL_LOG, SET TABLESPACE,
# VACUUM FULL, CLUSTER, REINDEX CONCURRENTLY): every copy stays readable and
# encrypted, because the tweak holds neither database, tablespace nor fork.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYcopy';
my $node = cmk_node('copies', checksums => 1);
$node->start;
my $ts_dir = $node->basedir . '/ts1';
mkdir $ts_dir or die;

$node->safe_psql('postgres', "CREATE TABLESPACE ts1 LOCATION '$ts_dir'");
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', <<"EOS");
CREATE EXTENSION cmk;
CREATE EXTENSION amcheck;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, '${canary}_' || g FROM generate_series(1, 5000) g;
CREATE INDEX t_v ON t (v);
EOS
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
my $expected = $node->safe_psql('src', $digest_q);
$node->safe_psql('postgres', 'CHECKPOINT');

$node->safe_psql('postgres', 'CREATE DATABASE copy_fc TEMPLATE src STRATEGY FILE_COPY');
$node->safe_psql('postgres', 'CREATE DATABASE copy_wal TEMPLATE src STRATEGY WAL_LOG');
is($node->safe_psql('copy_fc', $digest_q), $expected, 'CREATE DATABASE STRATEGY FILE_COPY: rows readable');
is($node->safe_psql('copy_wal', $digest_q), $expected, 'CREATE DATABASE STRATEGY WAL_LOG: rows readable');

$node->safe_psql('copy_fc', 'ALTER TABLE t SET TABLESPACE ts1; ALTER INDEX t_v SET TABLESPACE ts1');
is($node->safe_psql('copy_fc', $digest_q), $expected, 'ALTER TABLE/INDEX SET TABLESPACE: rows readable');
$node->safe_psql('postgres', 'ALTER DATABASE copy_wal SET TABLESPACE ts1');
is($node->safe_psql('copy_wal', $digest_q), $expected, 'ALTER DATABASE SET TABLESPACE: rows readable');

$node->safe_psql('src', 'VACUUM FULL t');
is($node->safe_psql('src', $digest_q), $expected, 'VACUUM FULL: rows readable');
$node->safe_psql('src', 'CLUSTER t USING t_v');
is($node->safe_psql('src', $digest_q), $expected, 'CLUSTER: rows readable');
$node->safe_psql('src', 'REINDEX INDEX CONCURRENTLY t_v');
is($node->safe_psql('src', "SET enable_seqscan = off; SELECT count(*) FROM t WHERE v = '${canary}_77'"), '1',
	'REINDEX CONCURRENTLY: index usable');

$node->restart;
for my $db (qw(src copy_fc copy_wal))
{
	is($node->safe_psql($db, $digest_q), $expected, "$db: rows readable after restart");
	is($node->safe_psql($db, "SELECT count(*) FROM verify_heapam('t')"), '0', "$db: verify_heapam clean");
	$node->safe_psql($db, "SELECT bt_index_check('t_v', true)");
	for my $rel (qw(t t_v))
	{
		is($node->safe_psql($db, "SELECT sum(encrypted_pages) > 0, sum(plaintext_pages) FROM cmk_relation_pages('$rel')"),
			't|0', "$db: $rel encrypted on disk");
	}
}
$node->stop;
my @hits = files_containing($canary, map { $node->data_dir . "/$_" } qw(base global));
push @hits, files_containing($canary, $ts_dir);
is_deeply(\@hits, [], 'canary absent from base/, global/ and the tablespace');
command_ok([ 'pg_checksums', '--check', '-D', $node->data_dir ], 'pg_checksums --check passes');

done_testing();
