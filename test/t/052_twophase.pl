# Two-phase state files (pg_twophase) are encrypted: a prepared transaction
# whose state reached a file (checkpoint) survives an immediate stop and
# commits; its GID, stored in the state file, appears in no file.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $gid = 'cmkCANARYgid_42';
my $conf = "max_prepared_transactions = 5\ncheckpoint_timeout = 1h\n";

sub prepare_and_checkpoint
{
	my ($node) = @_;
	$node->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text)');
	$node->safe_psql('postgres', <<"EOS");
BEGIN;
INSERT INTO t SELECT g, 'cmkCANARY2pc_' || g FROM generate_series(1, 1000) g;
PREPARE TRANSACTION '$gid';
CHECKPOINT;
EOS
	my @files = glob($node->data_dir . '/pg_twophase/*');
	return scalar @files;
}

my $plain = plain_node('plain', conf => $conf);
$plain->start;
is(prepare_and_checkpoint($plain), 1, 'control: the checkpoint wrote a two-phase state file');
ok(scalar(files_containing($gid, $plain->data_dir . '/pg_twophase')) == 1, 'control: without cmk it holds the GID');
$plain->stop;

my $node = cmk_node('twophase', conf => $conf);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk');
is(prepare_and_checkpoint($node), 1, 'the checkpoint wrote a two-phase state file');
is_deeply([ files_containing($gid, $node->data_dir) ], [], 'GID absent from every file of the data directory');

$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', "SELECT gid FROM pg_prepared_xacts"), $gid, 'prepared transaction read back from its encrypted state file');
$node->safe_psql('postgres', "COMMIT PREPARED '$gid'");
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '1000', 'COMMIT PREPARED: every row is there');
$node->stop;
is_deeply([ files_containing('cmkCANARY', $node->data_dir) ], [], 'no canary in any file after commit');

# A transaction prepared before cmk was turned on: its plaintext state file
# is encrypted at the first start with cmk, and it still commits.
my $late = plain_node('late', conf => $conf);
$late->start;
is(prepare_and_checkpoint($late), 1, 'without cmk: a prepared transaction with its state file');
$late->stop;
my $kek = $late->basedir . '/kek.pem';
make_kek($kek);
$late->append_conf('postgresql.conf', "shared_preload_libraries = 'cmk'\ncmk.key_url = 'file:$kek'\n");
$late->start;
is($late->safe_psql('postgres', 'SELECT gid FROM pg_prepared_xacts'), $gid, 'the first start with cmk keeps the prepared transaction');
is_deeply([ files_containing($gid, $late->data_dir . '/pg_twophase') ], [], 'its state file is now encrypted');
$late->restart;
$late->safe_psql('postgres', "COMMIT PREPARED '$gid'");
is($late->safe_psql('postgres', 'SELECT count(*) FROM t'), '1000', 'and it commits after another restart');
$late->stop;

done_testing();
