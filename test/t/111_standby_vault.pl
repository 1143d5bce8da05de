# Keyring changes replayed on a standby that cannot reach Key Vault
# (issue 18, item 2):
# - a KEK rotation (same DEKs, new wrapping) replays without the vault: the
#   standby checks the new wrapping's key check values against the keys it
#   holds;
# - a DEK rotation needs the vault there (to unwrap the new generation):
#   replay waits, saying why and what to do, the standby stays up and
#   answers queries, and it catches up once the vault answers again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use CmkLifecycle;
use KvEmulator;

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_111");
my ($base, $v1) = $kv->server_identity_and_key;
sub version_of { return KvEmulator::key_version(@_); }

my $conf = "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\n"
  . "cmk.key_check_interval = 3600\ncmk.key_outage_tolerance = 3600\n"
  . "cmk.key_unavailable_timeout = '2s'\ncmk.request_timeout = '1s'\nwal_keep_size = 64MB\n";
my $primary = cmk_node('primary', key_url => "$base/$v1", conf => $conf, init => { allows_streaming => 1 });
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text)');
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
$primary->backup('b', backup_options => [ '-X', 'fetch' ]);
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
sub status { my ($node, $col) = @_; return $node->safe_psql('postgres', "SELECT $col FROM cmk_status()"); }

# ---- 1. KEK rotation, replayed while the vault is down ----
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
my $v2 = version_of($kv->admin('rotate-key', '--name', 'kek'));
$primary->safe_psql('postgres', "SELECT cmk_rotate_key('$base/$v2')");
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1001, 2000) g");
my $lsn = wal_position($primary);
$kv->stop;
my $from = -s $standby->logfile;
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok(wait_replayed($standby, $lsn), 'with the vault down, the standby replays the KEK rotation');
is(status($standby, 'kek_version'), $v2, 'and uses the new KEK version');
is(slurp_file($standby->data_dir . '/pg_cmk/keyring'), slurp_file($primary->data_dir . '/pg_cmk/keyring'),
	'its keyring file is the primary\'s');
is($standby->safe_psql('postgres', $digest_q), $primary->safe_psql('postgres', $digest_q), 'every row replayed');
unlike(substr(slurp_file($standby->logfile), $from), qr/PANIC|cannot replay the keyring change/,
	'no vault needed, nothing waited');

# ---- 2. DEK rotation, replayed while the vault is down: waits ----
$kv->start;
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
is($primary->safe_psql('postgres', 'SELECT cmk_rotate_dek()'), '2', 'the primary rotates the DEK');
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(2001, 3000) g");
$lsn = wal_position($primary);
$kv->stop;
$from = -s $standby->logfile;
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok(wait_for(sub { log_has_since($standby, $from, qr/cannot replay the keyring change at [0-9A-F\/]+ yet: could not unwrap key generation 2/) }),
	'replay of the DEK rotation waits for the vault');
my $log = substr(slurp_file($standby->logfile), $from);
like($log, qr/HINT:.*Key Vault.*reachable from this server.*continues by itself/s, 'and says what to do');
sleep 3;    # several retries
$log = substr(slurp_file($standby->logfile), $from);
is(scalar(() = $log =~ /cannot replay the keyring change/g), 1, 'the reason is logged once, not at every retry');
unlike($log, qr/PANIC|startup process .* terminated/, 'no PANIC, the startup process keeps running');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t'), '2000', 'the standby still answers queries (as of before the rotation)');
is(status($standby, 'key_generation'), '1', 'and still uses generation 1');

$kv->start;
ok(wait_replayed($standby, $lsn), 'once the vault answers, the standby catches up');
is(status($standby, 'key_generation'), '2', 'with generation 2');
like(substr(slurp_file($standby->logfile), $from), qr/the keyring change at [0-9A-F\/]+ is replayed/, 'and says so');
is($standby->safe_psql('postgres', $digest_q), $primary->safe_psql('postgres', $digest_q), 'every row replayed');

# ---- 3. A restart of the standby replays nothing again ----
$standby->restart;
is(status($standby, 'key_generation'), '2', 'after a restart the standby starts with generation 2');
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(3001, 3100) g");
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', $digest_q), $primary->safe_psql('postgres', $digest_q), 'and follows');

$standby->stop;
$primary->stop;
$kv->stop;
done_testing();
