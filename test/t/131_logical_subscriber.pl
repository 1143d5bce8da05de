# Logical replication between two cmk clusters with different KEKs: the
# subscriber receives the publisher's rows (plaintext on the connection, as
# any replication; use TLS) and stores them encrypted under its own key;
# neither cluster's files hold the canary (the publisher's decoding spills
# to disk on purpose), and replication goes on across a KEK rotation and a
# DEK rotation on either side.
use strict;
use warnings;
use File::Copy;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYlogical';
my $pub = cmk_node('publisher', checksums => 1,
	init => { allows_streaming => 'logical' }, conf => "logical_decoding_work_mem = 64kB\n");
my $sub = cmk_node('subscriber', checksums => 1);
$pub->start;
$sub->start;

for my $n ($pub, $sub)
{
	$n->safe_psql('postgres', "CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text);");
}
my $pub_kek = $pub->safe_psql('postgres', 'SELECT kek FROM cmk_status');
my $sub_kek = $sub->safe_psql('postgres', 'SELECT kek FROM cmk_status');
isnt($pub_kek, $sub_kek, "the two clusters have different KEKs ($pub_kek, $sub_kek)");

$pub->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_a' || g FROM generate_series(1, 3000) g");
$pub->safe_psql('postgres', 'CREATE PUBLICATION p FOR TABLE t');
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION s CONNECTION '" . $pub->connstr . " dbname=postgres' PUBLICATION p");
$sub->wait_for_subscription_sync($pub, 's');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM t'), '3000', 'initial copy arrived');

# A transaction bigger than logical_decoding_work_mem spills to disk.
$pub->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_b' || g || repeat('x', 200) FROM generate_series(3001, 8000) g");
$pub->wait_for_catchup('s');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM t'), '8000', 'streamed changes arrived');
cmp_ok($pub->safe_psql('postgres', "SELECT spill_count FROM pg_stat_replication_slots WHERE slot_name = 's'"),
	'>', 0, 'the publisher spilled decoded changes to disk');

# Rotations on both sides, between batches.
my $kek2 = $pub->basedir . '/kek2.pem';
make_kek($kek2);
$pub->safe_psql('postgres', "SELECT cmk_rotate_key('file:$kek2')");
$pub->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_c' || g FROM generate_series(8001, 9000) g");
$pub->wait_for_catchup('s');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM t'), '9000', 'replication goes on after a KEK rotation on the publisher');

my $sub_kek2 = $sub->basedir . '/kek2.pem';
make_kek($sub_kek2);
$sub->safe_psql('postgres', "SELECT cmk_rotate_key('file:$sub_kek2')");
my $gen = $sub->safe_psql('postgres', 'SELECT cmk_rotate_dek()');
$pub->safe_psql('postgres', "SELECT cmk_rotate_dek()");
$pub->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_d' || g FROM generate_series(9001, 10000) g");
$pub->wait_for_catchup('s');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM t'), '10000',
	'and after a KEK and a DEK rotation on the subscriber and a DEK rotation on the publisher');
is($sub->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE '${canary}%'"), '10000', 'every row intact');

# The subscriber's pages are under its own keys: they decrypt with its
# keyring and not with the publisher's.
$sub->safe_psql('postgres', 'CHECKPOINT');
$pub->safe_psql('postgres', 'CHECKPOINT');
$sub->stop;
$pub->stop;
is_deeply([ files_containing($canary, $pub->data_dir) ], [], 'publisher: no canary in any file (data, WAL, spill)');
is_deeply([ files_containing($canary, $sub->data_dir) ], [], 'subscriber: no canary in any file');

my $sdata = $sub->data_dir;
# initdb's WAL was written before cmk was loaded: whether its segment is
# recycled by now depends on timing (verify exits 3 while it is there), so
# encrypt what is left, as doc/validating.md tells operators to.
command_ok([ 'pg_cmk', 'wal', 'encrypt', '-D', $sdata ], 'pg_cmk wal encrypt on the subscriber');
my ($out, $err);
IPC::Run::run([ 'pg_cmk', 'verify', '-D', $sdata, '--check-keys' ], '>', \$out, '2>', \$err);
is($? >> 8, 0, "the subscriber's files decrypt with its own keyring") or diag("$out $err");
# The same files with the publisher's keyring in place of the subscriber's.
my $swapped = PostgreSQL::Test::Utils::tempdir . '/swapped';
system('cp', '-a', $sdata, $swapped) == 0 or die;
copy($pub->data_dir . '/pg_cmk/keyring', "$swapped/pg_cmk/keyring") or die;
IPC::Run::run([ 'pg_cmk', 'verify', '-D', $swapped, '--check-keys', '--sample', 'all' ], '>', \$out, '2>', \$err);
is($? >> 8, 4, "and not with the publisher's keyring (pages fail to decrypt)") or diag("$out $err");

done_testing();
