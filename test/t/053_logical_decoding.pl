# Logical decoding spill files (pg_replslot/<slot>/*.spill) are encrypted:
# an open transaction larger than logical_decoding_work_mem is spilled while
# pg_recvlogical streams; its spill files hold no canary, and once it commits
# the decoded output has every row.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYspill';
my $rows = 20000;

sub spill_files
{
	my ($node) = @_;
	return grep { -f $_ && -s $_ } glob($node->data_dir . '/pg_replslot/s/*.spill');
}

sub run_decoding
{
	my ($node) = @_;
	$node->safe_psql('postgres', "CREATE TABLE t (id int PRIMARY KEY, v text)");
	$node->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('s', 'test_decoding')");
	my $out = $node->basedir . '/decoded.txt';
	my $recv = IPC::Run::start(
		[ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 's', '--start', '-f', $out, '--no-loop', '-s', '1', '-F', '1' ],
		'>', \my $stdout, '2>', \my $stderr);

	# The transaction stays open: its spilled changes stay on disk.
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN; INSERT INTO t SELECT g, '${canary}_' || g FROM generate_series(1, $rows) g;");
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');    # hand the WAL to the walsender now
	# The walsender spills as it decodes: wait until most of the transaction
	# is on disk, not for the first file, so the canary search reads more
	# than the first spill's 64 kB.
	my (@spill, $bytes);
	for (1 .. 600)
	{
		@spill = spill_files($node);
		$bytes = 0;
		$bytes += (-s $_ // 0) for @spill;
		last if $bytes > 100_000;
		select(undef, undef, undef, 0.1);
	}
	my @hits = @spill ? files_containing($canary, $node->data_dir . '/pg_replslot') : ();

	$bg->query_safe('COMMIT');
	$bg->quit;
	my $n = 0;
	for (1 .. 600)
	{
		$n = () = (-f $out ? slurp_file($out) : '') =~ /$canary/g;
		last if $n >= $rows;
		select(undef, undef, undef, 0.1);
	}
	$recv->signal('TERM');
	$recv->finish;
	return (scalar(@spill), $bytes, \@hits, $n);
}

my $conf = "wal_level = logical\nlogical_decoding_work_mem = 64kB\nmax_replication_slots = 4\nmax_wal_senders = 4\n";

# Control: without cmk the spill files hold the canary.
my $plain = plain_node('plain', conf => $conf);
$plain->start;
my ($pfiles, $pbytes, $phits) = run_decoding($plain);
ok($pfiles > 0 && @$phits > 0, 'control: without cmk the spill files hold the canary');
$plain->stop;

my $node = cmk_node('logical', conf => $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk');
my ($files, $bytes, $hits, $decoded) = run_decoding($node);
cmp_ok($files, '>', 0, 'the open transaction was spilled to files');
cmp_ok($bytes, '>', 100_000, "spill files hold $bytes bytes");
is_deeply($hits, [], 'canary absent from the spill files while they exist');
is($decoded, $rows, 'after COMMIT the decoded output has every row');
$node->stop;
is_deeply([ files_containing($canary, $node->data_dir) ], [], 'canary absent from every file of the data directory');

done_testing();
