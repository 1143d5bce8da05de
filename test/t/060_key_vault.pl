# A cluster whose KEK is in (the local emulator of) Azure Key Vault:
# first start wraps, restart unwraps, the vault's audit log shows exactly
# those operations by the server's identity; a wrong secret, a missing
# permission or a disabled key refuse start with a clear message and change
# no file; a vault that is down gives retries, then a clear FATAL.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use KvEmulator;

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_060");
my $secret = 'cmk-tap-secret-' . int(rand(1e9));
$kv->admin('add-identity', '--tenant', $kv->tenant, '--client-id', 'pg-server', '--secret', $secret);
$kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');
my $key = $kv->admin('create-key', '--name', 'cmk-kek', '--size', '3072');
my ($version) = $key->{key}{kid} =~ m{/keys/cmk-kek/(\w+)$};
ok($version, "the emulator created key version $version");

my %env = $kv->secret_env('pg-server', $secret);
@ENV{ keys %env } = values %env;

my $node = cmk_node('kv', key_url => $kv->url . '/keys/cmk-kek',
	conf => "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\ncmk.key_unavailable_timeout = '6s'\ncmk.request_timeout = '2s'\n");

sub ops_since
{
	my ($n) = @_;
	my @ops = map { $_->{operation} } grep { ($_->{caller} // '') eq 'pg-server' } $kv->audit;
	return join(',', @ops[ $n .. $#ops ]);
}
sub op_count { return scalar(grep { ($_->{caller} // '') eq 'pg-server' } $kv->audit); }

my $before = op_count();
$node->start;
my $first_ops = ops_since($before);
like($first_ops, qr/^Authentication,(KeyGet,)+KeyWrap,KeyUnwrap$/,
	"first start: sign in, read the key, wrap, verify by unwrap ($first_ops)");
$node->safe_psql('postgres', <<'EOS');
CREATE EXTENSION cmk;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'cmkCANARYkv_' || g FROM generate_series(1, 1000) g;
EOS
is($node->safe_psql('postgres', 'SELECT provider, kek, key_generation FROM cmk_status'),
	'azure-key-vault|' . $kv->url . "/keys/cmk-kek/$version|1", 'cmk_status names the Key Vault key and version');
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
my $expected = $node->safe_psql('postgres', $digest_q);

$node->stop;
$before = op_count();
$node->start;
is(ops_since($before), 'Authentication,KeyUnwrap', 'restart: sign in and one unwrap, nothing else');
is($node->safe_psql('postgres', $digest_q), $expected, 'every row after the restart');
$node->stop;
my @unwraps = grep { $_->{operation} eq 'KeyUnwrap' && ($_->{caller} // '') eq 'pg-server' } $kv->audit;
is($unwraps[-1]{version}, $version, 'the audit log names the key version that unwrapped');

sub refuses_start
{
	my ($case, $message_re, $break, $repair) = @_;
	$break->();
	my $fp = dir_fingerprint($node->data_dir);
	my $offset = -s $node->logfile;
	my $started = $node->start(fail_ok => 1);
	ok(!$started, "$case: server refuses to start");
	$node->stop if $started;
	my $log = slurp_log_since($node, $offset);
	like($log, $message_re, "$case: clear message");
	unlike($log, qr/\Q$secret\E/, "$case: the secret is not in the log");
	is(fingerprint_diff($fp, dir_fingerprint($node->data_dir)), '', "$case: no file changed");
	$repair->();
	return $log;
}

refuses_start('wrong client secret', qr/FATAL:.*(AADSTS7000215|secret)/i,
	sub { $ENV{AZURE_CLIENT_SECRET} = 'not-the-secret' }, sub { $ENV{AZURE_CLIENT_SECRET} = $secret });
refuses_start('unwrapKey permission removed', qr/FATAL:.*(ForbiddenByPolicy|permission|not authorized)/i,
	sub { $kv->admin('revoke', '--client-id', 'pg-server', '--permissions', 'unwrapKey') },
	sub { $kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey') });
refuses_start('key disabled', qr/FATAL:.*disabled/i,
	sub { $kv->admin('set-key', '--name', 'cmk-kek', '--enabled', 'false') },
	sub { $kv->admin('set-key', '--name', 'cmk-kek', '--enabled', 'true') });
my $log = refuses_start('vault unreachable', qr/FATAL:.*(unreachable|connect|Couldn't connect|Connection refused)/i,
	sub { $kv->stop }, sub { $kv->start });
like($log, qr/LOG:.*cmk:.*retr/i, 'vault unreachable: the retries are logged before giving up');

$node->start;
is($node->safe_psql('postgres', $digest_q), $expected, 'every row intact after the refused starts');
$node->stop;
is_deeply([ files_containing('cmkCANARYkv', $node->data_dir) ], [], 'no canary in any file');
$kv->stop;

done_testing();
