# Azure credentials stay out of the environment of everything the server
# runs: the postmaster takes AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_
# PASSWORD and IDENTITY_HEADER into locked memory and removes them before
# any child is forked. Checked where an operator or an attacker running as
# postgres would look: the environment of archive_command, restore_command
# and COPY ... TO PROGRAM, a backend's and the postmaster's own environ (read
# through gdb: /proc/<pid>/environ of a backend shows the area PostgreSQL
# reuses for its process title, so it proves nothing), and the postmaster's
# /proc/<pid>/environ (the kernel's copy, which the postmaster keeps). A
# variable the server does not use passes through, as the control. The key
# worker and a rotation in a backend keep signing in after the access token
# expired (the emulator issues 3-second tokens).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use KvEmulator;
use Time::HiRes qw(usleep);

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_121");
my $secret = 'cmkSECRETclient' . int(rand(1e9));
my $password = 'cmkSECRETcertpw' . int(rand(1e9));
my $header = 'cmkSECRETheader' . int(rand(1e9));
my @secrets = ($secret, $password, $header);
$kv->admin('add-identity', '--tenant', $kv->tenant, '--client-id', 'pg-server', '--secret', $secret);
$kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');
$kv->admin('create-key', '--name', 'cmk-kek', '--size', '2048');
$kv->admin('set-token-lifetime', '--seconds', '3');

my %env = $kv->secret_env('pg-server', $secret);
@ENV{ keys %env } = values %env;
$ENV{AZURE_CLIENT_CERTIFICATE_PASSWORD} = $password;
$ENV{IDENTITY_HEADER} = $header;
$ENV{CMK_TEST_VISIBLE} = 'cmkVISIBLEcontrol';

my $out = PostgreSQL::Test::Utils::tempdir();
my $node = cmk_node('env', key_url => $kv->url . '/keys/cmk-kek', conf => <<"EOC");
cmk.auth = 'client-secret'
cmk.ca_file = '@{[ $kv->ca_file ]}'
cmk.key_check_interval = 1
archive_mode = on
wal_level = replica
max_wal_senders = 2
EOC
my $archive = $node->archive_dir;
$node->append_conf('postgresql.conf', "archive_command = 'env > \"$out/archive_env.tmp\" && mv \"$out/archive_env.tmp\" \"$out/archive_env\"; cp \"%p\" \"$archive/%f\"'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk');

# Whether text holds the control and none of the secrets.
sub environment_ok
{
	my ($text, $what) = @_;
	like($text, qr/CMK_TEST_VISIBLE=cmkVISIBLEcontrol/, "$what: the environment is there (control variable)");
	my @found = grep { index($text, $_) >= 0 } @secrets;
	is_deeply(\@found, [], "$what: no secret (client secret, certificate password, identity header)");
	unlike($text, qr/^(AZURE_CLIENT_SECRET|AZURE_CLIENT_CERTIFICATE_PASSWORD|IDENTITY_HEADER)=/m,
		"$what: no secret variable at all");
}

sub wait_for_file
{
	my ($path) = @_;
	for (1 .. 600)
	{
		return slurp_file($path) if -s $path;
		usleep(100_000);
	}
	return '';
}

# COPY ... TO PROGRAM, run by a backend.
$node->safe_psql('postgres', "COPY (SELECT 1) TO PROGRAM 'env > \"$out/copy_env\"'");
environment_ok(slurp_file("$out/copy_env"), 'COPY ... TO PROGRAM');

# archive_command, run by the archiver.
$node->safe_psql('postgres', 'CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g; SELECT pg_switch_wal()');
environment_ok(wait_for_file("$out/archive_env"), 'archive_command');

# A backend's and the postmaster's own environ, as they see it.
my $gdb_script = "$out/environ.gdb";
open(my $fh, '>', $gdb_script) or die;
print $fh <<'EOG';
set $i = 0
while ((char **) environ)[$i] != 0
  printf "%s\n", ((char **) environ)[$i]
  set $i = $i + 1
end
EOG
close $fh;
my $session = $node->background_psql('postgres');
my $backend = $session->query_safe('SELECT pg_backend_pid()');
chomp $backend;
my $postmaster = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
SKIP:
{
	skip 'gdb cannot attach to the server here (not installed, or Yama ptrace_scope > 0)', 6 unless can_attach_gdb();
	for my $p ([ 'a backend', $backend ], [ 'the postmaster', $postmaster ])
	{
		my ($what, $pid) = @$p;
		my $environ = `gdb -p $pid -batch -x '$gdb_script' 2>/dev/null`;
		environment_ok($environ, "$what\'s environ (gdb)");
	}
}
$session->quit;
my $proc = slurp_file("/proc/$postmaster/environ");
$proc =~ s/\0/\n/g;
environment_ok($proc, "the postmaster's /proc/<pid>/environ");

# Signing in keeps working after the token expired: the key worker checks
# every second with 3-second tokens, and a rotation in a backend signs in.
sub sign_ins
{
	return scalar(grep { ($_->{caller} // '') eq 'pg-server' && $_->{operation} eq 'Authentication' } $kv->audit);
}
my $first = sign_ins();
my $ok = 0;
for (1 .. 300)
{
	if (sign_ins() >= $first + 2)
	{
		$ok = 1;
		last;
	}
	usleep(100_000);
}
ok($ok, 'the key worker signed in again after its tokens expired');
ok($node->poll_query_until('postgres', "SELECT last_check_result = 'ok' AND last_success > now() - interval '3 s' FROM cmk_status"),
	'the key worker\'s checks succeed after token expiry')
  or diag($node->safe_psql('postgres', 'SELECT * FROM cmk_status'));
sleep 4;    # the tokens of this backend's predecessors have expired too
is($node->safe_psql('postgres', 'SELECT cmk_rotate_dek()'), '2', 'a DEK rotation in a backend signs in and wraps');
is($node->safe_psql('postgres', 'SELECT key_generation FROM cmk_status'), '2', 'generation 2 is current');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');

# restore_command, run by the startup process of a server restored from a
# base backup and the archive.
$node->backup('bk');
$node->safe_psql('postgres', 'INSERT INTO t SELECT 0; SELECT pg_switch_wal()');
$node->poll_query_until('postgres', "SELECT last_failed_wal IS NULL AND archived_count > 2 FROM pg_stat_archiver");
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'bk');
$restored->append_conf('postgresql.conf', <<"EOC");
archive_mode = off
restore_command = 'env > "$out/restore_env.tmp" && mv "$out/restore_env.tmp" "$out/restore_env"; cp "$archive/%f" "%p"'
recovery_target_action = 'promote'
EOC
$restored->set_recovery_mode;
$restored->start;
environment_ok(wait_for_file("$out/restore_env"), 'restore_command');
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
is($restored->safe_psql('postgres', 'SELECT count(*) FROM t'), '1001', 'the restored server replayed the archive');
$restored->stop;
$node->stop;
$kv->stop;

done_testing();
