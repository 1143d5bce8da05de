# No key material in core dumps: the data encryption keys, every sub-key
# derived from them and the AES key schedules of the cipher contexts live
# only in memory that is excluded from core dumps (and locked, never
# swapped). The test derives every secret from the keyring and the KEK
# itself (test/perl/CmkKeys.pm) and scans:
#   - a core the kernel writes for a backend killed with SIGSEGV (the server
#     started with pg_ctl -c; the kernel's core_pattern must name a file,
#     as Debian's default "core" in the process's directory, $PGDATA);
#   - cores of a live backend and of the postmaster written by gdb's gcore
#     (which honours the same exclusions), whatever core_pattern says;
#   - a core of pg_cmk, the front-end tool, after it opened the keyring.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use CmkKeys;
use KvEmulator;
use File::Basename;
use Time::HiRes qw(usleep);

# The AES key expansion of CmkKeys against FIPS 197 Appendix A.3.
{
	my ($enc, $dec) = aes256_round_keys(pack('H*', '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4'));
	is(unpack('H*', $enc->[14]), 'fe4890d1e6188d0b046df344706c631e', 'the test\'s AES-256 key expansion gives FIPS 197\'s last round key');
}

my $node = cmk_node('core', conf => <<'EOC');
shared_buffers = 1MB
work_mem = 64kB
autovacuum = off
max_connections = 10
restart_after_crash = on
EOC
my $datadir = $node->data_dir;
my $kek = $node->basedir . '/kek.pem';
my $pg_ctl = 'pg_ctl';

# pg_ctl -c lifts the soft limit on core files for the server.
sub start_with_cores
{
	system_or_bail($pg_ctl, '-c', '-w', '-D', $datadir, '-l', $node->logfile, 'start');
	$node->_update_pid(1);    # so that a failing test still stops it
}
start_with_cores();
$node->safe_psql('postgres', 'CREATE EXTENSION cmk');
$node->poll_query_until('postgres', "SELECT state = 'done' FROM cmk_sweep_progress")
  or die 'the sweep did not finish';
$node->safe_psql('postgres', 'SELECT cmk_rotate_dek()');    # two generations

my %needles = key_needles($datadir, $kek);
my $n = scalar keys %needles;
cmp_ok($n, '>=', 2 * 150, "the keyring's two generations give $n secrets to look for");

# A session that uses every cipher: relation pages larger than shared
# buffers (read and written by the backend itself), WAL, a spilling sort.
my $session = $node->background_psql('postgres');
$session->query_safe(<<'EOS');
CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 20000) g;
CHECKPOINT;
SELECT count(*) FROM t WHERE v LIKE 'a%';
UPDATE t SET v = v || 'x' WHERE g % 7 = 0;
SELECT v FROM t ORDER BY v DESC LIMIT 1;
EOS
my $pid = $session->query_safe('SELECT pg_backend_pid()');
chomp $pid;
my $postmaster = (split /\n/, slurp_file("$datadir/postmaster.pid"))[0];

sub check_image
{
	my ($path, $what) = @_;
	ok(-s $path > 1_000_000, "$what: a core was written (" . (-s $path) . " bytes)");
	my @found = scan_image($path, %needles);
	is(scalar(@found), 0, "$what: holds none of the $n secrets")
	  or diag("found: " . join(', ', @found[ 0 .. ($#found < 19 ? $#found : 19) ]) . (@found > 20 ? ', ...' : ''));
	# A positive control that the image is the process's memory: the
	# setting that names the KEK is in it.
	my %control = (control => "file:$kek");
	is_deeply([ scan_image($path, %control) ], ['control'], "$what: holds the process's memory (cmk.key_url's value)");
	return;
}

my $cores = PostgreSQL::Test::Utils::tempdir();
SKIP:
{
	skip 'gdb cannot attach to the server here (not installed, or Yama ptrace_scope > 0)', 6 unless can_attach_gdb();
	system_log('gcore', '-o', "$cores/backend", $pid);
	check_image("$cores/backend.$pid", 'gcore of a live backend');
	system_log('gcore', '-o', "$cores/postmaster", $postmaster);
	check_image("$cores/postmaster.$postmaster", 'gcore of the postmaster');
}

# The kernel's core of a backend killed with SIGSEGV.
my $pattern = slurp_file('/proc/sys/kernel/core_pattern');
chomp $pattern;
SKIP:
{
	skip "core_pattern '$pattern' does not write a file in the process's directory", 4
	  unless $pattern =~ m{^[^|/%]*(%p)?[^|/%]*$};
	unlink glob("$datadir/core*");
	kill 'SEGV', $pid;
	eval { $session->quit };    # the session ends with its backend
	my $core;
	for (1 .. 300)
	{
		($core) = grep { -f $_ } glob("$datadir/core*");
		last if $core && -s $core && !kill(0, $pid);
		usleep(100_000);
	}
	ok($core, 'the killed backend left a core file in the data directory')
	  or diag(slurp_file($node->logfile));
	$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
	check_image($core, 'core of a backend killed with SIGSEGV') if $core;
	unlink $core if $core;
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '20000', 'the server recovered, the data is intact');
$node->stop;

# pg_cmk, the front-end tool: a core taken while it decrypts WAL (its
# keys and cipher contexts in use).
SKIP:
{
	skip 'gdb is not installed', 4 unless system('gdb --version >/dev/null 2>&1') == 0;
	mkdir "$cores/wal";
	my $out = `gdb -batch -ex 'set pagination off' -ex 'break cmk::wal_page_decrypt' -ex run -ex 'gcore $cores/pg_cmk' --args pg_cmk wal decrypt -D $datadir -o $cores/wal 2>&1`;
	ok(-f "$cores/pg_cmk", 'pg_cmk stopped while decrypting and gdb wrote its core') or diag($out);
	check_image("$cores/pg_cmk", 'gcore of pg_cmk wal decrypt, while it decrypts') if -f "$cores/pg_cmk";
}

# With the KEK in (the emulator of) Key Vault, the DEK travels in the unwrap
# answer (base64url in JSON, over TLS): no copy of it may stay in the
# postmaster's memory, which every backend inherits, or in a backend's.
SKIP:
{
	skip 'gdb cannot attach to the server here (not installed, or Yama ptrace_scope > 0)', 4 unless can_attach_gdb();
	my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_120");
	$kv->admin('add-identity', '--tenant', $kv->tenant, '--client-id', 'pg-server', '--secret', 's3cret-120');
	$kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');
	my $kvkek = PostgreSQL::Test::Utils::tempdir() . '/kek.pem';
	make_kek($kvkek);
	$kv->admin('import-key', '--name', 'kek120', '--pem', $kvkek);
	my %env = $kv->secret_env('pg-server', 's3cret-120');
	@ENV{ keys %env } = values %env;
	my $kvnode = cmk_node('corekv', key_url => $kv->url . '/keys/kek120',
		conf => "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\n");
	$kvnode->start;
	$kvnode->stop;
	$kvnode->start;    # the keyring exists: this start unwraps
	%needles = key_needles($kvnode->data_dir, $kvkek);
	$n = scalar keys %needles;
	$kvkek = $kvkek;
	my $bg = $kvnode->background_psql('postgres');
	my $bpid = $bg->query_safe('CREATE TABLE k AS SELECT g FROM generate_series(1, 10000) g; SELECT pg_backend_pid()');
	chomp $bpid;
	my $pm = (split /\n/, slurp_file($kvnode->data_dir . '/postmaster.pid'))[0];
	system_log('gcore', '-o', "$cores/kvbackend", $bpid);
	system_log('gcore', '-o', "$cores/kvpostmaster", $pm);
	$kek = $kvkek;    # the control below looks for this node's key URL
	check_kv_image("$cores/kvbackend.$bpid", 'Key Vault: gcore of a backend');
	check_kv_image("$cores/kvpostmaster.$pm", 'Key Vault: gcore of the postmaster');
	$bg->quit;
	$kvnode->stop;
	$kv->stop;
}

sub check_kv_image
{
	my ($path, $what) = @_;
	ok(-s $path > 1_000_000, "$what: a core was written");
	my @found = scan_image($path, %needles);
	is(scalar(@found), 0, "$what: holds none of the $n secrets, nor the DEK as the unwrap answer carried it")
	  or diag("found: " . join(', ', @found[ 0 .. ($#found < 19 ? $#found : 19) ]));
	return;
}

done_testing();
