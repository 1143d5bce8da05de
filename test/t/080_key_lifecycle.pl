# The customer-managed key's lifecycle against (the emulator of) Key Vault:
# rotation to a new version (then the old one disabled: still starts),
# following auto-rotation, revocation (inaccessible within the check
# interval, sessions ended, data unchanged) and recovery without restart,
# transient faults that never make it inaccessible, a standby following a
# rotation and promoted, privileges, and the events and audit trail.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use CmkLifecycle;
use KvEmulator;

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_080");
my ($base, $v1) = $kv->server_identity_and_key;
sub version_of { return KvEmulator::key_version(@_); }

my $conf = "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\n"
  . "cmk.key_check_interval = 1\ncmk.key_unavailable_timeout = '3s'\ncmk.request_timeout = '1s'\n"
  . "autovacuum = off\nwal_keep_size = 128MB\n";
my $node = cmk_node('primary', key_url => $base, conf => $conf, init => { allows_streaming => 1 });
$node->start;
$node->safe_psql('postgres', <<'EOS');
CREATE EXTENSION cmk;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'cmkCANARYlife_' || g FROM generate_series(1, 2000) g;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT cmk_key_admin TO bob;
EOS
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
my $expected = $node->safe_psql('postgres', $digest_q);
sub kek_version { return $node->safe_psql('postgres', 'SELECT kek_version FROM cmk_status'); }
is(kek_version(), $v1, 'the keyring is wrapped by the first version');

# Standby with the same keyring (from the base backup).
$node->backup('b', backup_options => [ '-X', 'fetch' ]);
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;

# 1. Rotation to a new version, by hand; then the old version is disabled.
my $v2 = version_of($kv->admin('rotate-key', '--name', 'kek'));
my ($ret, $out, $err) = $node->psql('postgres', "SELECT cmk_rotate_key('$base/$v2')", extra_params => [ '-U', 'alice' ]);
like($err, qr/permission denied for function cmk_rotate_key/, 'a role without cmk_key_admin cannot rotate');
is($node->safe_psql('postgres', "SELECT cmk_rotate_key('$base/$v2')", extra_params => [ '-U', 'bob' ]),
	"$base/$v2", 'a member of cmk_key_admin rotates to the new version');
is(kek_version(), $v2, 'cmk_status shows the new version');
like(slurp_file($node->data_dir . '/postgresql.auto.conf'), qr/cmk\.key_url = '\Q$base\/$v2\E'/,
	'cmk.key_url follows with ALTER SYSTEM');
($ret, $out, $err) = $node->psql('postgres', "SELECT cmk_rotate_key('$base/00000000000000000000000000000000')");
like($err, qr/cannot rotate to .*The keyring was not changed/s, 'rotating to a missing version fails cleanly');
is(kek_version(), $v2, 'and the keyring is untouched');

$node->wait_for_catchup($standby);
ok(wait_for(sub { $standby->safe_psql('postgres', 'SELECT kek_version FROM cmk_status') eq $v2 }),
	'the standby follows the rotation through WAL');
is(slurp_file($standby->data_dir . '/pg_cmk/keyring'), slurp_file($node->data_dir . '/pg_cmk/keyring'),
	'the standby has the same keyring file');

$kv->admin('set-key', '--name', 'kek', '--version', $v1, '--enabled', 'false');
$node->restart;
is($node->safe_psql('postgres', $digest_q), $expected, 'with the old version disabled, restart unwraps with the new one');

# 2. Following auto-rotation: cmk.key_url without version.
$node->append_conf('postgresql.conf', "cmk.key_url = '$base'\ncmk.follow_latest_version = on\n");
$node->safe_psql('postgres', "ALTER SYSTEM RESET cmk.key_url");
$node->restart;
my $v3 = version_of($kv->admin('rotate-key', '--name', 'kek'));
ok(wait_for(sub { kek_version() eq $v3 }), 'the key worker follows a new version created by rotation');
my @wraps = grep { $_->{operation} eq 'KeyWrap' && ($_->{caller} // '') eq 'pg-server' } $kv->audit;
is($wraps[-1]{version}, $v3, 'the audit log shows the wrap with the new version');
$node->safe_psql('postgres', "ALTER SYSTEM SET cmk.follow_latest_version = off; SELECT pg_reload_conf()");

# 3. Revocation: inaccessible within the check interval, sessions ended.
$node->safe_psql('postgres', 'CHECKPOINT');
my $base_fp = dir_fingerprint($node->data_dir . '/base');
my $session = $node->background_psql('postgres', on_error_stop => 0);
$session->query_safe('SELECT 1');
$kv->admin('revoke', '--client-id', 'pg-server', '--permissions', 'unwrapKey');
ok(wait_for(sub { my ($r) = psql_arg($node, 'postgres', 'SELECT 1'); $r != 0 }),
	'after the permission is removed, new connections are refused');
($ret, $out, $err) = psql_arg($node, 'postgres', 'SELECT 1');
like($err, qr/server is inaccessible because its key encryption key \Q$base\/$v3\E is unavailable/, 'the message names the key');
like($err, qr/unwrapKey/, 'and the reason');
my $session_out = eval { $session->query('SELECT 2') } // '';
unlike($session_out, qr/^2$/m, 'the existing session was ended');
eval { $session->quit };
is(fingerprint_diff($base_fp, dir_fingerprint($node->data_dir . '/base')), '', 'data files unchanged while inaccessible');

$kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');
ok(wait_for(sub { my ($r) = psql_arg($node, 'postgres', 'SELECT 1'); $r == 0 }),
	'with the permission back, connections work again without a restart');
is($node->safe_psql('postgres', $digest_q), $expected, 'every row intact');

# 4. Transient faults for 30 s never make it inaccessible.
$kv->admin('fault', '--op', 'unwrapkey', '--status', '503', '--count', '1000');
my $ok = 1;
my $saw_transient = 0;
for (1 .. 30)
{
	my ($r, $o) = $node->psql('postgres', 'SELECT state, last_check_result FROM cmk_status');
	$ok = 0 if $r != 0 || $o !~ /^active/;
	$saw_transient = 1 if $o =~ /transient/;
	$kv->admin('fault', '--clear') if $_ == 10;
	$kv->admin('fault', '--op', 'unwrapkey', '--status', '429', '--retry-after', '1', '--count', '1000') if $_ == 10;
	$kv->admin('fault', '--clear') if $_ == 20;
	$kv->admin('fault', '--op', 'get', '--latency-ms', '1500', '--count', '1000') if $_ == 20;
	sleep 1;
}
$kv->admin('fault', '--clear');
ok($ok, '30 s of 503, 429 and timeouts: the server stays accessible');
ok($saw_transient, 'and cmk_status shows the transient errors');

# 5. The standby is promoted and restarts with the rotated keyring.
$node->wait_for_catchup($standby);
ok(wait_for(sub { $standby->safe_psql('postgres', 'SELECT kek_version FROM cmk_status') eq $v3 }),
	'the standby followed the automatic rotation too');
$standby->promote;
$standby->restart;
is($standby->safe_psql('postgres', 'SELECT kek_version FROM cmk_status'), $v3, 'the promoted standby restarts with the rotated keyring');
is($standby->safe_psql('postgres', $digest_q), $expected, 'and reads every row');
$standby->stop;

# 6. The trail: events and the vault's audit log.
my $events = $node->safe_psql('postgres', q{SELECT string_agg(event || ':' || outcome, ' ' ORDER BY event_time) FROM cmk_events});
like($events, qr/keyring_created:ok.*kek_rotated:ok.*kek_rotation:failed.*kek_rotated:ok.*server_inaccessible:key unavailable.*server_accessible:key available again/s,
	'cmk_events shows each step');
my @ops = map { $_->{operation} } grep { ($_->{caller} // '') eq 'pg-server' } $kv->audit;
cmp_ok(scalar(grep { $_ eq 'KeyUnwrap' } @ops), '>', 10, 'the audit log shows the checks\' unwraps');
cmp_ok(scalar(grep { $_ eq 'KeyWrap' } @ops), '>=', 3, 'and the wraps of each rotation');
$node->stop;
is_deeply([ files_containing('cmkCANARYlife', $node->data_dir) ], [], 'no canary in any file');

# 7. cmk.on_key_unavailable = shutdown stops the server instead.
my $sd = cmk_node('shutdown', conf => "cmk.key_check_interval = 1\ncmk.on_key_unavailable = shutdown\n");
$sd->start;
$sd->safe_psql('postgres', 'CREATE EXTENSION cmk');
rename($sd->basedir . '/kek.pem', $sd->basedir . '/kek.pem.away') or die;
ok(wait_for(sub { !-f $sd->data_dir . '/postmaster.pid' }), 'with on_key_unavailable = shutdown the server shuts down');
like(slurp_file($sd->logfile), qr/server_shutdown/, 'and says why');
rename($sd->basedir . '/kek.pem.away', $sd->basedir . '/kek.pem') or die;
$sd->_update_pid(0);
$sd->start;
is($sd->safe_psql('postgres', 'SELECT state FROM cmk_status'), 'active', 'it starts again once the key is back');
$sd->stop;
$kv->stop;

done_testing();
