# Faults on cmk's own I/O (issue 18, items 3 and 5), injected by
# test/fault/cmk_fault.c, an LD_PRELOAD library that only tests build and
# load (cmk.so has no fault hooks). Each fault gives a clear error, or a
# PANIC and a recovery as PostgreSQL gives for its own files; never a
# corrupted keyring, a lost commit or a plaintext page.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use CmkTest;
use CmkLifecycle;

my $faults = "${PostgreSQL::Test::Utils::tmp_check}/faults_113";
set_faults($faults);
$ENV{LD_PRELOAD} = fault_library();
$ENV{CMK_FAULT_FILE} = $faults;

my $canary = 'cmkCANARYfaults';
my $node = cmk_node('node', checksums => 1, conf => "max_prepared_transactions = 4\nwork_mem = '1MB'\nautovacuum = off\nfsync = on\nrestart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text)');
my $next = 1;
sub write_rows
{
	my ($n) = @_;
	my $last = $next + $n - 1;
	$node->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_' || g FROM generate_series($next, $last) g");
	$next = $last + 1;
}
write_rows(1000);
my $keyring = $node->data_dir . '/pg_cmk/keyring';
sub generation { return $node->safe_psql('postgres', 'SELECT key_generation FROM cmk_status()'); }
sub rows_ok
{
	my ($what) = @_;
	is($node->safe_psql('postgres', 'SELECT count(*), min(id), max(id) FROM t WHERE id < 1000000'),
		join('|', $next - 1, 1, $next - 1), "$what: every acknowledged row is there");
}
sub keyring_ok
{
	my ($what) = @_;
	my $out = `pg_cmk keyring -D @{[ $node->data_dir ]} --check 2>&1`;
	is($?, 0, "$what: the keyring on disk opens and unwraps (pg_cmk keyring --check)") or diag($out);
}
sub wait_log { my ($from, $re) = @_; return wait_for(sub { log_has_since($node, $from, $re) }); }
sub wait_up
{
	my $connstr = $node->connstr('postgres');
	return wait_for(sub { system("psql -X -d '$connstr' -c 'SELECT 1' >/dev/null 2>&1") == 0 });
}

# ---- keyring: the new file cannot be written or synced: a clear error, nothing changed ----
my $kek2 = make_kek($node->basedir . '/kek2.pem');
for my $fault ('write pg_cmk/keyring ENOSPC', 'fsync pg_cmk/keyring EIO')
{
	for my $sql ('SELECT cmk_rotate_dek()', "SELECT cmk_rotate_key('file:$kek2')")
	{
		my $before = slurp_file($keyring);
		my $gen = generation();
		my $from = -s $node->logfile;
		set_faults($faults, $fault);
		my ($ret, $out, $err) = $node->psql('postgres', $sql);
		set_faults($faults);
		like($err, qr/could not stage the new keyring.*The keyring was not changed/s, "$fault, $sql: a clear error");
		unlike(substr(slurp_file($node->logfile), $from), qr/PANIC/, "$fault, $sql: no PANIC");
		is(slurp_file($keyring), $before, "$fault, $sql: the keyring file is unchanged");
		is(generation(), $gen, "$fault, $sql: the keys in memory are unchanged");
	}
}
is($node->safe_psql('postgres', 'SELECT cmk_rotate_dek()'), '2', 'without the fault the rotation works');
keyring_ok('after the staging faults');

# ---- keyring: the rename after the WAL record fails: PANIC, redo waits, then installs ----
{
	my $from = -s $node->logfile;
	set_faults($faults, 'rename pg_cmk/keyring.next EIO');
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT cmk_rotate_dek()');
	isnt($ret, 0, 'the rename fails after the WAL record: the session is lost');
	ok(wait_log($from, qr/PANIC:.*could not rename file "[^"]*keyring.next"/), 'the server PANICs, naming the file');
	ok(wait_log($from, qr/cannot replay the keyring change at .* yet: could not write "[^"]*keyring"/),
		'crash recovery cannot install the change either: it says so and waits');
	set_faults($faults);
	ok(wait_up(), 'once the fault is gone, recovery finishes');
	is(generation(), '3', 'and the rotation the WAL record holds is in effect');
	rows_ok('after the PANIC');
	keyring_ok('after the PANIC');
	is(scalar(() = substr(slurp_file($node->logfile), $from) =~ /PANIC/g), 1, 'one PANIC, not a loop');
}

# ---- events and the sweep state: the rotation still works ----
{
	# pg_cmk/sweep is replaced by rename, never missing.
	my $sweep_mark = sub { slurp_file($node->data_dir . '/pg_cmk/sweep') };
	ok(wait_for(sub { $sweep_mark->() eq "done 3\n" }),
		'the sweep of the rotations before is done');
	my $from = -s $node->logfile;
	# The sweep launcher stopped (SIGSTOP) until the view is read: what the
	# view says before any sweep starts is then certain.
	my $launcher = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'cmk sweep launcher'});
	like($launcher, qr/^\d+$/, 'the sweep launcher runs');
	kill 'STOP', $launcher;
	set_faults($faults, 'write pg_cmk/events ENOSPC', 'write pg_cmk/sweep ENOSPC');
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT cmk_rotate_dek()');
	set_faults($faults);
	is($ret, 0, 'with pg_cmk/events and pg_cmk/sweep unwritable the DEK rotation still succeeds') or diag($err);
	like($err, qr/WARNING:.*could not write "[^"]*pg_cmk\/sweep.tmp"/, 'the sweep request says it could not be recorded');
	like(substr(slurp_file($node->logfile), $from), qr/could not .*pg_cmk\/events/, 'the event file failure is logged');
	is($sweep_mark->(), "done 3\n", 'pg_cmk/sweep still holds the last done mark');
	is($node->safe_psql('postgres', 'SELECT state FROM cmk_sweep_progress()'), 'pending',
		'cmk_sweep_progress says pending, not done: the done mark is of an older generation');
	kill 'CONT', $launcher;
	ok(wait_for(sub { $sweep_mark->() eq "done 4\n" }),
		'the sweep runs anyway and records that it is done');
	is($node->safe_psql('postgres', 'SELECT state FROM cmk_sweep_progress()'), 'done', 'and the view says done');
}

# ---- WAL writes through cmk fail: PANIC and recovery, no lost commit ----
for my $fault ('pwrite pg_wal/0 ENOSPC once', 'pwrite pg_wal/0 EIO once')
{
	write_rows(500);
	my $from = -s $node->logfile;
	set_faults($faults, $fault);
	my ($ret) = $node->psql('postgres', "INSERT INTO t SELECT g, 'unacknowledged' FROM generate_series(1000000, 1000100) g");
	isnt($ret, 0, "$fault: the commit whose WAL cannot be written is not acknowledged");
	ok(wait_log($from, qr/PANIC:.*could not write to log file/), "$fault: PostgreSQL PANICs as for any WAL write error");
	ok(wait_up(), "$fault: the server recovers");
	set_faults($faults);
	rows_ok("$fault");
}

# ---- temporary files: the query fails, the server stays up ----
{
	my $from = -s $node->logfile;
	set_faults($faults, 'write,pwrite pgsql_tmp ENOSPC');
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT count(DISTINCT v || g) FROM t, generate_series(1, 50) g");
	set_faults($faults);
	like($err, qr/could not write to file "[^"]*pgsql_tmp[^"]*": No space left on device/, 'a full disk under temporary files fails the query with PostgreSQL\'s error');
	unlike(substr(slurp_file($node->logfile), $from), qr/PANIC/, 'and nothing worse');
	is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
}

# ---- start-up: re-keying surviving two-phase files is completed by the next start ----
{
	$node->safe_psql('postgres', "BEGIN; INSERT INTO t VALUES (2000001, '${canary}_p1'); PREPARE TRANSACTION 'p1';");
	$node->safe_psql('postgres', "BEGIN; INSERT INTO t VALUES (2000002, '${canary}_p2'); PREPARE TRANSACTION 'p2';");
	$node->safe_psql('postgres', 'CHECKPOINT');    # the two-phase state goes to pg_twophase files
	my @files = glob($node->data_dir . '/pg_twophase/*');
	is(scalar(@files), 2, 'two prepared transactions in pg_twophase');
	my $gen = $node->safe_psql('postgres', 'SELECT cmk_rotate_dek()');
	$node->stop;

	# The first file is re-keyed, the second fails: the start stops.
	set_faults($faults, 'rename .cmk-rekey EIO skip=1');
	my $from = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), 'a start whose re-key fails half way stops');
	like(substr(slurp_file($node->logfile), $from), qr/FATAL:.*could not re-key .*pg_twophase.*\n.*DETAIL:.*intact/,
		'saying which file and that it is intact');
	set_faults($faults);
	$from = -s $node->logfile;
	ok($node->start(fail_ok => 1), 'the next start completes the re-key');
	like(substr(slurp_file($node->logfile), $from), qr/re-encrypted 1 surviving temporary files/,
		'it re-keys only the file that was left');
	$node->safe_psql('postgres', "COMMIT PREPARED 'p1'; COMMIT PREPARED 'p2';");
	is($node->safe_psql('postgres', "SELECT string_agg(v, ',' ORDER BY id) FROM t WHERE id > 2000000"),
		"${canary}_p1,${canary}_p2", 'both prepared transactions commit with their rows');
}

# ---- start-up: pg_cmk/temp_generation cannot be written ----
{
	$node->stop;
	set_faults($faults, 'write pg_cmk/temp_generation ENOSPC');
	my $from = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), 'a start that cannot record its temporary-file generation stops');
	like(substr(slurp_file($node->logfile), $from), qr/FATAL:.*could not write "[^"]*temp_generation"/, 'naming the file');
	set_faults($faults);
	ok($node->start(fail_ok => 1), 'and starts once the fault is gone');
}

rows_ok('at the end');
keyring_ok('at the end');
$node->safe_psql('postgres', 'CHECKPOINT');
$node->stop;
is_deeply([ files_containing($canary, $node->data_dir) ], [], 'no plaintext canary in any file after all the faults');
delete $ENV{LD_PRELOAD};
done_testing();
