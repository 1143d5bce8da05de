# pg_stat_statements keeps query texts in pg_stat_tmp/pgss_query_texts.stat
# (pwrite/read from its own imports, fwrite on AllocateFile streams) and
# dumps them to pg_stat/pg_stat_statements.stat at shutdown (fwrite/fread).
# With cmk both files are encrypted, concurrent backends' texts stay intact,
# and the texts come back after a restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use IPC::Run;

my $canary = 'cmkcanarypgss';


# pg_stat_statements fingerprints column references (not aliases): one
# distinct statement per column of two 300-column tables.
sub make_tables
{
	my ($node) = @_;
	for my $t ('a', 'b')
	{
		my $cols = join(', ', map { "${canary}_${t}$_ int" } (1 .. 300));
		$node->safe_psql('postgres', "CREATE TABLE ${canary}_$t ($cols)");
	}
}

sub queries
{
	my ($t) = @_;
	return join('', map { "SELECT ${canary}_${t}$_ FROM ${canary}_$t;\n" } (1 .. 300));
}

sub texts_ok
{
	my ($node, $n, $what) = @_;
	my $r = $node->safe_psql('postgres', <<"EOS");
SELECT count(*) FILTER (WHERE query ~ '^SELECT ${canary}_([ab])[0-9]+ FROM ${canary}_\\1\$'),
       count(*) FILTER (WHERE query LIKE '%${canary}%')
FROM pg_stat_statements
EOS
	is($r, "$n|$n", "$what: $n query texts, every one intact");
}

# Control: without cmk the texts file holds the canary.
my $plain = plain_node('plain', conf => "shared_preload_libraries = 'pg_stat_statements'\n");
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
make_tables($plain);
$plain->safe_psql('postgres', queries('a'));
ok(scalar(files_containing($canary, $plain->data_dir . '/pg_stat_tmp')) > 0, 'control: without cmk the texts file holds the canary');
$plain->stop;

for my $order ('cmk, pg_stat_statements', 'pg_stat_statements, cmk')
{
	(my $name = $order) =~ s/\W+/_/g;
	my $node = cmk_node("pgss_$name");
	$node->append_conf('postgresql.conf', "shared_preload_libraries = '$order'\npg_stat_statements.max = 1000\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE EXTENSION pg_stat_statements');
	make_tables($node);
	$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');

	# Two sessions append texts at the same time.
	my @runs;
	for my $t ('a', 'b')
	{
		push @runs, IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
			'<', \queries($t), '>', \my $out, '2>', \my $err);
	}
	ok($_->finish, 'a session of 300 statements finished') for @runs;
	texts_ok($node, 600, "$order, concurrent sessions");
	my $texts = $node->data_dir . '/pg_stat_tmp/pgss_query_texts.stat';
	cmp_ok(-s $texts, '>', 10_000, 'the query texts file exists');
	is_deeply([ files_containing($canary, $node->data_dir . '/pg_stat_tmp') ], [], "$order: the texts file holds no canary");

	$node->stop;
	ok(-s $node->data_dir . '/pg_stat/pg_stat_statements.stat', 'shutdown wrote the dump file');
	is_deeply([ files_containing($canary, $node->data_dir) ], [], "$order: no file holds the canary after shutdown");
	$node->start;
	texts_ok($node, 600, "$order, after restart from the encrypted dump");
	$node->stop;
}

done_testing();
