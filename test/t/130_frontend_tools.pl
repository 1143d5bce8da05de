# PostgreSQL's own front-end tools on an encrypted cluster with no manual
# step (DESIGN.md "Front-end tools"): the cmk_TOOL names of pg_cmk (and
# pg_cmk exec) preload cmk_frontend.so, which decrypts the WAL a tool reads
# and encrypts the WAL it writes. For each tool: it works, and a byte scan
# of every directory it wrote finds no canary; the same tool run bare shows
# what the test would catch (plaintext WAL, or encrypted WAL it cannot read).
use strict;
use warnings;
use File::Copy;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use CmkTest;

my $canary = 'cmkCANARYfe';
my $primary = cmk_node('primary', checksums => 1,
	init => { allows_streaming => 1 }, conf => "wal_keep_size = 256MB\n");
$primary->start;
my $pdata = $primary->data_dir;
my $connstr = $primary->connstr('postgres');
$primary->safe_psql('postgres', "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE w (v text); CREATE TABLE stop_writer (x int);");

# Streamed WAL starts at the beginning of the current segment: rows
# inserted after a switch are in the WAL every streaming tool receives.
sub canary_rows
{
	my ($tag, $from, $to) = @_;
	$primary->safe_psql('postgres', "SELECT pg_switch_wal()");
	$primary->safe_psql('postgres',
		"INSERT INTO t SELECT g, '${canary}_$tag' || g FROM generate_series($from, $to) g");
}

# A base backup streams the WAL from its own start: rows committed while
# it runs (a writer commits one every 20 ms) are in the streamed WAL.
sub with_writer
{
	my ($tag, $code) = @_;
	$primary->safe_psql('postgres', "TRUNCATE stop_writer");
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $connstr, '-c',
			"DO \$\$ DECLARE i int := 0; BEGIN WHILE NOT EXISTS (SELECT 1 FROM stop_writer) LOOP i := i + 1; "
			  . "INSERT INTO w VALUES ('${canary}_$tag' || i); COMMIT; PERFORM pg_sleep(0.02); END LOOP; END \$\$" ],
		'>', \my $o, '2>', \my $e);
	$primary->poll_query_until('postgres', "SELECT count(*) > 0 FROM w WHERE v LIKE '${canary}_$tag%'")
	  or die "the writer did not start: $e";
	my @r = $code->();
	$primary->safe_psql('postgres', "INSERT INTO stop_writer VALUES (1)");
	$h->finish;
	return @r;
}

sub run_tool
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

my $bdir = $primary->backup_dir;
my @conn = ('-h', $primary->host, '-p', $primary->port);

# --- pg_basebackup -X stream ---------------------------------------------
canary_rows('s', 1, 2000);
my ($rc, $out, $err) = with_writer('bare',
	sub { run_tool('pg_basebackup', @conn, '-D', "$bdir/bare_stream", '-X', 'stream', '-c', 'fast', '--no-sync') });
is($rc, 0, 'bare pg_basebackup -X stream runs');
isnt(scalar(files_containing($canary, "$bdir/bare_stream/pg_wal")), 0,
	'control: the bare tool leaves the canary in the streamed WAL');

($rc, $out, $err) = with_writer('stream',
	sub { run_tool('cmk_pg_basebackup', @conn, '-D', "$bdir/stream", '-X', 'stream', '-c', 'fast') });
is($rc, 0, 'cmk_pg_basebackup -X stream') or diag($err);
is_deeply([ files_containing($canary, "$bdir/stream") ], [], 'backup -X stream: no canary in any file');
like(`pg_cmk wal encrypt -D $bdir/stream 2>&1`, qr/ 0 pages encrypted/, 'its WAL holds no plaintext WAL page');
my $dec = "$bdir/stream_decrypted";
mkdir $dec;
system("pg_cmk wal decrypt -D $bdir/stream -o $dec >/dev/null") == 0 or die;
isnt(scalar(files_containing("${canary}_stream", $dec)), 0, 'the streamed WAL holds the rows, encrypted');

# --- pg_verifybackup (runs pg_waldump on the backup's WAL) ----------------
# The manifest the server sends is buffered in a temporary file of the
# backup's walsender: it must arrive readable, like the files it lists.
($rc, $out, $err) = run_tool('pg_verifybackup', '-n', "$bdir/stream");
is($rc, 0, 'the backup manifest parses and every file matches its checksum') or diag($err);
($rc, $out, $err) = run_tool('pg_verifybackup', "$bdir/stream");
isnt($rc, 0, 'control: bare pg_verifybackup cannot parse the encrypted WAL');
($rc, $out, $err) = run_tool('cmk_pg_verifybackup', "$bdir/stream");
is($rc, 0, 'cmk_pg_verifybackup verifies the -X stream backup, WAL included') or diag($err);

# A standby from that backup.
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'stream', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t'), '2000', 'a standby starts from the -X stream backup');

# --- pg_basebackup -X fetch -----------------------------------------------
canary_rows('f', 2001, 3000);
($rc, $out, $err) = run_tool('cmk_pg_basebackup', @conn, '-D', "$bdir/fetch", '-X', 'fetch', '-c', 'fast');
is($rc, 0, 'cmk_pg_basebackup -X fetch') or diag($err);
is_deeply([ files_containing($canary, "$bdir/fetch") ], [], 'backup -X fetch: no canary');
($rc, $out, $err) = run_tool('cmk_pg_verifybackup', "$bdir/fetch");
is($rc, 0, 'cmk_pg_verifybackup verifies the -X fetch backup') or diag($err);

# --- refusals: WAL that cannot be encrypted page by page -------------------
($rc, $out, $err) = run_tool('cmk_pg_basebackup', @conn, '-D', "$bdir/tar", '-Ft', '-X', 'stream');
isnt($rc, 0, 'cmk_pg_basebackup -Ft -X stream is refused');
like($err, qr/cmk_frontend: refusing to write .*pg_wal\.tar/, 'naming the tar-format WAL');
is_deeply([ files_containing($canary, "$bdir/tar") ], [], 'and left no canary behind');

# --- pg_waldump -----------------------------------------------------------
canary_rows('d', 5101, 5200);
my $seg = $primary->safe_psql('postgres', "SELECT pg_walfile_name(pg_current_wal_lsn())");
($rc, $out, $err) = run_tool('pg_waldump', '-p', "$pdata/pg_wal", $seg);
unlike($out, qr/rmgr: Heap .*INSERT/, 'control: bare pg_waldump cannot read encrypted WAL');
($rc, $out, $err) = run_tool('cmk_pg_waldump', '-p', "$pdata/pg_wal", $seg);
like($out, qr/rmgr: Heap .*INSERT/, 'cmk_pg_waldump decodes the encrypted WAL') or diag($err);
($rc, $out, $err) = run_tool('pg_cmk', 'exec', '--', 'pg_waldump', "$pdata/pg_wal/$seg");
like($out, qr/rmgr: Heap .*INSERT/, 'pg_cmk exec -- pg_waldump, segment named by path') or diag($err);

# --- pg_receivewal, with the keyring named and with it arriving late -------
$primary->safe_psql('postgres', "SELECT pg_create_physical_replication_slot('recv')");
sub receive_wal
{
	my ($dir, $keyring, $tag, $from, $to, $before_stop) = @_;
	make_path($dir);
	# CMK_KEYRING as the environment names it (pg_cmk exec --keyring checks
	# the file is there; the late case below makes it appear afterwards).
	local $ENV{CMK_KEYRING} = $keyring;
	my $h = IPC::Run::start([ 'cmk_pg_receivewal', @conn, '-D', $dir, '-S', 'recv', '--synchronous', '-n' ],
		'>', \my $o, '2>', \my $e);
	canary_rows($tag, $from, $to);
	my $seg = $primary->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
	$before_stop->() if $before_stop;
	# Complete the segment, so pg_receivewal gives it its final name.
	$primary->safe_psql('postgres', 'SELECT pg_switch_wal()');
	for (my $i = 0; $i < 600 && !-f "$dir/$seg"; $i++) { $h->pump_nb; usleep(100_000); }
	ok(-f "$dir/$seg", "pg_receivewal completed segment $seg") or diag($e);
	$h->signal('INT');
	$h->finish;
	return ($seg, $e);
}
my $kr = "$pdata/pg_cmk/keyring";
my ($recv_seg, $recv_err) = receive_wal("$bdir/recv", $kr, 'r', 3001, 4000);
is_deeply([ files_containing($canary, "$bdir/recv") ], [], 'pg_receivewal: no canary in its directory') or diag($recv_err);
($rc, $out, $err) = run_tool('pg_cmk', 'exec', '--keyring', $kr, '--', 'pg_waldump', '-p', "$bdir/recv", $recv_seg);
like($out, qr/rmgr: Heap .*INSERT/, 'pg_waldump reads what pg_receivewal wrote') or diag($err);
($rc, $out, $err) = run_tool('pg_cmk', 'exec', '--keyring', "$bdir/none", '--', 'pg_receivewal', @conn, '-D', "$bdir/recv", '-n');
isnt($rc, 0, 'pg_cmk exec refuses a keyring it cannot read');

# The keyring is not there when WAL arrives (as in a -X stream backup whose
# keyring comes after its first WAL): the WAL waits in memory, is written
# encrypted once the keyring appears, and never in plaintext.
my $late = "$bdir/late_keyring";
($recv_seg, $recv_err) = receive_wal("$bdir/recv_late", $late, 'l', 4001, 5000,
	sub {
		# Before the keyring: nothing but zeros in the partial segment.
		is_deeply([ files_containing("${canary}_l", "$bdir/recv_late") ], [], 'WAL waits for the keyring');
		copy($kr, $late) or die;
		$primary->safe_psql('postgres', "INSERT INTO t VALUES (5001, 'after the keyring')");
	});
is_deeply([ files_containing($canary, "$bdir/recv_late") ], [], 'late keyring: no canary');
mkdir "$bdir/recv_late_dec";
system("pg_cmk wal decrypt -D $pdata $bdir/recv_late -o $bdir/recv_late_dec >/dev/null") == 0 or die;
isnt(scalar(files_containing("${canary}_l", "$bdir/recv_late_dec")), 0, 'the waiting WAL was written, encrypted');

# --- pg_rewind ------------------------------------------------------------
$standby->promote;
$standby->safe_psql('postgres', 'CHECKPOINT');
$standby->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_new' || g FROM generate_series(6001, 7000) g");
$primary->safe_psql('postgres', "SELECT pg_drop_replication_slot('recv')");
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_lost' || g FROM generate_series(9001, 9500) g");
$primary->stop;
rewind_and_follow($primary, $standby, sub {
	($rc, $out, $err) = run_tool('cmk_pg_rewind', '--target-pgdata', $pdata, '--source-server', $standby->connstr('postgres'));
	is($rc, 0, 'cmk_pg_rewind of the old primary, with no manual step') or diag($err);
	like($err, qr/Done!/, 'pg_rewind rewound');
});
$standby->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_c' || g FROM generate_series(7001, 7500) g");
$standby->wait_for_catchup($primary);
is($primary->safe_psql('postgres', 'SELECT count(*) FROM t'), '6601', 'rewound old primary follows the new one');
is($primary->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE '${canary}_lost%'"), '0', 'its diverged rows are gone');
$primary->stop;
$standby->stop;
is_deeply([ files_containing($canary, $pdata) ], [], 'rewound old primary: no canary in any file');
is_deeply([ files_containing($canary, $standby->data_dir) ], [], 'new primary: no canary in any file');

done_testing();
