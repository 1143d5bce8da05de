# Retiring a key generation with followers (issue 18, item 1): after
# cmk_rotate_dek(), the sweep, a restart and cmk_retire_generation(1), a
# streaming standby, a cascading standby (fed by that standby) and a copy
# that follows through the WAL archive all restart, after a clean stop and
# after a crash, and stay in sync. Their pg_wal keeps recycled segments
# whose stale pages still carry generation 1: those must read as the end of
# WAL (as PostgreSQL reads any stale page), never as an error. Also: the
# retirement is refused while a standby has not replayed past the rotation
# or a replication slot still needs WAL from before it, and an unknown
# generation on a page that belongs where it is is a clear error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use CmkLifecycle;

# 1 MB segments: the test moves through many of them quickly.
my $conf = <<'EOC';
wal_keep_size = 32MB
min_wal_size = 32MB
max_wal_size = 256MB
checkpoint_timeout = 1h
autovacuum = off
log_min_messages = debug1
EOC
my $primary = cmk_node('primary', conf => $conf,
	init => { extra => [ '--wal-segsize=1', '--data-checksums' ], allows_streaming => 1, has_archiving => 1 });
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text)');

my $next_id = 1;
sub write_rows
{
	my ($n) = @_;
	my $last = $next_id + $n - 1;
	$primary->safe_psql('postgres', "INSERT INTO t SELECT g, repeat(md5(g::text), 8) FROM generate_series($next_id, $last) g");
	$next_id = $last + 1;
}
# Ends the current segment (after a small write, so that there is one to
# end); returns the position at its end, which the archive also reaches.
sub switch_wal
{
	$primary->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS filler (x int); INSERT INTO filler VALUES (1)');
	return $primary->safe_psql('postgres', 'SELECT pg_switch_wal()');
}
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";

write_rows(5000);
$primary->backup('b', backup_options => [ '-X', 'fetch' ]);

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$standby->backup('sb', backup_options => [ '-X', 'fetch' ]);
my $cascade = PostgreSQL::Test::Cluster->new('cascade');
$cascade->init_from_backup($standby, 'sb', has_streaming => 1);
$cascade->start;
my $archived = PostgreSQL::Test::Cluster->new('archived');
$archived->init_from_backup($primary, 'b', has_restoring => 1, standby => 1);
$archived->start;
my @followers = ($standby, $cascade, $archived);

# Every follower recovers with its own restartpoints: old segments are
# recycled into future names, where their stale generation-1 pages wait.
sub sync_followers
{
	my $lsn = switch_wal();
	for my $f (@followers)
	{
		ok(wait_replayed($f, $lsn), $f->name . " replayed up to $lsn") or return 0;
	}
	$_->safe_psql('postgres', 'CHECKPOINT') for @followers;
	return 1;
}

for (1 .. 6)
{
	write_rows(2000);
	switch_wal();
}
$primary->safe_psql('postgres', 'CHECKPOINT');
sync_followers();

# A replication slot that has not moved since before the rotation, and a
# standby that has not replayed past it (it applies WAL an hour late), hold
# the retirement back.
$primary->safe_psql('postgres', "SELECT pg_create_physical_replication_slot('old_slot', true)");
$primary->backup('lag', backup_options => [ '-X', 'fetch' ]);
my $lagger = PostgreSQL::Test::Cluster->new('lagger');
$lagger->init_from_backup($primary, 'lag', has_streaming => 1);
$lagger->append_conf('postgresql.conf', "recovery_min_apply_delay = '1h'\n");
write_rows(100);

is($primary->safe_psql('postgres', 'SELECT cmk_rotate_dek()'), '2', 'generation 2 is current');
ok(wait_sweep_done($primary), 'the sweep to generation 2 finished');
$primary->safe_psql('postgres', 'CHECKPOINT');
$primary->restart;    # the old run's temporary files used generation 1

for (1 .. 4)
{
	write_rows(1000);
	switch_wal();
	$primary->safe_psql('postgres', 'CHECKPOINT');
}

 # Started now: a primary restart would end its connection for an hour.
$lagger->start;
ok(wait_for(sub { $primary->safe_psql('postgres', "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'lagger'") eq '1' }),
	'the late standby streams');
my ($ret, $out, $err) = $primary->psql('postgres', 'SELECT cmk_retire_generation(1)');
like($err, qr/replication slot "old_slot" needs WAL from/, 'retirement refused while a replication slot needs WAL from before the rotation');
like($err, qr/standby "lagger" has replayed WAL only up to/, 'and while a standby has not replayed past the rotation');
$primary->safe_psql('postgres', "SELECT pg_drop_replication_slot('old_slot')");
$lagger->append_conf('postgresql.conf', "recovery_min_apply_delay = 0\n");
$lagger->reload;
push @followers, $lagger;
sync_followers();

# WAL kept for standbys that may connect later (wal_keep_size) holds it back.
($ret, $out, $err) = $primary->psql('postgres', 'SELECT cmk_retire_generation(1)');
like($err, qr/key generation 1 still encrypts \d+ pages in \d+ WAL segments/, 'retirement refused while wal_keep_size keeps WAL of generation 1');
$primary->safe_psql('postgres', 'ALTER SYSTEM SET wal_keep_size = 0; SELECT pg_reload_conf()');
switch_wal();
$primary->safe_psql('postgres', 'CHECKPOINT');

sync_followers();
$primary->safe_psql('postgres', 'CHECKPOINT');
($ret, $out, $err) = $primary->psql('postgres', 'SELECT cmk_retire_generation(1)');
is($ret, 0, 'generation 1 is retired once nothing that may be replayed needs it') or diag($err);

write_rows(3000);
ok(sync_followers(), 'every follower replayed the retirement');
my $expected = $primary->safe_psql('postgres', $digest_q);
for my $f (@followers)
{
	is($f->safe_psql('postgres', 'SELECT count(*) FROM cmk_status() WHERE key_generation = 2'), '1',
		$f->name . ' uses generation 2');
	is($f->safe_psql('postgres', $digest_q), $expected, $f->name . ' returns every row');
}

# Stale generation-1 pages sit in the followers' pg_wal (recycled segments):
# the positive control that makes the restarts below meaningful.
sub stale_pages
{
	my ($node, $generation) = @_;
	my $n = 0;
	my $dir = $node->data_dir . '/pg_wal';
	opendir(my $dh, $dir) or die;
	for my $f (grep { /^[0-9A-F]{24}$/ } readdir $dh)
	{
		my $seg = hex(substr($f, 8, 8)) * 256 + hex(substr($f, 16, 8));    # 1 MB segments: 256 per xlogid
		open(my $fh, '<:raw', "$dir/$f") or next;
		my ($page, $off) = ('', 0);
		while (read($fh, $page, 8192) == 8192)
		{
			my ($magic, $info, $tli, $addr) = unpack('v v V Q<', $page);
			$n++ if $magic == 0xD110 && ($info >> 8) == $generation && $addr != $seg * 1048576 + $off;
			$off += 8192;
		}
		close $fh;
	}
	closedir $dh;
	return $n;
}
my $stale = 0;
$stale += stale_pages($_, 1) for @followers, $primary;
cmp_ok($stale, '>', 0, "recycled segments hold $stale stale pages of the retired generation");

# Restarts: clean, then crash (immediate), for every follower and the primary.
for my $mode ('fast', 'immediate')
{
	for my $node (@followers, $primary)
	{
		$node->stop($mode);
		my $from = -s $node->logfile;
		my $started = $node->start(fail_ok => 1);
		ok($started, $node->name . " restarts after a $mode stop")
		  or diag(substr(slurp_file($node->logfile), $from));
		unlike(substr(slurp_file($node->logfile), $from), qr/generation 1 is not in the keyring/,
			$node->name . ': no error about the retired generation');
	}
	write_rows(1000);
	ok(sync_followers(), "after the $mode restarts every follower follows again");
	$expected = $primary->safe_psql('postgres', $digest_q);
	is($_->safe_psql('postgres', $digest_q), $expected, $_->name . " in sync after the $mode restarts") for @followers;
}

# An unknown generation on a page that belongs where it is: a clear error.
# Mark the primary's last written WAL page with generation 9 and crash.
$primary->stop('immediate');
{
	my $dir = $primary->data_dir . '/pg_wal';
	opendir(my $dh, $dir) or die;
	my ($last) = sort { $b cmp $a } grep { /^[0-9A-F]{24}$/ && -s "$dir/$_" } readdir $dh;
	closedir $dh;
	# the first page of the newest segment that holds live pages
	my @segs = sort grep { /^[0-9A-F]{24}$/ } do { opendir(my $d, $dir); readdir $d };
	my $target;
	for my $f (reverse @segs)
	{
		open(my $fh, '<:raw', "$dir/$f") or next;
		my $page;
		read($fh, $page, 8192);
		close $fh;
		my ($magic, $info, $tli, $addr) = unpack('v v V Q<', $page);
		my $seg = hex(substr($f, 8, 8)) * 256 + hex(substr($f, 16, 8));
		if ($magic == 0xD110 && ($info >> 8) == 2 && $addr == $seg * 1048576) { $target = $f; last; }
	}
	ok(defined $target, "a live segment to damage: " . ($target // 'none'));
	open(my $fh, '+<:raw', "$dir/$target") or die;
	my $page;
	read($fh, $page, 8192);
	my $info = unpack('v', substr($page, 2, 2));
	substr($page, 2, 2) = pack('v', ($info & 0xFF) | (9 << 8));
	seek($fh, 0, 0);
	print $fh $page;
	close $fh;
}
my $from = -s $primary->logfile;
ok(!$primary->start(fail_ok => 1), 'crash recovery does not start over a page of an unknown generation');
like(substr(slurp_file($primary->logfile), $from),
	qr/WAL page at [0-9A-F]+\/[0-9A-F]+ .* key generation 9, which the keyring does not hold.*HINT:.*/s,
	'and says which page, which generation, and what to do');

# pg_cmk wal decrypt (before pg_rewind, for pg_waldump) over a pg_wal whose
# recycled segments hold pages of the retired generation: those pages are
# stale, left as they are, not an error. So are the pages of segments a
# standby's own wal_keep_size keeps from before its redo point (the lagger's).
$_->stop for @followers;
my $stale_left = 0;
for my $node (@followers)    # (the primary's WAL now has a damaged page)
{
	my $dir = $node->basedir . '/decrypted';
	mkdir $dir;
	my $out = `pg_cmk wal decrypt -D @{[ $node->data_dir ]} -o $dir 2>&1`;
	is($?, 0, $node->name . ': pg_cmk wal decrypt runs over the stale pages of the retired generation') or diag($out);
	$stale_left += $1 if $out =~ /(\d+) stale \(recycled\) left as stored/;
}
cmp_ok($stale_left, '>', 0, "pg_cmk left $stale_left stale pages as stored");

done_testing();
