# Helpers of the key-lifecycle tests (110-119): waiting without timing
# assertions, the sweep, row digests, amcheck, and replication positions.
package CmkLifecycle;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Cwd 'abs_path';
use File::Basename 'dirname';

our @EXPORT = qw(wait_for wait_sweep_done amcheck_clean wal_position wait_replayed log_has_since fault_library set_faults);

# Polls $cond every 100 ms for at most $seconds (default 180); true if it held.
sub wait_for
{
	my ($cond, $seconds) = @_;
	my $deadline = time + ($seconds // 180);
	while (time < $deadline)
	{
		return 1 if $cond->();
		usleep(100_000);
	}
	return $cond->();
}

sub wait_sweep_done
{
	my ($node, $seconds) = @_;
	return wait_for(sub { $node->safe_psql('postgres', 'SELECT state FROM cmk_sweep_progress()') eq 'done' },
		$seconds // 600);
}

# amcheck over every heap and btree index of the public schema of $db;
# returns '' when clean, else what it found.
sub amcheck_clean
{
	my ($node, $db) = @_;
	$node->safe_psql($db, 'CREATE EXTENSION IF NOT EXISTS amcheck');
	my $heap = $node->safe_psql($db, q{SELECT string_agg(c.relname || ': ' || v.msg, '; ')
	  FROM pg_class c CROSS JOIN LATERAL verify_heapam(c.oid) v
	  WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence = 'p'
	    AND c.relnamespace IN ('public'::regnamespace, 'pg_toast'::regnamespace)});
	return "heap: $heap" if $heap ne '';
	$node->safe_psql($db, q{SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam
	  WHERE a.amname = 'btree' AND c.relpersistence = 'p' AND c.relkind = 'i'
	    AND c.relnamespace = 'public'::regnamespace});
	return '';
}

sub wal_position
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
}

# Waits until $follower has replayed $lsn (streaming or archive recovery).
sub wait_replayed
{
	my ($follower, $lsn, $seconds) = @_;
	return wait_for(
		sub {
			my ($rc, $out) = $follower->psql('postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn");
			return $rc == 0 && $out eq 't';
		},
		$seconds);
}

# Whether the server log written after byte $from matches $re.
sub log_has_since
{
	my ($node, $from, $re) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $from // 0) =~ $re;
}

# The fault-injection library of test/fault (an LD_PRELOAD interposer, never
# part of cmk.so), built once per test run into tmp_check.
sub fault_library
{
	my $src = abs_path(dirname(__FILE__) . '/../fault/cmk_fault.c');
	my $lib = "${PostgreSQL::Test::Utils::tmp_check}/libcmkfault.so";
	return $lib if -f $lib;
	system('cc', '-shared', '-fPIC', '-O2', '-Wall', '-o', $lib, $src, '-ldl', '-lpthread') == 0
	  or die "could not build $src";
	return $lib;
}

# Replaces the fault rules (test/fault/cmk_fault.c) of the servers started
# with CMK_FAULT_FILE=$file; no rules: no faults.
sub set_faults
{
	my ($file, @rules) = @_;
	my $tmp = "$file.new";
	open(my $fh, '>', $tmp) or die "$tmp: $!";
	print $fh map { "$_\n" } @rules;
	close $fh;
	rename($tmp, $file) or die "rename $tmp: $!";
}

1;
