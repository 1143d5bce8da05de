# Sorts and hash joins that spill to temporary files: the files hold no
# canary while the query runs (sampled mid-query, with a cursor holding the
# spilled sort open), and the results are right, also for a parallel hash
# join whose workers share batch files.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use File::Find;

my $canary = 'cmkCANARYtemp';

# Control: without cmk, the spilled sort's files hold the canary.
my $plain = plain_node('plain', conf => "work_mem = 64kB\nautovacuum = off\n");
$plain->start;
$plain->safe_psql('postgres',
	"CREATE TABLE big AS SELECT g AS id, '${canary}_' || md5(g::text) AS v FROM generate_series(1, 100000) g");
my $pbg = $plain->background_psql('postgres');
$pbg->query_safe('BEGIN; DECLARE s CURSOR FOR SELECT v FROM big ORDER BY v DESC; FETCH 1 FROM s;');
ok(scalar(files_containing($canary, $plain->data_dir . '/base/pgsql_tmp')) > 0,
	'control: without cmk the spilled sort files hold the canary');
$pbg->quit;
$plain->stop;
my $node = cmk_node('temp', conf => "work_mem = 64kB\nmax_parallel_workers_per_gather = 0\nautovacuum = off\n");
$node->start;
my $tmpdir = $node->data_dir . '/base/pgsql_tmp';
$node->safe_psql('postgres', <<"EOS");
CREATE EXTENSION cmk;
CREATE TABLE big AS SELECT g AS id, '${canary}_' || md5(g::text) AS v FROM generate_series(1, 100000) g;
ANALYZE big;
EOS

# Reference results from in-memory execution.
my $sort_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY v DESC)) FROM big";
my $join_q = "SELECT count(*), md5(string_agg(a.v || b.id, ',' ORDER BY a.id)) FROM big a JOIN big b ON a.v = b.v";
my $sort_ref = $node->safe_psql('postgres', "SET work_mem = '256MB'; $sort_q");
my $join_ref = $node->safe_psql('postgres', "SET work_mem = '256MB'; $join_q");

sub temp_bytes
{
	my $total = 0;
	find_files(sub { $total += -s $_[0] });
	return $total;
}

sub find_files
{
	my ($cb) = @_;
	return unless -d $tmpdir;
	File::Find::find({ no_chdir => 1, wanted => sub { $cb->($_) if -f $_ } }, $tmpdir);
}

my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe('DECLARE s CURSOR FOR SELECT v FROM big ORDER BY v DESC');
like($bg->query_safe('FETCH 1 FROM s'), qr/$canary/, 'external sort started, first row fetched');
cmp_ok(temp_bytes(), '>', 1_000_000, 'the sort spilled more than 1 MB to pgsql_tmp');
is_deeply([ files_containing($canary, $tmpdir) ], [], 'mid-query: canary absent from the sort\'s temporary files');
$bg->query_safe('COMMIT');

$bg->query_safe('SET enable_mergejoin = off; SET enable_nestloop = off; SET enable_hashagg = off');
$bg->query_safe('BEGIN');
$bg->query_safe('DECLARE h CURSOR FOR SELECT a.v, b.id FROM big a JOIN big b ON a.v = b.v');
like($bg->query_safe('FETCH 1 FROM h'), qr/$canary/, 'hash join started, first row fetched');
cmp_ok(temp_bytes(), '>', 1_000_000, 'the hash join spilled batches to pgsql_tmp');
is_deeply([ files_containing($canary, $tmpdir) ], [], 'mid-query: canary absent from the hash join\'s batch files');
$bg->query_safe('COMMIT');
$bg->quit;

is($node->safe_psql('postgres', $sort_q), $sort_ref, 'external sort result equals the in-memory result');
is($node->safe_psql('postgres', "SET enable_mergejoin = off; SET enable_nestloop = off; $join_q"), $join_ref,
	'multi-batch hash join result equals the in-memory result');

# Parallel hash join: workers write and read each other's batch files.
my $par = "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
  SET min_parallel_table_scan_size = 0; SET enable_mergejoin = off; SET enable_nestloop = off;";
my $plan = $node->safe_psql('postgres', "$par EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*) FROM big a JOIN big b ON a.v = b.v");
like($plan, qr/Parallel Hash Join/, 'plan is a parallel hash join');
like($plan, qr/Batches: (\d+)/, 'with batches');
my ($batches) = $plan =~ /Batches: (\d+)/;
cmp_ok($batches, '>', 1, 'more than one batch: shared batch files on disk');
is($node->safe_psql('postgres', "$par $join_q"), $join_ref, 'parallel hash join result equals the in-memory result');

$node->stop;
is_deeply([ files_containing($canary, map { $node->data_dir . "/$_" } qw(base global pg_wal)) ], [],
	'canary absent from base/, global/ and pg_wal/ after the queries');

done_testing();
