# A rotation whose Key Vault fails part way (issue 18, item 2): for each
# Key Vault operation a rotation makes (get, wrapKey, unwrapKey), fail the
# first, second and third of them. Whatever the position, the server stays
# up (no PANIC, no restart), and the keyring is either unchanged (the
# rotation reported an error) or fully changed (it succeeded), on disk and
# in memory alike; a restart opens it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use KvEmulator;

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_112");
my ($base, $v1) = $kv->server_identity_and_key;
sub version_of { return KvEmulator::key_version(@_); }

my $node = cmk_node('primary', key_url => "$base/$v1",
	conf => "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\n"
	  . "cmk.key_check_interval = 3600\ncmk.key_unavailable_timeout = '2s'\ncmk.request_timeout = '1s'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text)');
$node->safe_psql('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
my $pid = $node->safe_psql('postgres', 'SELECT pg_backend_pid()');
my $postmaster = slurp_file($node->data_dir . '/postmaster.pid');
my $keyring_file = $node->data_dir . '/pg_cmk/keyring';

sub state
{
	return $node->safe_psql('postgres', 'SELECT key_generation || \' \' || kek_version FROM cmk_status()');
}

my ($ok, $refused) = (0, 0);
my $kek_version = $v1;
for my $what ('dek', 'kek')
{
	for my $op ('get', 'wrapkey', 'unwrapkey')
	{
		for my $after (0 .. 2)
		{
			my $label = "$what rotation, $op number " . ($after + 1) . ' fails';
			my $before_file = slurp_file($keyring_file);
			my $before = state();
			my $target = $what eq 'kek' ? version_of($kv->admin('rotate-key', '--name', 'kek')) : '';
			my $from = -s $node->logfile;
			$kv->admin('fault', '--op', $op, '--after', $after, '--status', '403', '--count', '1000');
			my ($ret, $out, $err) = $node->psql('postgres',
				$what eq 'dek' ? 'SELECT cmk_rotate_dek()' : "SELECT cmk_rotate_key('$base/$target')");
			$kv->admin('fault', '--clear');
			my $log = substr(slurp_file($node->logfile), $from);
			unlike($log, qr/PANIC|terminating any other active server processes/, "$label: no PANIC");
			is(slurp_file($node->data_dir . '/postmaster.pid'), $postmaster, "$label: the server stayed up");
			if ($ret != 0)
			{
				$refused++;
				like($err, qr/keyring was not changed/, "$label: refused, saying the keyring was not changed");
				is(slurp_file($keyring_file), $before_file, "$label: the keyring file is unchanged");
				is(state(), $before, "$label: the keys in memory are unchanged");
			}
			else
			{
				$ok++;
				$kek_version = $target if $what eq 'kek';
				isnt(slurp_file($keyring_file), $before_file, "$label: the rotation happened, the keyring file changed");
				my ($gen) = state() =~ /^(\d+)/;
				like(`pg_cmk keyring -D @{[ $node->data_dir ]} 2>&1`, qr/generation $gen\b.*current/i,
					"$label: and the file's current generation is the one in memory");
			}
			ok(!-e $node->data_dir . '/pg_cmk/keyring.next', "$label: no staged keyring left behind");
		}
	}
}
cmp_ok($refused, '>', 0, "some faults refused the rotation ($refused)");
cmp_ok($ok, '>', 0, "some rotations completed without the failing operation ($ok)");
is(state() =~ /\Q$kek_version\E$/ ? 1 : 0, 1, 'the last successful KEK rotation is in effect');

my $digest = $node->safe_psql('postgres', "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t");
$node->restart;
is($node->safe_psql('postgres', "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t"), $digest,
	'after a restart the keyring opens and every row reads back');
$node->stop;
$kv->stop;
done_testing();
