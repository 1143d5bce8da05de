# No keystream reuse in temporary-class files: two versions of a short tail
# (a unit shorter than 16 bytes) written at the same place must not XOR to
# the XOR of their plaintexts, as a keystream reused would make them.
#
# pg_stat_statements' texts file is the case found in the field: after a
# reset it is rewritten from offset 0 at the same path, so the same bytes of
# the file hold another query's text. Two shapes:
#   - a file of one short text (10 bytes: a file shorter than one block);
#   - a file of 8192 + 9 bytes (a whole 8 kB unit and a 9-byte tail).
# The plaintext comes from pg_read_binary_file (which reads through cmk, so
# it decrypts), the ciphertext from the raw file.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $node = cmk_node('tail', conf => <<'EOC');
shared_preload_libraries = 'cmk, pg_stat_statements'
pg_stat_statements.track_utility = off
autovacuum = off
EOC
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements; CREATE EXTENSION cmk');
# The first start's sweep runs queries of its own: let it finish first.
$node->poll_query_until('postgres', "SELECT state = 'done' FROM cmk_sweep_progress")
  or die 'the sweep did not finish';
my $texts = $node->data_dir . '/pg_stat_tmp/pgss_query_texts.stat';

sub raw_file
{
	open(my $fh, '<:raw', $texts) or die "open $texts: $!";
	local $/;
	my $data = <$fh>;
	close $fh;
	return $data;
}

# Empties the texts file (the resetting call itself is not tracked), runs
# one query in a new session, returns (plaintext, ciphertext) of the file.
sub one_text
{
	my ($query) = @_;
	$node->safe_psql('postgres', "SET pg_stat_statements.track = none; SELECT pg_stat_statements_reset()");
	$node->safe_psql('postgres', $query);
	my $plain = $node->safe_psql('postgres',
		"SET pg_stat_statements.track = none; SELECT encode(pg_read_binary_file('pg_stat_tmp/pgss_query_texts.stat'), 'hex')");
	return (pack('H*', $plain), raw_file());
}

sub xor_of { my ($a, $b) = @_; return unpack('H*', $a ^ $b); }

# A file shorter than 16 bytes: "SELECT $1\0" and "SELECT $2\0" would do, but
# two different texts of one length are needed; pg_stat_statements keeps
# the text as written, constants replaced.
my ($pa, $ca) = one_text('SELECT 1 AS a');
my ($pb, $cb) = one_text('SELECT 1 AS b');
is($pa, "SELECT \$1 AS a\0", 'first version: the short text, as pg_stat_statements stores it');
is($pb, "SELECT \$1 AS b\0", 'second version: another text of the same length');
is(length($ca), length($pa), 'the file keeps its size (15 bytes)');
isnt($ca, $pa, 'the short file is not stored in plaintext');
isnt(xor_of($ca, $cb), xor_of($pa, $pb),
	'two versions of a file shorter than 16 bytes do not XOR to the XOR of their plaintexts');

# A whole unit and a 9-byte tail: the texts differ only in the tail.
my $pad = 'x' x (8192 + 9 - 1 - length('SELECT /*  */ $1 AS a'));
my ($qa, $qb) = ("SELECT /* $pad */ 1 AS a", "SELECT /* $pad */ 1 AS b");
my ($la, $da) = one_text($qa);
my ($lb, $db) = one_text($qb);
is(length($la), 8192 + 9, 'first version: one whole unit and a 9-byte tail');
is(length($lb), 8192 + 9, 'second version: the same length');
is(length($da), 8192 + 9, 'the file keeps its size');
is(substr($la, 0, 8192), substr($lb, 0, 8192), 'the plaintexts differ only in the tail');
isnt(xor_of(substr($da, 8192), substr($db, 8192)), xor_of(substr($la, 8192), substr($lb, 8192)),
	'two versions of a 9-byte tail do not XOR to the XOR of their plaintexts');

# The texts are still read back right.
$node->safe_psql('postgres', "SET pg_stat_statements.track = none; SELECT pg_stat_statements_reset()");
$node->safe_psql('postgres', 'SELECT 1 AS a');
is($node->safe_psql('postgres', "SELECT query FROM pg_stat_statements WHERE query LIKE 'SELECT \$1 AS %'"),
	'SELECT $1 AS a', 'pg_stat_statements reads the short text back');
$node->stop;
$node->start;
is($node->safe_psql('postgres', "SELECT query FROM pg_stat_statements WHERE query LIKE 'SELECT \$1 AS %'"),
	'SELECT $1 AS a', 'and after a restart (through the encrypted dump)');
$node->stop;

done_testing();
