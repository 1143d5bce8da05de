# Backups taken while the keys rotate (issue 18, item 6): cmk_rotate_key
# and cmk_rotate_dek while pg_basebackup and a pgBackRest backup run, under
# pgbench. Both backups restore, replay across the rotations (the copied
# keyring may be from before or after them) and read every row; amcheck
# is clean.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use CmkTest;
use CmkLifecycle;

plan skip_all => 'pgbackrest is not installed' unless `which pgbackrest` =~ /pgbackrest/;

my $node = cmk_node('primary', checksums => 1, init => { allows_streaming => 1 },
	conf => "wal_keep_size = 1GB\nautovacuum = off\ncmk.sweep_cost_delay = 200\n");    # a slow sweep: less WAL
my $base = $node->basedir;
my $br = pgbackrest_stanza($node, 'compress-level=9');
$node->start;
my @keks = ('file:' . make_kek("$base/kek2.pem"), "file:$base/kek.pem");
$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE TABLE marks (what text, at pg_lsn)');
$node->command_ok([ 'pgbench', '-i', '-q', '-s', '5', '-d', $node->connstr('postgres') ], 'pgbench -i, scale 5');

my ($rc, $out) = run_shell("$br stanza-create");
is($rc, 0, 'stanza-create') or diag($out);

my $load = IPC::Run::start([ 'pgbench', '-n', '-c', '2', '-j', '1', '-T', '900', '-d', $node->connstr('postgres') ],
	'>', "$base/pgbench.out", '2>&1');

# Rotations while the backup process $h runs; returns how many completed
# while it was still running.
sub rotate_during
{
	my ($h, $what) = @_;
	my $n = 0;
	for my $sql ("SELECT cmk_rotate_key('$keks[0]')", 'SELECT cmk_rotate_dek()', "SELECT cmk_rotate_key('$keks[1]')",
		'SELECT cmk_rotate_dek()')
	{
		$node->safe_psql('postgres', $sql);
		$n++ if $h->pumpable;
	}
	return $n;
}

# ---- pg_basebackup (-X fetch: WAL read as stored, ciphertext) ----
$node->safe_psql('postgres', "INSERT INTO marks VALUES ('before pg_basebackup', pg_current_wal_lsn())");
my $bb_dir = $node->backup_dir . '/bb';
my $bb = IPC::Run::start([ 'pg_basebackup', '-D', $bb_dir, '-X', 'fetch', '-c', 'fast', '--max-rate=4M', '--no-sync',
		'-d', $node->connstr('postgres') ], '>', "$base/bb.out", '2>&1');
ok(wait_for(sub { $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_progress_basebackup WHERE phase = 'streaming database files'") eq '1' }),
	'pg_basebackup is copying files');
my $during = rotate_during($bb);
is($during, 4, 'four rotations (KEK, DEK, KEK, DEK) completed while pg_basebackup ran');
ok($bb->finish, 'pg_basebackup succeeded') or diag(slurp_file("$base/bb.out"));

# ---- pgBackRest full backup ----
$node->safe_psql('postgres', "INSERT INTO marks VALUES ('before pgBackRest', pg_current_wal_lsn())");
my $brb = IPC::Run::start([ split(/ /, $br), 'backup', '--type=full' ], '>', "$base/brb.out", '2>&1');
ok(wait_for(sub { $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgBackRest%backup%'") ne '0' }),
	'pgBackRest is backing up');
usleep(300_000);    # past pg_backup_start
$during = rotate_during($brb);
cmp_ok($during, '>=', 2, "$during rotations completed while pgBackRest ran");
ok($brb->finish, 'pgBackRest backup succeeded') or diag(slurp_file("$base/brb.out"));

$load->kill_kill;
$load->finish;
$node->safe_psql('postgres', "INSERT INTO marks VALUES ('after both', pg_current_wal_lsn())");
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
($rc, $out) = run_shell("$br check");
is($rc, 0, 'WAL archived') or diag($out);
my $digest_q = q{SELECT (SELECT count(*) FROM pgbench_history), (SELECT sum(abalance) FROM pgbench_accounts),
  (SELECT string_agg(what, ',' ORDER BY at) FROM marks)};
my $expected = $node->safe_psql('postgres', $digest_q);

sub every_row_ok
{
	my ($restored, $what) = @_;
	is($restored->safe_psql('postgres', 'SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history)'),
		't', "$what: every pgbench row reads back and the balances add up");
	is(amcheck_clean($restored, 'postgres'), '', "$what: amcheck is clean (heap and btree)");
	is($restored->safe_psql('postgres', 'SELECT count(*) FROM pg_class c, LATERAL pg_relation_size(c.oid) s WHERE c.relkind IN (\'r\', \'i\', \'t\', \'m\') AND s > 0'),
		$node->safe_psql('postgres', 'SELECT count(*) FROM pg_class c, LATERAL pg_relation_size(c.oid) s WHERE c.relkind IN (\'r\', \'i\', \'t\', \'m\') AND s > 0'),
		"$what: the same relations");
}

# ---- restore the base backup ----
my $r1 = PostgreSQL::Test::Cluster->new('restored_bb');
$r1->init_from_backup($node, 'bb');
$r1->append_conf('postgresql.conf', "archive_mode = off\n");
ok($r1->start(fail_ok => 1), 'the base backup taken across rotations starts') or diag(slurp_file($r1->logfile));
like($r1->safe_psql('postgres', 'SELECT string_agg(what, \',\' ORDER BY at) FROM marks'), qr/^before pg_basebackup/,
	'it holds what was written before it');
every_row_ok($r1, 'base backup');
$r1->stop;

# ---- restore the pgBackRest backup, recover to the end of the archive ----
my $r2 = PostgreSQL::Test::Cluster->new('restored_br');
mkdir $r2->data_dir;
chmod 0700, $r2->data_dir;
($rc, $out) = run_shell("$br --pg1-path=@{[ $r2->data_dir ]} restore --type=default");
is($rc, 0, 'pgBackRest restore') or diag($out);
$r2->append_conf('postgresql.conf', "port = @{[ $r2->port ]}\nunix_socket_directories = '@{[ $r2->host ]}'\narchive_mode = off\n");
ok($r2->start(fail_ok => 1), 'the pgBackRest backup taken across rotations starts') or diag(slurp_file($r2->logfile));
ok($r2->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()'), 'and recovers to the end of the archive');
is($r2->safe_psql('postgres', $digest_q), $expected, 'every row, including those replayed from the archive');
every_row_ok($r2, 'pgBackRest');
$r2->stop;
$node->stop;
done_testing();
