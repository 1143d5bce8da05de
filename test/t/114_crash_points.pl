# The crash-point suite (issue 18, item 4): kill -9 of the postmaster and
# every child at random moments, under pgbench and a writer that records
# each commit it saw acknowledged, while cmk_rotate_key, cmk_rotate_dek,
# the sweep and retirements happen. After every restart every acknowledged
# row is there; at the end amcheck (heap and btree) and pg_cmk verify are
# clean and pgbench's balances add up.
#
# CMK_CRASHES (default 50) sets the number of crashes, CMK_CRASH_SEED the
# random seed; scripts/crash_soak.sh runs it with 500.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use POSIX ':sys_wait_h';
use Time::HiRes qw(usleep time sleep stat);
use CmkTest;
use CmkLifecycle;

my $crashes = $ENV{CMK_CRASHES} // 50;
my $seed = $ENV{CMK_CRASH_SEED} // int(time);
srand($seed);
diag("crash suite: $crashes crashes, seed $seed");
my $t0 = time;

my $node = cmk_node('crash',
	init => { extra => [ '--wal-segsize=1', '--data-checksums' ] },
	conf => "restart_after_crash = off\nmax_prepared_transactions = 12\ncheckpoint_timeout = 30s\n"
	  . "wal_keep_size = 0\nmin_wal_size = 16MB\nmax_wal_size = 64MB\ncmk.sweep_cost_delay = 0\n"
	  . "log_min_messages = warning\nlog_checkpoints = off\n");
my @keks = ('file:' . $node->basedir . '/kek.pem', 'file:' . make_kek($node->basedir . '/kek2.pem'));
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE TABLE ack (n int PRIMARY KEY); CREATE TABLE kept (v text)');
$node->command_ok([ 'pgbench', '-i', '-q', '-s', '2', '-d', $node->connstr('postgres') ], 'pgbench -i');
# Prepared transactions that live through every crash: their state files
# are re-keyed at each start after a DEK rotation (and some starts are
# crashed in the middle of it).
my $prepared = 10;
$node->safe_psql('postgres', "BEGIN; INSERT INTO kept VALUES ('prepared $_'); PREPARE TRANSACTION 'kept$_';") for 1 .. $prepared;
$node->safe_psql('postgres', 'CHECKPOINT');

my $tmp = $node->basedir;
my $ackfile = "$tmp/acks";
my $stopfile = "$tmp/stop_writer";
my $connstr = $node->connstr('postgres');

# The writer: one INSERT per psql; an acknowledged one is recorded.
my $writer = fork();
die "fork: $!" unless defined $writer;
if ($writer == 0)
{
	open(my $fh, '>>', $ackfile) or die;
	$fh->autoflush(1);
	my $n = 0;
	while (!-e $stopfile)
	{
		$n++;
		if (system("psql -X -q -d '$connstr' -c 'INSERT INTO ack VALUES ($n)' >/dev/null 2>&1") == 0)
		{
			print $fh "$n\n";
		}
		else
		{
			sleep(0.05);
		}
	}
	POSIX::_exit(0);    # no END blocks: they would stop the node
}
END
{
	if ($writer)
	{
		open(my $fh, '>', $stopfile);
		kill 'TERM', $writer;
	}
}

sub acked
{
	open(my $fh, '<', $ackfile) or return ();
	my @n = map { chomp; $_ } <$fh>;
	close $fh;
	return @n;
}

# Every process whose parent is $pid.
sub children
{
	my ($pid) = @_;
	my @kids;
	opendir(my $dh, '/proc') or die;
	for my $p (grep { /^\d+$/ } readdir $dh)
	{
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh>;
		close $fh;
		push @kids, $p if defined $stat && $stat =~ /^\d+ \(.*\) \S (\d+) / && $1 == $pid;
	}
	closedir $dh;
	return @kids;
}

sub kill_all
{
	my ($pid) = @_;
	($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid') unless $pid;
	my @kids = children($pid);
	kill 'KILL', $pid, @kids;
	push @kids, children($pid);    # forked meanwhile
	kill 'KILL', @kids;
	$node->{_pid} = undef;
	# A new postmaster cannot start while a child still holds the old shared memory.
	# (a postmaster we started ourselves is reaped here, else it stays a zombie)
	my $alive = sub { my ($p) = @_; return 0 if waitpid($p, WNOHANG) > 0; return kill(0, $p); };
	wait_for(sub { !grep { $alive->($_) } $pid, @kids }, 60) or die "processes of $pid survived SIGKILL";
}

sub psql_bg
{
	my ($sql) = @_;
	return IPC::Run::start([ 'psql', '-X', '-q', '-d', $connstr, '-c', $sql ], '>', '/dev/null', '2>', '/dev/null');
}

# The oldest generation of the keyring when it is not the current one.
sub oldest_old_generation
{
	my $out = `pg_cmk keyring -D @{[ $node->data_dir ]} 2>&1`;
	my @gens = $out =~ /^generation (\d+)/mg;
	my ($current) = $out =~ /^current generation: (\d+)/m;
	return (@gens && defined $current && $gens[0] != $current) ? $gens[0] : undef;
}

my %done = (rotate_key => 0, rotate_dek => 0, retired => 0, sweeps_interrupted => 0, ends_at_segment => 0, start_crashes => 0, rekey_crashes => 0);
my $dek_since_start = 0;
my $kek_turn = 1;
my $checked = 0;
for my $i (1 .. $crashes)
{
	my $from = -s $node->logfile;
	# Sometimes the crash hits the start itself: opening the keyring, the
	# re-key of surviving files, crash recovery replaying keyring changes.
	my $targeted = $dek_since_start && rand() < 0.7;
	if ($i > 1 && ($targeted || rand() < 0.3))
	{
		# After a DEK rotation the start re-keys the prepared transactions'
		# files one by one: crash as soon as the first one is replaced.
		my %before = map { $_ => join(':', (stat $_)[1, 9]) } glob($node->data_dir . '/pg_twophase/*');
		my $pm = fork();
		die "fork: $!" unless defined $pm;
		if ($pm == 0)
		{
			open(STDOUT, '>>', $node->logfile) or POSIX::_exit(1);
			open(STDERR, '>&', \*STDOUT);
			exec('postgres', '-D', $node->data_dir, '--cluster-name=crash') or POSIX::_exit(1);
		}
		if ($targeted)
		{
			my $changed = sub {
				for my $f (keys %before)
				{
					my $now = join(':', (stat $f)[1, 9]);
					return 1 if $now ne $before{$f};
				}
				return 0;
			};
			my $deadline = time + 5;
			usleep(1000) until $changed->() || time > $deadline;
			$done{rekey_crashes}++ if $changed->();
		}
		else
		{
			sleep(rand(0.6));
		}
		kill_all($pm);
		$done{start_crashes}++;
	}
	$dek_since_start = 0 if $i > 1;
	if ($i > 1 && !$node->start(fail_ok => 1))
	{
		fail("start after crash $i");
		diag(substr(slurp_file($node->logfile), $from));
		last;
	}
	# Every acknowledged commit is there (acknowledged before we look).
	my @acked = acked();
	my %have = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', 'SELECT n FROM ack');
	my @missing = grep { !$have{$_} } @acked;
	if (@missing)
	{
		fail("after crash " . ($i - 1) . ": " . scalar(@missing) . " acknowledged rows missing: @missing[0 .. ($#missing < 9 ? $#missing : 9)]");
		last;
	}
	$checked = scalar(@acked);

	# Now and then, try to retire the oldest generation (between crashes).
	my $old = oldest_old_generation();
	my $retired_now = 0;
	if (defined $old && rand() < 0.4)
	{
		$node->safe_psql('postgres', 'SELECT pg_switch_wal(); SELECT pg_switch_wal(); SELECT pg_switch_wal(); CHECKPOINT;');
		my ($ret) = $node->psql('postgres', "SELECT cmk_retire_generation($old)");
		$retired_now = $ret == 0;
		$done{retired}++ if $retired_now;
	}
	$done{sweeps_interrupted}++ if $node->safe_psql('postgres', 'SELECT state FROM cmk_sweep_progress()') eq 'running';

	# Load, a lifecycle operation in flight, then the crash.
	my $bench = IPC::Run::start([ 'pgbench', '-n', '-c', '2', '-j', '1', '-T', '60', '-d', $connstr ],
		'>', '/dev/null', '2>', '/dev/null');
	# Right after a retirement the next segments are likely recycled ones
	# that held the retired generation: often end the WAL there.
	# The first two crashes hit a DEK and a KEK rotation, so every seed has
	# both (by chance alone, 50 crashes without a DEK rotation: 1 in 70,000).
	my $r = $i == 1 ? 0.45 : $i == 2 ? 0.1 : $retired_now && rand() < 0.7 ? 0.7 : rand();
	my $op;
	if ($r < 0.35)
	{
		$kek_turn = 1 - $kek_turn;
		$op = psql_bg("SELECT cmk_rotate_key('$keks[$kek_turn]')");
		$done{rotate_key}++;
	}
	elsif ($r < 0.55)
	{
		$op = psql_bg('SELECT cmk_rotate_dek()');
		$done{rotate_dek}++;
		$dek_since_start = 1;
	}
	elsif ($r < 0.65)
	{
		$op = psql_bg('CHECKPOINT');
	}
	sleep(0.2 + rand(1.8));
	if ($r >= 0.65 && $r < 0.85)
	{
		# WAL ends exactly at a segment boundary: recovery then reads the
		# first page of the next segment, a recycled one whose stale pages
		# may carry a retired generation.
		$bench->kill_kill;
		$node->psql('postgres', 'SELECT pg_switch_wal()');
		$done{ends_at_segment}++;
	}
	kill_all();
	for my $h (grep { defined } $bench, $op)
	{
		eval { $h->finish; };
		eval { $h->kill_kill; };
	}
}
my $elapsed = time - $t0;

# The end: every row, every index, every page.
$node->start unless $node->{_pid};
my @acked = acked();
my %have = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', 'SELECT n FROM ack');
is(scalar(grep { !$have{$_} } @acked), 0, scalar(@acked) . ' acknowledged rows, all there after the last crash');
open(my $fh, '>', $stopfile) or die;
close $fh;
waitpid($writer, 0);
$node->safe_psql('postgres', "COMMIT PREPARED 'kept$_'") for 1 .. $prepared;
is($node->safe_psql('postgres', 'SELECT count(*) FROM kept'), $prepared,
	'the prepared transactions survived every crash and commit');
ok(wait_sweep_done($node), 'the sweep finishes');
is(amcheck_clean($node, 'postgres'), '', 'amcheck: every heap and btree index is clean');
is($node->safe_psql('postgres', 'SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history)'),
	't', 'pgbench balances add up');
$node->stop;
my $verify = `pg_cmk verify -D @{[ $node->data_dir ]} --check-keys 2>&1`;
is($? >> 8, 0, 'pg_cmk verify --check-keys is clean') or diag($verify);
cmp_ok($done{rotate_key}, '>', 0, "KEK rotations in flight at crashes: $done{rotate_key}");
cmp_ok($done{rotate_dek}, '>', 0, "DEK rotations in flight at crashes: $done{rotate_dek}");
diag(sprintf("%d crashes in %.0f s: %d acknowledged commits checked after every restart, %d KEK and %d DEK rotations started before a crash, %d retirements, %d starts with a sweep running, %d crashes with WAL ending at a segment boundary, %d more crashes during start-up (%d in the middle of re-keying two-phase files)",
		$crashes, $elapsed, scalar(@acked), $done{rotate_key}, $done{rotate_dek}, $done{retired}, $done{sweeps_interrupted}, $done{ends_at_segment}, $done{start_crashes}, $done{rekey_crashes}));
done_testing();
