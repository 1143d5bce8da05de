# High availability with Patroni and etcd (Debian's packages), cmk on every
# node with the same KEK in Key Vault (the emulator). Patroni creates the
# replicas itself (pg_basebackup) and rewinds the old leader itself
# (pg_rewind, use_pg_rewind), pointed at cmk's manager bin directory
# ($pkglibdir/cmk/bin: the WAL tools through cmk's front-end library, every
# other program PostgreSQL's own) by its own postgresql.bin_dir setting.
# Under pgbench and a writer that records every acknowledged commit, with
# synchronous_mode: a switchover, then kill -9 of the leader's Patroni and
# postmaster (a crashed node); a new leader is elected, the old one rejoins
# by rewind, no acknowledged commit is lost, no node's files hold the
# canary; cmk_rotate_key on the leader is followed by every node; revoking
# the key makes every node inaccessible and granting it back brings every
# node back. Failover and rejoin times are reported, never asserted.
use strict;
use warnings;
use File::Path qw(make_path);
use IPC::Run;
use JSON::PP;
use POSIX qw(floor);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use CmkTest;
use KvEmulator;

for my $bin ('patroni', 'patronictl', 'etcd')
{
	plan skip_all => "$bin is not installed (scripts/install_deps.sh installs it)" unless `which $bin` =~ /\S/;
}

my $canary = 'cmkCANARYpatroni';
my $base = PostgreSQL::Test::Utils::tempdir;
my $pkglib = `pg_config --pkglibdir`;
chomp $pkglib;
my $bin_dir = "$pkglib/cmk/bin";
ok(-x "$bin_dir/pg_basebackup" && -x "$bin_dir/pg_rewind", "cmk's manager bin directory is installed ($bin_dir)");

# --- the vault ------------------------------------------------------------
my $kv = KvEmulator->new("$base/kv");
$kv->admin('add-identity', '--tenant', $kv->tenant, '--client-id', 'pg-ha', '--secret', 'ha-secret');
$kv->admin('grant', '--client-id', 'pg-ha', '--permissions', 'get,wrapKey,unwrapKey');
my $kid = $kv->admin('create-key', '--name', 'ha-kek', '--size', '2048')->{key}{kid};
# The tools Patroni runs reach the vault as the server does (the emulator's
# CA is not a system CA).
my %azure = ($kv->secret_env('pg-ha', 'ha-secret'), CMK_CA_FILE => $kv->ca_file);

# --- etcd -----------------------------------------------------------------
my ($etcd_port, $etcd_peer) = (PostgreSQL::Test::Cluster::get_free_port(), PostgreSQL::Test::Cluster::get_free_port());
my $etcd = IPC::Run::start(
	[ 'etcd', '--name', 'e1', '--data-dir', "$base/etcd", '--enable-v2=true',
		'--listen-client-urls', "http://127.0.0.1:$etcd_port", '--advertise-client-urls', "http://127.0.0.1:$etcd_port",
		'--listen-peer-urls', "http://127.0.0.1:$etcd_peer", '--initial-advertise-peer-urls', "http://127.0.0.1:$etcd_peer",
		'--initial-cluster', "e1=http://127.0.0.1:$etcd_peer" ],
	'>', "$base/etcd.log", '2>&1');

# --- three Patroni nodes ----------------------------------------------------
my @nodes;
for my $i (1 .. 3)
{
	my %n = (name => "node$i", pg_port => PostgreSQL::Test::Cluster::get_free_port(),
		api_port => PostgreSQL::Test::Cluster::get_free_port(), dir => "$base/node$i");
	make_path("$n{dir}/sock");
	$n{data} = "$n{dir}/data";
	$n{conf} = "$n{dir}/patroni.yml";
	$n{log} = "$n{dir}/patroni.log";
	open(my $fh, '>', $n{conf}) or die;
	print $fh <<"EOC";
scope: cmk-ha
name: $n{name}
restapi:
  listen: 127.0.0.1:$n{api_port}
  connect_address: 127.0.0.1:$n{api_port}
etcd:
  host: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_keep_size: 256MB
        max_wal_senders: 10
        max_replication_slots: 10
        shared_preload_libraries: cmk
        cmk.key_url: '$kid'
        cmk.auth: client-secret
        cmk.ca_file: '@{[ $kv->ca_file ]}'
        cmk.key_check_interval: 1s
  initdb:
  - data-checksums
  - encoding: UTF8
  - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:$n{pg_port}
  connect_address: 127.0.0.1:$n{pg_port}
  data_dir: $n{data}
  bin_dir: $bin_dir
  pgpass: $n{dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: unused
    replication:
      username: replicator
      password: unused
    rewind:
      username: postgres
      password: unused
  parameters:
    unix_socket_directories: '$n{dir}/sock'
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
  basebackup:
  - checkpoint: fast
EOC
	close $fh;
	push @nodes, \%n;
}

sub start_patroni
{
	my ($n) = @_;
	local %ENV = (%ENV, %azure);
	delete $ENV{PGDATA};
	$n->{run} = IPC::Run::start([ 'patroni', $n->{conf} ], '>>', $n->{log}, '2>&1');
	$n->{started} = time;
}

sub members
{
	my $out = `patronictl -c $nodes[0]{conf} list -f json 2>/dev/null`;
	return {} unless $out =~ /^\s*\[/;
	return { map { $_->{Member} => $_ } @{ decode_json($out) } };
}

sub wait_until
{
	my ($what, $timeout, $cond) = @_;
	my $t0 = time;
	while (time - $t0 < $timeout)
	{
		return time - $t0 if $cond->();
		usleep(200_000);
	}
	diag("timed out waiting for $what: " . `patronictl -c $nodes[0]{conf} list 2>&1`);
	return undef;
}

# The running leader among members() $m.
sub leader_in
{
	my ($m) = @_;
	my ($l) = grep { $m->{$_}{Role} eq 'Leader' && $m->{$_}{State} eq 'running' } keys %$m;
	return $l;
}

sub leader { return leader_in(members()); }

sub node_named { my ($name) = @_; return (grep { $_->{name} eq $name } @nodes)[0]; }

# Every replica replays the leader's timeline with no lag. The timeline
# matters: an old leader that Patroni starts as a secondary before it has
# seen the fork reports "running" with lag 0 (its own checkpoint on the old
# timeline lies ahead of the new leader) until Patroni rewinds it.
sub all_streaming
{
	my $m = members();
	my $l = leader_in($m);
	return 0 unless keys %$m == 3 && defined $l && ($m->{$l}{TL} // '') =~ /^\d+$/;
	for my $r (grep { $_ ne $l } keys %$m)
	{
		return 0 unless $m->{$r}{State} =~ /^(streaming|running)$/ && ($m->{$r}{'Lag in MB'} // 1) == 0
		  && ($m->{$r}{TL} // '') eq $m->{$l}{TL};
	}
	return 1;
}

sub psql_on
{
	my ($n, $sql) = @_;
	my ($out, $err);
	IPC::Run::run([ 'psql', '-X', '-At', '-h', '127.0.0.1', '-p', $n->{pg_port}, '-U', 'postgres', '-d', 'postgres', '-c', $sql ],
		'>', \$out, '2>', \$err);
	chomp $out;
	return wantarray ? ($out, $err, $?) : $out;
}

start_patroni($_) for @nodes;
ok(defined wait_until('a leader and two streaming replicas', 300, \&all_streaming),
	'Patroni bootstraps a leader with cmk and creates both replicas itself');
my $first = leader();
my $L = node_named($first);
note "leader: $first";
psql_on($L, 'CREATE EXTENSION cmk');
is(psql_on($L, 'SELECT provider || \' \' || state FROM cmk_status'), 'azure-key-vault active', 'the leader runs cmk with Key Vault');

# --- load: pgbench and the acknowledged-commit writer -------------------
psql_on($L, "CREATE TABLE secrets (id int PRIMARY KEY, v text); CREATE TABLE acked (id int PRIMARY KEY, v text)");
psql_on($L, "INSERT INTO secrets SELECT g, '${canary}_' || g FROM generate_series(1, 5000) g");
system('pgbench', '-i', '-q', '-s', '2', '-h', '127.0.0.1', '-p', $L->{pg_port}, '-U', 'postgres', 'postgres') == 0
  or die 'pgbench -i failed';

my $hosts = join(',', map { '127.0.0.1' } @nodes);
my $ports = join(',', map { $_->{pg_port} } @nodes);
my $conn = "host=$hosts port=$ports user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2";
open(my $wf, '>', "$base/writer.py") or die;
print $wf <<'EOP';
import sys, time, psycopg2
conn_str, ack_path, stop_path, log_path, canary = sys.argv[1:6]
import os
ack = open(ack_path, 'a', buffering=1)
log = open(log_path, 'a', buffering=1)
i, conn, down_since = 1, None, None
while not os.path.exists(stop_path):
    try:
        if conn is None:
            conn = psycopg2.connect(conn_str)
            conn.autocommit = True
        conn.cursor().execute("INSERT INTO acked VALUES (%s, %s) ON CONFLICT DO NOTHING", (i, canary + str(i)))
        ack.write("%d\n" % i)
        if down_since is not None:
            log.write("outage %.3f %.3f\n" % (down_since, time.time()))
            down_since = None
        i += 1
        time.sleep(0.01)
    except Exception as e:
        if down_since is None:
            down_since = time.time()
            log.write("error at %.3f: %s\n" % (down_since, str(e).strip().replace("\n", " ")))
        try:
            conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.1)
EOP
close $wf;
my $writer = IPC::Run::start([ '/usr/bin/python3', "$base/writer.py", $conn, "$base/acked", "$base/stop", "$base/writer.log", "${canary}_ack" ],
	'>', "$base/writer.out", '2>&1');
# pgbench against whichever node is the leader, started again after each
# switch (it gives up on a lost connection).
my $pgbench = IPC::Run::start(
	[ 'bash', '-c', "while [ ! -f '$base/stop' ]; do PGTARGETSESSIONATTRS=read-write pgbench -n -c 2 -T 5 -h $hosts -p $ports -U postgres postgres; sleep 0.5; done" ],
	'>', "$base/pgbench.out", '2>&1');
sleep 3;

sub outages
{
	my @o;
	open(my $fh, '<', "$base/writer.log") or return @o;
	while (<$fh>) { push @o, [ $1, $2 ] if /^outage (\S+) (\S+)/; }
	return @o;
}

# --- switchover -------------------------------------------------------------
# In synchronous_mode only the synchronous standby may take over.
my $target;
wait_until('a synchronous standby', 60, sub { my $m = members(); ($target) = grep { $m->{$_}{Role} eq 'Sync Standby' } keys %$m; defined $target });
my $t_sw = time;
system('patronictl', '-c', $nodes[0]{conf}, 'switchover', '--leader', $first, '--candidate', $target, '--force') == 0
  or diag('patronictl switchover failed');
ok(defined wait_until("$target to lead", 120, sub { (leader() // '') eq $target }), "switchover: $target leads");
my $switch_rejoin = wait_until('the cluster to stream again', 180, \&all_streaming);
ok(defined $switch_rejoin, "switchover: $first follows $target");
my $sw_time = time - $t_sw;

# --- failover: the leader's node crashes ---------------------------------------
sleep 3;
my $old = node_named($target);
my $pm_pid = (split /\n/, slurp_file("$old->{data}/postmaster.pid"))[0];
my $t_kill = time;
$old->{run}->signal('KILL');                # Patroni itself
kill 'KILL', $pm_pid;                       # and its postmaster
$old->{run}->finish;
my $failover = wait_until('a new leader', 120, sub { my $l = leader(); defined $l && $l ne $target });
ok(defined $failover, 'failover: a new leader is elected');
my $new_leader = leader() // '';
# The writer's first commit after the crash: when writes came back.
my $write_back;
wait_until('the writer to commit again', 60, sub { ($write_back) = grep { $_->[0] > $t_kill - 1 } outages(); defined $write_back });
my $write_outage = $write_back ? $write_back->[1] - $t_kill : undef;

my $log_before = -s $old->{log};
my $t_restart = time;
start_patroni($old);
my $rejoin = wait_until('the old leader to rejoin', 300, \&all_streaming);
ok(defined $rejoin, "the old leader ($target) rejoins as a replica of $new_leader");
my $old_log = substr(slurp_file($old->{log}), $log_before);
like($old_log, qr/running pg_rewind from/, 'Patroni rewound it with pg_rewind (through cmk)');
unlike($old_log, qr/pg_rewind exited with|Failed to rewind|removing data directory/i, 'the rewind succeeded, no re-initialisation');

# --- stop the load; no acknowledged commit lost ---------------------------------
open(my $sf, '>', "$base/stop") or die;
close $sf;
$writer->finish;
$pgbench->finish;
my @tps = slurp_file("$base/pgbench.out") =~ /number of transactions actually processed: (\d+)/g;
my $pgbench_tx = 0;
$pgbench_tx += $_ for @tps;
cmp_ok($pgbench_tx, '>', 0, "pgbench ran against the leaders ($pgbench_tx transactions)");
my @acked = grep { /^\d+$/ } split /\n/, slurp_file("$base/acked");
my $L2 = node_named($new_leader);
my %have = map { $_ => 1 } split /\n/, psql_on($L2, 'SELECT id FROM acked');
my @lost = grep { !$have{$_} } @acked;
cmp_ok(scalar(@acked), '>', 100, scalar(@acked) . ' commits were acknowledged');
is(scalar(@lost), 0, '0 acknowledged commits lost across switchover and failover') or diag("lost: @lost[0..min(9,$#lost)]");
sub min { return $_[0] < $_[1] ? $_[0] : $_[1] }

# --- KEK rotation on the leader, followed by every node ------------------------------
my $kid2 = $kv->admin('rotate-key', '--name', 'ha-kek')->{key}{kid};
is(psql_on($L2, "SELECT cmk_rotate_key('$kid2')"), $kid2, 'cmk_rotate_key on the leader');
for my $n (@nodes)
{
	ok(defined wait_until("$n->{name} to follow the rotation", 60, sub { psql_on($n, 'SELECT kek FROM cmk_status') eq $kid2 }),
		"$n->{name} follows the new key version");
}

# --- revoke: every node inaccessible; grant: every node back ------------------------
$kv->admin('revoke', '--client-id', 'pg-ha', '--permissions', 'get,wrapKey,unwrapKey');
for my $n (@nodes)
{
	ok(defined wait_until("$n->{name} to become inaccessible", 120, sub {
		my (undef, $err) = psql_on($n, 'SELECT 1'); $err =~ /server is inaccessible/ }),
		"$n->{name} refuses connections once the key is revoked");
}
$kv->admin('grant', '--client-id', 'pg-ha', '--permissions', 'get,wrapKey,unwrapKey');
for my $n (@nodes)
{
	ok(defined wait_until("$n->{name} to come back", 180, sub { psql_on($n, 'SELECT 1') eq '1' }),
		"$n->{name} is back once the key is granted again");
}
ok(defined wait_until('the cluster to stream again', 180, \&all_streaming), 'the cluster streams again');
is(psql_on(node_named(leader() // $new_leader), "SELECT count(*) FROM secrets WHERE v LIKE '${canary}%'"), '5000', 'every row intact');

# --- no node's files hold the canary -------------------------------------------------
for my $n (@nodes) { psql_on($n, 'CHECKPOINT'); }
for my $n (@nodes) { $n->{run}->signal('TERM'); }
for my $n (@nodes) { $n->{run}->finish; }
for my $n (@nodes)
{
	is_deeply([ files_containing($canary, $n->{data}) ], [], "$n->{name}: no canary in any file (data, WAL)");
}
$etcd->kill_kill;

my $fmt = sub { defined $_[0] ? sprintf('%.1f s', $_[0]) : 'n/a' };
diag(sprintf('Patroni timings (measured, not asserted): switchover to streaming again %s; failover: new leader %s after the kill, '
	  . 'writes back after %s; rejoin of the old leader by rewind %s after its Patroni restarted',
	$fmt->($sw_time), $fmt->($failover), $fmt->($write_outage), $fmt->($rejoin)));

done_testing();
