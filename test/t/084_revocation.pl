# Revocation stops every process that can read or write user data, not only
# sessions: a logical replication subscription on the cluster stops
# applying and a background worker of another extension (a test-only
# module built here, test/bgworker/cmk_test_worker.c) is ended; both stay
# refused while the key is revoked and come back by themselves when it is
# granted again (the logical replication launcher restarts its worker). The
# proof is in the data: no row was applied or written between the
# server_inaccessible and server_accessible events.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use CmkLifecycle;
use KvEmulator;

# The test worker, built for the server under test (not part of cmk).
my $libdir = PostgreSQL::Test::Utils::tempdir_short();
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
chomp(my $inc = `$pg_config --includedir-server`);
my $src = dirname(__FILE__) . '/../bgworker/cmk_test_worker.c';
my ($cout, $cerr);
IPC::Run::run([ 'cc', '-shared', '-fPIC', '-O1', "-I$inc", '-o', "$libdir/cmk_test_worker.so", $src ], '>', \$cout, '2>', \$cerr)
  or BAIL_OUT("cannot build the test worker: $cerr");

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_084");
$kv->server_identity_and_key;

my $pub = plain_node('pub', conf => "wal_level = logical\nmax_wal_senders = 4\nmax_replication_slots = 4\n");
$pub->start;
$pub->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t;');

my $sub = cmk_node('sub', key_url => $kv->url . '/keys/kek', conf => "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file
	  . "'\ncmk.key_check_interval = 1\ncmk.request_timeout = '1s'\ncmk.key_unavailable_timeout = '2s'\n"
	  . "shared_preload_libraries = 'cmk, cmk_test_worker'\ndynamic_library_path = '\$libdir:$libdir'\n"
	  . "wal_retrieve_retry_interval = '500ms'\n");
$sub->start;
my $pubconn = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres', <<"EOS");
CREATE EXTENSION cmk;
CREATE TABLE t (id int PRIMARY KEY, v text, applied_at timestamptz DEFAULT clock_timestamp());
CREATE TABLE worker_log (pid int, at timestamptz);
CREATE SUBSCRIPTION s CONNECTION '$pubconn' PUBLICATION p;
EOS

sub poll { my ($cond) = @_; return wait_for($cond, 60); }
sub sub_q { my ($q) = @_; my ($r, $o) = psql_arg($sub, 'postgres', $q); return $r == 0 ? $o : undef; }

$pub->safe_psql('postgres', "INSERT INTO t VALUES (1, 'before')");
ok(poll(sub { (sub_q('SELECT count(*) FROM t') // '') eq '1' }), 'the subscription applies');
ok(poll(sub { (sub_q('SELECT count(*) > 0 FROM worker_log') // '') eq 't' }), 'the test worker writes');
my $worker_pid = sub_q(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'cmk test worker'});
# The apply worker, not a table synchronization worker (same backend_type;
# it ends by itself once its table is synchronized).
my $apply_pid;
ok(poll(sub { ($apply_pid = sub_q(q{SELECT pid FROM pg_stat_subscription WHERE relid IS NULL AND pid IS NOT NULL}) // '') =~ /^\d+$/ }),
	'the apply worker is found');
ok($worker_pid && $apply_pid, "test worker $worker_pid and apply worker $apply_pid run");

# Revoke: the server becomes inaccessible, and both workers are ended.
$kv->admin('revoke', '--client-id', 'pg-server', '--permissions', 'unwrapKey');
ok(poll(sub { !defined sub_q('SELECT 1') }), 'after the revocation, connections are refused');
ok(poll(sub { !kill(0, $worker_pid) }), 'the test background worker is ended');
ok(poll(sub { !kill(0, $apply_pid) }), 'the logical replication apply worker is ended');

# While inaccessible, the publisher goes on; the launcher and the postmaster
# try their workers again (every 0.5 s and 1 s) and are refused.
$pub->safe_psql('postgres', "INSERT INTO t SELECT g, 'during' FROM generate_series(2, 11) g");
sleep 4;
my $log = slurp_file($sub->logfile);
like($log, qr/server is inaccessible because its key encryption key .* is unavailable: no (query runs|transaction commits|page is read)/,
	'restarted workers are refused');

# Grant again: access returns, and both come back by themselves.
$kv->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');
ok(poll(sub { defined sub_q('SELECT 1') }), 'with the permission back, connections work');
ok(poll(sub { (sub_q('SELECT count(*) FROM t') // '') eq '11' }), 'the subscription resumes and applies what the publisher wrote meanwhile');
ok(poll(sub { (sub_q("SELECT count(*) > 0 FROM worker_log WHERE pid <> $worker_pid") // '') eq 't' }),
	'the test worker is back (a new process)');

my $window = q{(SELECT max(event_time) FROM cmk_events WHERE event = 'server_inaccessible') AND
	(SELECT max(event_time) FROM cmk_events WHERE event = 'server_accessible')};
is(sub_q("SELECT count(*) FROM t WHERE applied_at BETWEEN $window"), '0', 'no row was applied while the key was revoked');
is(sub_q("SELECT count(*) FROM worker_log WHERE at BETWEEN $window"), '0', 'no row was written by the worker meanwhile');
is(sub_q(q{SELECT count(*) FROM t WHERE v = 'during' AND applied_at > (SELECT max(event_time) FROM cmk_events WHERE event = 'server_accessible')}),
	'10', 'the rows written on the publisher meanwhile were applied after access returned');
$sub->stop;
$pub->stop;
$kv->stop;
done_testing();
