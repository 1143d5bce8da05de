# Encrypting an existing cluster online and rotating the DEK online:
# - a cluster created and filled without cmk (about 1 GB by default, several
#   databases, indexes of every kind) is started with cmk; the sweep encrypts
#   it while pgbench runs with no errors; afterwards no page is plaintext;
# - an immediate stop in the middle of a sweep: after restart it resumes and
#   finishes; amcheck and row counts unchanged;
# - cmk_rotate_dek() under pgbench load ends with every page in the new
#   generation; retiring the old one is refused until then, works after;
# - a standby replaying it all ends in the same state.
# CMK_SWEEP_TEST_MB sets the size of the first cluster (default 1000).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use CmkTest;
use PageScan;

my $mb = $ENV{CMK_SWEEP_TEST_MB} // 1000;
my $scale = int($mb * 0.8 / 15) || 1;    # pgbench: ~15 MB per scale unit
my $canary = 'cmkCANARYsweep';
my $conf = "shared_buffers = 128MB\nmax_wal_size = 4GB\ncheckpoint_timeout = 30min\nwal_keep_size = 2GB\n"
  . "max_worker_processes = 16\nautovacuum = off\n";

# A plaintext cluster with data in three databases.
sub fill
{
	my ($node, $scale_) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE bench; CREATE DATABASE idx; CREATE DATABASE small;");
	$node->command_ok([ 'pgbench', '-i', '-q', '-s', $scale_, $node->connstr('bench') ], "pgbench -i -s $scale_");
	$node->safe_psql('idx', <<"EOS");
CREATE EXTENSION btree_gist;
CREATE TABLE t (id int PRIMARY KEY, v text, arr text[]);
INSERT INTO t SELECT g, '${canary}_' || g, ARRAY['${canary}_' || (g % 1000)] FROM generate_series(1, 200000) g;
CREATE INDEX ON t (v); CREATE INDEX ON t USING hash (v); CREATE INDEX ON t USING gin (arr);
CREATE INDEX ON t USING gist (v); CREATE INDEX ON t USING spgist (v); CREATE INDEX ON t USING brin (id);
CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t WHERE id % 3 = 0;
CREATE UNLOGGED TABLE u AS SELECT * FROM t WHERE id % 5 = 0;
EOS
	$node->safe_psql('small', "CREATE TABLE s AS SELECT g, '${canary}_small_' || g AS v FROM generate_series(1, 1000) g");
}

# After a crash PostgreSQL empties unlogged tables: leave them out then.
sub digests
{
	my ($node, $crashed) = @_;
	return join(';',
		$node->safe_psql('idx', "SELECT count(*), md5(string_agg(v || arr::text, ',' ORDER BY id)) FROM t"),
		$node->safe_psql('idx', "SELECT count(*) FROM mv"),
		$crashed ? () : $node->safe_psql('idx', "SELECT count(*) FROM u"),
		$node->safe_psql('small', "SELECT count(*), md5(string_agg(v, ',' ORDER BY g)) FROM s"));
}

sub amcheck_ok
{
	my ($node, $what) = @_;
	$node->safe_psql('idx', 'CREATE EXTENSION IF NOT EXISTS amcheck');
	is($node->safe_psql('idx', "SELECT count(*) FROM verify_heapam('t')"), '0', "$what: verify_heapam clean");
	$node->safe_psql('idx', q{SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam
	  WHERE a.amname = 'btree' AND c.relpersistence = 'p' AND c.relnamespace = 'public'::regnamespace});
	pass("$what: bt_index_check with heapallindexed on every btree index");
	is($node->safe_psql('bench', 'SELECT sum(abalance) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history) FROM pgbench_accounts'),
		't', "$what: pgbench balances consistent");
}

sub wait_sweep_done
{
	my ($node, $limit) = @_;
	my $deadline = time + ($limit // 1800);
	while (time < $deadline)
	{
		my $s = $node->safe_psql('postgres', 'SELECT state FROM cmk_sweep_progress()');
		return 1 if $s eq 'done';
		usleep(500_000);
	}
	return 0;
}

sub start_pgbench
{
	my ($node, $seconds) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', $seconds, '-P', '5', $node->connstr('bench') ],
		'>', \$out, '2>', \$err);
	return { h => $h, out => \$out, err => \$err };
}

sub finish_pgbench
{
	my ($pb, $what) = @_;
	my $ok = $pb->{h}->finish;
	ok($ok, "$what: pgbench ran without errors") or diag(${ $pb->{err} });
	my ($tps) = ${ $pb->{out} } =~ /tps = ([\d.]+)/;
	return $tps // 0;
}

# ---- 1. encrypt an existing cluster online, under pgbench ----
my $node = plain_node('sweep', checksums => 1, conf => $conf);
$node->start;
fill($node, $scale);
my $before = digests($node);
my $size = $node->safe_psql('postgres', 'SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database');
$node->stop;
cmp_ok(page_generations($node->data_dir)->{0}, '>', 1000, "a plaintext cluster of $size");

my $kek = $node->basedir . '/kek.pem';
make_kek($kek);
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'cmk'\ncmk.key_url = 'file:$kek'\n"
	. "wal_level = replica\nmax_wal_senders = 4\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk');
my $t0 = time;
my $pb = start_pgbench($node, 30);
ok(wait_sweep_done($node), 'the sweep started by itself and finished');
my $sweep_secs = time - $t0;
my $tps_during = finish_pgbench($pb, 'during the sweep');
my $p = $node->safe_psql('postgres', 'SELECT pages_scanned, pages_rewritten, round(pages_rewritten_per_second::numeric) FROM cmk_sweep_progress()');
diag("sweep of $size under pgbench: $p (scanned|rewritten|rewritten/s), ${sweep_secs}s; pgbench tps during: $tps_during");
$node->safe_psql('postgres', 'CHECKPOINT');
my $gens = page_generations($node->data_dir);
is($gens->{0} // 0, 0, 'after the sweep no page of any relation file is plaintext');
cmp_ok($gens->{1} // 0, '>', 1000, 'every page is in generation 1');
is(digests($node), $before, 'every row unchanged');
amcheck_ok($node, 'after the sweep');
my $tps_after = finish_pgbench(start_pgbench($node, 15), 'after the sweep');
diag("pgbench tps without a sweep running: $tps_after (during the sweep: $tps_during)");

# A standby from here replays what follows.
$node->backup('b', backup_options => [ '-X', 'fetch' ]);
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;

# ---- 3. DEK rotation under load ----
$pb = start_pgbench($node, 20);
is($node->safe_psql('postgres', 'SELECT cmk_rotate_dek()'), '2', 'cmk_rotate_dek() makes generation 2 current');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT cmk_retire_generation(1)');
like($err, qr/key generation 1 still encrypts \d+ pages/, 'retiring generation 1 is refused while pages use it');
ok(wait_sweep_done($node), 'the sweep to generation 2 finished');
finish_pgbench($pb, 'during the DEK rotation sweep');
$node->safe_psql('postgres', 'CHECKPOINT');
$gens = page_generations($node->data_dir);
is(join(',', grep { $_ ne 'new' && ($gens->{$_} // 0) > 0 } sort keys %$gens), '2', 'every page is in generation 2');
is(digests($node), $before, 'every row unchanged after the rotation');

$node->wait_for_catchup($standby);
$standby->safe_psql('postgres', 'CHECKPOINT');
$gens = page_generations($standby->data_dir);
is(join(',', grep { $_ ne 'new' && ($gens->{$_} // 0) > 0 } sort keys %$gens), '2', 'the standby replayed the sweep: every page in generation 2');
is($standby->safe_psql('postgres', 'SELECT key_generation FROM cmk_status()'), '2', 'and uses generation 2');
is($standby->safe_psql('postgres', 'SELECT state FROM cmk_sweep_progress()'), 'pending',
	"the standby's sweep state is pending, not done: it has not swept to generation 2 itself (it will once promoted)");

$node->restart;    # temporary files of the old run used generation 1
($ret, $out, $err) = $node->psql('postgres', 'SELECT cmk_retire_generation(1)');
like($err, qr/key generation 1 still encrypts \d+ pages in \d+ WAL segments/,
	'retiring is refused while WAL segments kept for standbys (wal_keep_size) use it');
$node->safe_psql('postgres', "ALTER SYSTEM SET wal_keep_size = 0; SELECT pg_reload_conf();");
$node->wait_for_catchup($standby);
for (1 .. 3)
{
	$node->safe_psql('postgres', "CREATE TABLE IF NOT EXISTS wal_filler (x int); INSERT INTO wal_filler VALUES (1); SELECT pg_switch_wal(); CHECKPOINT;");
}
$node->safe_psql('postgres', 'SELECT cmk_retire_generation(1)');
pass('once no WAL segment uses it, generation 1 is retired');
$node->stop;
my $keyring = `pg_cmk keyring -D @{[ $node->data_dir ]} 2>&1`;
unlike($keyring, qr/generation 1[ :]/, 'generation 1 is gone from the keyring');
$node->start;
is(digests($node), $before, 'after the retirement and a restart every row reads back');
amcheck_ok($node, 'after the rotation');
$node->stop;
$standby->stop;
is_deeply([ files_containing($canary, map { $node->data_dir . "/$_" } qw(base global)) ], [], 'no canary in any relation file');

# ---- 2. an immediate stop in the middle of a sweep ----
my $crash = plain_node('crash', checksums => 1, conf => $conf . "cmk.sweep_cost_delay = 20\n");
$crash->start;
fill($crash, int($scale / 3) || 1);
my $cbefore = digests($crash, 1);
$crash->stop;
my $kek2 = $crash->basedir . '/kek.pem';
make_kek($kek2);
$crash->append_conf('postgresql.conf', "shared_preload_libraries = 'cmk'\ncmk.key_url = 'file:$kek2'\n");
$crash->start;
$crash->safe_psql('postgres', 'CREATE EXTENSION cmk');
my $mid = 0;
for (1 .. 600)
{
	my $r = $crash->safe_psql('postgres', 'SELECT state, pages_rewritten FROM cmk_sweep_progress()');
	if ($r =~ /^running\|(\d+)$/ && $1 > 2000) { $mid = 1; last; }
	last if $r =~ /^done/;
	usleep(100_000);
}
ok($mid, 'the sweep is in the middle of its work');
$crash->stop('immediate');
$crash->start;
ok(wait_sweep_done($crash), 'after the crash the sweep resumes and finishes');
diag('sweep without concurrent load (cmk.sweep_cost_delay = 20ms, resumed after the crash): '
	  . $crash->safe_psql('postgres', 'SELECT pages_scanned, pages_rewritten, round(pages_scanned_per_second::numeric), round(pages_rewritten_per_second::numeric) FROM cmk_sweep_progress()')
	  . ' (scanned|rewritten|scanned/s|rewritten/s)');
$crash->safe_psql('postgres', 'CHECKPOINT');
is(page_generations($crash->data_dir)->{0} // 0, 0, 'no plaintext page left');
is(digests($crash, 1), $cbefore, 'every row unchanged (unlogged tables are reset by the crash, as always)');
amcheck_ok($crash, 'after the crash and resume');
$crash->stop;

done_testing();
