# pg_regress of the SQL API (sql/ + expected/) against a cluster running cmk.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $node = cmk_node('regress');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE regression');

my $outdir = "${PostgreSQL::Test::Utils::tmp_check}/regress";
mkdir $outdir;
my $rc = system($ENV{PG_REGRESS}, '--use-existing', '--bindir=',
	'--host=' . $node->host, '--port=' . $node->port,
	'--inputdir=.', "--outputdir=$outdir", 'cmk');
if ($rc != 0 && -f "$outdir/regression.diffs")
{
	diag(slurp_file("$outdir/regression.diffs"));
}
is($rc, 0, 'pg_regress: sql/cmk.sql gives expected/cmk.out');
$node->stop;

done_testing();
