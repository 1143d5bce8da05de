# A while of pgbench (tpcb-like) together with canary inserts, updates and
# deletes, with checkpoints, spills and an immediate stop in the middle;
# afterwards no file of the data directory holds a stored canary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $node = cmk_node('soak', checksums => 1,
	conf => "shared_buffers = 16MB\ncheckpoint_timeout = 30s\nmax_wal_size = 64MB\nwork_mem = 64kB\n");
$node->start;
$node->safe_psql('postgres', <<'EOS');
CREATE EXTENSION cmk;
CREATE TABLE canary (id int PRIMARY KEY, v text, n int DEFAULT 0);
CREATE INDEX ON canary (v);
EOS
$node->command_ok([ 'pgbench', '-i', '-s', '5', '-q', $node->connstr('postgres') ], 'pgbench -i');

my $script = $node->basedir . '/canary.sql';
open(my $fh, '>', $script) or die;
print $fh <<'EOS';
\set id random(1, 20000)
INSERT INTO canary VALUES (:id, 'cmkCANARYsoak_' || :id) ON CONFLICT (id) DO UPDATE SET n = canary.n + 1, v = 'cmkCANARYsoak_upd_' || :id;
DELETE FROM canary WHERE id = :id + 1;
SELECT count(*) FROM (SELECT v FROM canary ORDER BY v DESC LIMIT 5000) s;
EOS
close $fh;

for my $round (1 .. 2)
{
	$node->command_ok(
		[ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', '15', '-b', 'tpcb-like@3', '-f', "$script\@1", $node->connstr('postgres') ],
		"round $round: pgbench tpcb-like with canary inserts, updates and deletes");
	$node->stop('immediate') if $round == 1;    # crash in the middle
	$node->start if $round == 1;
}
my $rows = $node->safe_psql('postgres', "SELECT count(*) FROM canary WHERE v LIKE 'cmkCANARYsoak%'");
cmp_ok($rows, '>', 100, "canary rows stored: $rows");
is($node->safe_psql('postgres', 'SELECT sum(abalance) = (SELECT sum(delta) FROM pgbench_history) FROM pgbench_accounts'), 't',
	'pgbench balances are consistent after the crash');
$node->safe_psql('postgres', "CREATE EXTENSION amcheck; SELECT bt_index_check('canary_v_idx', true)");
is($node->safe_psql('postgres', "SELECT count(*) FROM verify_heapam('canary')"), '0', 'amcheck finds nothing');
$node->stop;

is_deeply([ files_containing('cmkCANARYsoak', $node->data_dir) ], [], 'no file of the data directory holds a stored canary');
command_ok([ 'pg_checksums', '--check', '-D', $node->data_dir ], 'pg_checksums --check passes');

done_testing();
