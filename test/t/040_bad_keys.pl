# Every bad key input stops start-up with a message that says what is wrong,
# and leaves every file of the data directory exactly as it was.
use strict;
use warnings;
use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $node = cmk_node('badkeys');
my $kek = $node->basedir . '/kek.pem';
my $keyring = $node->data_dir . '/pg_cmk/keyring';
$node->start;
$node->safe_psql('postgres', <<'EOS');
CREATE EXTENSION cmk;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'cmkCANARYbadkeys_' || g FROM generate_series(1, 1000) g;
EOS
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
my $expected = $node->safe_psql('postgres', $digest_q);
$node->stop;

my $good_keyring = slurp_file($keyring);
my $conf_file = $node->data_dir . '/postgresql.conf';
my $good_conf = slurp_file($conf_file);

sub write_file
{
	my ($path, $data) = @_;
	open(my $fh, '>:raw', $path) or die "$path: $!";
	print $fh $data;
	close $fh;
}

# Start must fail with $message_re, and change no file.
sub refuses_start
{
	my ($case, $message_re, $break, $repair) = @_;
	$break->();
	my $before = dir_fingerprint($node->data_dir);
	my $log_offset = -s $node->logfile;
	my $started = $node->start(fail_ok => 1);
	ok(!$started, "$case: server refuses to start");
	$node->stop if $started;
	my $log = slurp_log_since($node, $log_offset);
	like($log, $message_re, "$case: clear message");
	is(fingerprint_diff($before, dir_fingerprint($node->data_dir)), '', "$case: no file of the data directory changed");
	$repair->();
}

my $restore_kek = sub { };
my $restore_keyring = sub { write_file($keyring, $good_keyring) };
my $restore_conf = sub { write_file($conf_file, $good_conf) };

copy($kek, "$kek.good") or die;
$restore_kek = sub { copy("$kek.good", $kek) or die; chmod 0600, $kek };

refuses_start('KEK file missing', qr/FATAL:.*cannot open key encryption key file ".*kek\.pem": No such file/,
	sub { unlink $kek }, $restore_kek);

SKIP:
{
	skip 'root reads any file', 3 if $> == 0;
	refuses_start('KEK file unreadable', qr/FATAL:.*cannot open key encryption key file ".*kek\.pem": Permission denied/,
		sub { chmod 0000, $kek }, sub { chmod 0600, $kek });
}

refuses_start('KEK file is not a key', qr/FATAL:.*does not hold a PEM private key/,
	sub { write_file($kek, "this is not a key\n") }, $restore_kek);

refuses_start('KEK is not RSA', qr/FATAL:.*holds a EC key, not an RSA key/,
	sub { system('openssl', 'genpkey', '-quiet', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', $kek) == 0 or die },
	$restore_kek);

refuses_start('KEK is another RSA key', qr/FATAL:.*is not the key encryption key that wrapped the keyring \(fingerprint/,
	sub { make_kek($kek) }, $restore_kek);

refuses_start('keyring truncated', qr/FATAL:.*keyring is corrupt: (truncated|file is too short)/,
	sub { write_file($keyring, substr($good_keyring, 0, length($good_keyring) / 2)) }, $restore_keyring);

refuses_start('keyring empty', qr/FATAL:.*keyring is corrupt: file is too short \(0 bytes\)/,
	sub { write_file($keyring, '') }, $restore_keyring);

my $flip = sub {
	my ($offset) = @_;
	return sub {
		my $k = $good_keyring;
		substr($k, $offset, 1) = chr(ord(substr($k, $offset, 1)) ^ 0x01);
		write_file($keyring, $k);
	};
};
my $len = length($good_keyring);
# Layout (format 2): ... | wrapped DEK | 16-byte key check value | 8-byte LSN | 32-byte MAC
refuses_start('keyring MAC tampered', qr/FATAL:.*keyring is corrupt: its authentication code does not match/,
	$flip->($len - 1), $restore_keyring);
refuses_start('keyring key check value tampered', qr/FATAL:.*does not match its key check value/,
	$flip->($len - 32 - 8 - 5), $restore_keyring);
refuses_start('keyring wrapped key tampered', qr/FATAL:.*keyring is corrupt: its wrapped data encryption key does not unwrap with the key that wrapped it/,
	$flip->($len - 32 - 8 - 16 - 10), $restore_keyring);
refuses_start('keyring bad magic', qr/FATAL:.*bad magic/, $flip->(0), $restore_keyring);
refuses_start('keyring of an unknown version', qr/FATAL:.*keyring has format version 3, this cmk reads versions 1 to 2/,
	sub { my $k = $good_keyring; substr($k, 8, 2) = "\x00\x03"; write_file($keyring, $k) }, $restore_keyring);

refuses_start('keyring missing while encrypted pages exist',
	qr/FATAL:.*keyring ".*" is missing but the data directory holds encrypted pages/,
	sub { unlink $keyring }, $restore_keyring);

refuses_start('cmk.key_url empty', qr/FATAL:.*cmk\.key_url is not set/,
	sub { $node->append_conf('postgresql.conf', "cmk.key_url = ''\n") }, $restore_conf);
refuses_start('cmk.key_url malformed', qr/cmk\.key_url "foo:bar" is malformed/,
	sub { $node->append_conf('postgresql.conf', "cmk.key_url = 'foo:bar'\n") }, $restore_conf);
refuses_start('cmk.key_url relative path', qr/must name an absolute path/,
	sub { $node->append_conf('postgresql.conf', "cmk.key_url = 'file:kek.pem'\n") }, $restore_conf);

# After all that, the original key and keyring still open every row.
$node->start;
is($node->safe_psql('postgres', $digest_q), $expected, 'every row intact after the refused starts');

# A key_url naming another key than the keyring's is a WARNING, not a switch.
my $other = $node->basedir . '/other.pem';
make_kek($other);
$node->stop;
$node->append_conf('postgresql.conf', "cmk.key_url = 'file:$other'\n");
my $offset = -s $node->logfile;
$node->start;
like(slurp_log_since($node, $offset), qr/WARNING:.*cmk\.key_url is "file:.*other\.pem" but the keyring was wrapped by "file:.*kek\.pem"/,
	'a key_url that differs from the keyring gives a warning naming both');
is($node->safe_psql('postgres', $digest_q), $expected, 'and the keyring\'s key still opens every row');
$node->stop;

done_testing();
