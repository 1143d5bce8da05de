# cmk_events cannot be emptied or flooded through cmk's functions: a key URL
# is at most 2048 bytes (checked before it is used or logged), events are
# kept by count (the newest 1000 at least, whole lines), and a long
# well-formed line is read back, not dropped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $node = cmk_node('events');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk');
my $first = $node->safe_psql('postgres', q{SELECT event_time || ' ' || event FROM cmk_events ORDER BY event_time LIMIT 1});
like($first, qr/keyring_created/, 'the first event is the keyring\'s creation');

# 1. Oversized key URLs: refused before use, the history stays.
for (1 .. 3)
{
	my ($ret, $out, $err) = $node->psql('postgres', q{SELECT cmk_rotate_key('file:/' || repeat('a', 600000))});
	isnt($ret, 0, "oversized key URL $_ is refused");
	like($err, qr/key URL is longer than 2048 bytes/, 'with a message that does not quote it') if $_ == 1;
	cmp_ok(length($err), '<', 2000, 'the error is short') if $_ == 1;
}
is($node->safe_psql('postgres', q{SELECT event_time || ' ' || event FROM cmk_events ORDER BY event_time LIMIT 1}),
	$first, 'after three 600 kB key URLs cmk_events still has its first row');
my $events = $node->data_dir . '/pg_cmk/events';
cmp_ok(-s $events, '<', 100_000, 'and the events file did not grow by the oversized calls');

# 2. A long well-formed line (written as an older cmk or another tool may have) is read back.
my $long = 'x' x 10_000;
append_to_file($events, "1\tlong_event\t\tok\t$long\n");
is($node->safe_psql('postgres', q{SELECT length(detail) FROM cmk_events WHERE event = 'long_event'}),
	'10000', 'a 10 kB line is read back whole');

# 3. Retention by count: a long history is cut to its newest 1000 whole lines
# when the file passes 4 MB; the newest events are never lost.
$node->stop;
{
	open(my $fh, '>>', $events) or die;
	for my $i (1 .. 5000)
	{
		printf $fh "%d\thistory\t\tok\tline %05d %s\n", 1000 + $i, $i, 'd' x 900;
	}
	close $fh;
}
cmp_ok(-s $events, '>', 4 * 1024 * 1024, 'a history of more than 4 MB');
$node->start;    # appends keyring_opened, which trims
my $rows = $node->safe_psql('postgres',
	q{SELECT count(*), min(substr(detail, 6, 5)), max(substr(detail, 6, 5)) FROM cmk_events WHERE event = 'history'});
is($rows, '1000|04001|05000', 'the newest 1000 history lines are kept, in order, whole');
is($node->safe_psql('postgres', q{SELECT string_agg(event, ',') FROM cmk_events WHERE event <> 'history'
	AND event_time < (SELECT event_time FROM cmk_events WHERE event = 'keyring_opened')}),
	'', 'only older lines beyond the newest 1000 were dropped');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cmk_events WHERE event = 'keyring_opened'}),
	'1', 'and the event that triggered the trim follows them');
my $text = slurp_file($events);
ok($text =~ /\n\z/ && $text !~ /\n\n/, 'every kept line is whole');
ok(!-e "$events.tmp", 'no temporary file is left');

# 4. Every event is also in the server log.
like(slurp_file($node->logfile), qr/cmk: keyring_opened: ok, key file:/, 'events also go to the server log');
$node->stop;
done_testing();
