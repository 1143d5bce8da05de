# cmk_rotate_key proves possession of the current key and checks everything
# before the keyring changes: a disabled or deleted current key cannot be
# rotated away from (the keyring is unchanged); every successful rotation
# shows, in the vault's audit log, an unwrap by the old version before the
# wrap by the new one; keyring changes refuse transaction blocks, functions
# and DO blocks, so no ROLLBACK leaves a re-wrapped keyring; the right to
# set cmk.key_url is checked first. Vault safety: a key without purge
# protection is refused at rotation and at first start unless postgresql.conf
# allows it, and an expiring key gives a WARNING and an event.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use CmkLifecycle;
use KvEmulator;

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_083");
my ($base, $v1) = $kv->server_identity_and_key;
sub version_of { return KvEmulator::key_version(@_); }
my $kvconf = "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\ncmk.key_unavailable_timeout = '3s'\ncmk.request_timeout = '1s'\n";

# The key worker checks rarely here, so that only the rotations use the key.
my $node = cmk_node('rot', key_url => "$base/$v1", conf => $kvconf . "cmk.key_check_interval = 3600\n");
$node->start;
$node->safe_psql('postgres', <<'EOS');
CREATE EXTENSION cmk;
CREATE ROLE alice LOGIN;
GRANT EXECUTE ON FUNCTION cmk_rotate_key(text) TO alice;
CREATE FUNCTION rotate_in_function(url text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM cmk_rotate_key(url); END $$;
EOS
my $datadir = $node->data_dir;
sub keyring_sum { return sha256_hex(slurp_file("$datadir/pg_cmk/keyring")); }
sub kek_version { return $node->safe_psql('postgres', 'SELECT kek_version FROM cmk_status'); }
sub rotate
{
	my ($url, @opt) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT cmk_rotate_key('$url')", @opt);
	return ($ret, $err);
}

# 1. Possession: the audit log shows the old version's unwrap, then the new version's wrap.
my $v2 = version_of($kv->admin('rotate-key', '--name', 'kek'));
my $n = scalar($kv->audit);
my ($ret, $err) = rotate("$base/$v2");
is($ret, 0, 'rotation to a new version') or diag($err);
my @ops = map { "$_->{operation}:$_->{version}:$_->{result}" } grep { ($_->{caller} // '') eq 'pg-server' } ($kv->audit)[ $n .. scalar($kv->audit) - 1 ];
my $trail = join(' ', @ops);
like($trail, qr/KeyUnwrap:$v1:Success.*KeyWrap:$v2:Success.*KeyUnwrap:$v2:Success/,
	"the audit log shows the old version's unwrap before the new one's wrap ($trail)");
is(kek_version(), $v2, 'the keyring is wrapped by the new version');

# 2. A disabled current version cannot be rotated away from.
my $v3 = version_of($kv->admin('rotate-key', '--name', 'kek'));
$kv->admin('set-key', '--name', 'kek', '--version', $v2, '--enabled', 'false');
my $ring = keyring_sum();
($ret, $err) = rotate("$base/$v3");
isnt($ret, 0, 'with the current version disabled, rotation fails');
like($err, qr/the key that wraps the keyring, \Q$base\/$v2\E, did not unwrap key generation 1/, 'because the current key did not unwrap');
is(keyring_sum(), $ring, 'and the keyring is unchanged');
is(kek_version(), $v2, 'cmk_status still shows the current version');
$kv->admin('set-key', '--name', 'kek', '--version', $v2, '--enabled', 'true');

# 3. A deleted current key cannot be rotated away from either (to another key of the same vault).
$kv->admin('create-key', '--name', 'kek2', '--size', '2048');
$kv->admin('delete-key', '--name', 'kek');
($ret, $err) = rotate($kv->url . '/keys/kek2');
isnt($ret, 0, 'with the current key deleted, rotation to another key fails');
is(keyring_sum(), $ring, 'and the keyring is unchanged');
$kv->admin('recover-key', '--name', 'kek');

# 4. Revoked permission: fails, nothing changed.
$kv->admin('revoke', '--client-id', 'pg-server', '--permissions', 'unwrapKey');
($ret, $err) = rotate("$base/$v3");
like($err, qr/did not unwrap key generation 1.*unwrapKey/s, 'with unwrapKey revoked, rotation fails naming the permission');
is(keyring_sum(), $ring, 'and the keyring is unchanged');
$kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');

# 5. Privileges first, then: no transaction block, function or DO block.
my $auto = slurp_file("$datadir/postgresql.auto.conf");
($ret, $err) = rotate("$base/$v3", extra_params => [ '-U', 'alice' ]);
like($err, qr/permission denied to set parameter "cmk.key_url"/, 'EXECUTE without the right to set cmk.key_url: refused');
is(keyring_sum(), $ring, 'before the keyring changed');
my ($r2, $o2, $e2) = $node->psql('postgres', "BEGIN; SELECT cmk_rotate_key('$base/$v3'); ROLLBACK;", extra_params => [ '-U', 'alice' ]);
like($e2, qr/cannot run inside a transaction block/, 'BEGIN ... ROLLBACK by a role without that right: refused');
is(keyring_sum(), $ring, 'ROLLBACK leaves no re-wrapped keyring');
is(slurp_file("$datadir/postgresql.auto.conf"), $auto, 'and cmk.key_url agrees with it');
for my $case (
	[ "BEGIN; SELECT cmk_rotate_key('$base/$v3'); ROLLBACK;", qr/cannot run inside a transaction block/, 'superuser in BEGIN ... ROLLBACK' ],
	[ "SELECT rotate_in_function('$base/$v3')", qr/cannot be executed from a function or another statement/, 'from a PL/pgSQL function' ],
	[ "DO \$\$BEGIN PERFORM cmk_rotate_key('$base/$v3'); END\$\$", qr/cannot be executed from a function or another statement/, 'from a DO block' ],
	[ "BEGIN; SELECT cmk_rotate_dek(); ROLLBACK;", qr/cmk_rotate_dek\(\) cannot run inside a transaction block/, 'cmk_rotate_dek in BEGIN' ],
	[ "BEGIN; SELECT cmk_retire_generation(1); ROLLBACK;", qr/cmk_retire_generation\(\) cannot run inside a transaction block/, 'cmk_retire_generation in BEGIN' ],
	[ "EXPLAIN ANALYZE SELECT cmk_rotate_dek()", qr/cannot be executed from a function or another statement/, 'cmk_rotate_dek under EXPLAIN ANALYZE' ])
{
	my ($r, $o, $e) = $node->psql('postgres', $case->[0]);
	like($e, $case->[1], "$case->[2]: refused");
}
# Several statements in one query string run as an implicit transaction block.
my ($out, $perr);
IPC::Run::run([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', "SELECT 1; SELECT cmk_rotate_key('$base/$v3')" ],
	'>', \$out, '2>', \$perr);
like($perr, qr/cannot run inside a transaction block/, 'two statements in one query string: refused');
is(keyring_sum(), $ring, 'none of them changed the keyring');
is($node->safe_psql('postgres', 'SELECT key_generation FROM cmk_status'), '1', 'nor added a generation');

# 6. Vault safety at rotation: a key without purge protection is refused.
my $vp = version_of($kv->admin('create-key', '--name', 'purgeable', '--size', '2048', '--recovery-level', 'Recoverable+Purgeable'));
($ret, $err) = rotate($kv->url . "/keys/purgeable/$vp");
like($err, qr/is in a vault without purge protection \(recoveryLevel "Recoverable\+Purgeable"\)/, 'rotation to a key without purge protection is refused');
like($err, qr/cmk.require_purge_protection = off/, 'the hint says how the owner can allow it');
is(keyring_sum(), $ring, 'and the keyring is unchanged');
$node->safe_psql('postgres', "ALTER SYSTEM SET cmk.key_check_interval = 1; SELECT pg_reload_conf()");

# 7. An expiring key: WARNING and event from the key worker.
$kv->admin('set-key', '--name', 'kek', '--version', $v2, '--exp', '+' . (10 * 86400));
# Up to 2 minutes: the check runs every second, plus a sign-in and a request on a loaded machine.
ok(wait_for(sub { $node->safe_psql('postgres', q{SELECT count(*) FROM cmk_events WHERE event = 'key_expiring'}) > 0 }, 120),
	'a key expiring in 10 days gives a key_expiring event');
like(slurp_file($node->logfile), qr/WARNING:  cmk: the key encryption key \Q$base\/$v2\E expires soon\n.*DETAIL:  It expires at .*, in (9\.9|10\.0) days/,
	'and a WARNING in the log');
$node->stop;

# 8. Vault safety at first start: refused, unless postgresql.conf allows it.
my $fresh = cmk_node('fresh', key_url => $kv->url . '/keys/purgeable', conf => $kvconf);
ok(!$fresh->start(fail_ok => 1), 'a first start with a key without purge protection is refused');
like(slurp_file($fresh->logfile), qr/FATAL:  cmk: cannot open the keyring: key .*purgeable.* is in a vault without purge protection/,
	'with a clear message');
ok(!-e $fresh->data_dir . '/pg_cmk/keyring', 'and no keyring is written');
$fresh->append_conf('postgresql.conf', "cmk.require_purge_protection = off\n");
$fresh->start;
is($fresh->safe_psql('postgres', 'SELECT 1'), '1', 'with cmk.require_purge_protection = off in postgresql.conf it starts');
$fresh->stop;
$kv->stop;
done_testing();
