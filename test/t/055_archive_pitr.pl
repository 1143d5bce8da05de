# WAL archiving with archive_command (a byte copy: the archive holds
# ciphertext) and point-in-time recovery from a base backup plus the archive
# (restore_command copies segments back: still readable): the backup and the
# archive hold no canary, and PITR returns exactly the rows up to the target.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYpitr';
my $node = cmk_node('archiver', checksums => 1, init => { has_archiving => 1, allows_streaming => 1 });
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text);");
$node->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_early' || g FROM generate_series(1, 1000) g");

# The base backup gets its WAL from the archive only (-X none).
$node->backup('base', backup_options => [ '-X', 'none' ]);
$node->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_kept' || g FROM generate_series(1001, 3000) g");
$node->safe_psql('postgres', "SELECT pg_create_restore_point('target')");
$node->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_after' || g FROM generate_series(3001, 4000) g");
my $last = $node->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->poll_query_until('postgres', "SELECT last_archived_wal >= '$last' FROM pg_stat_archiver")
  or die 'archiving timed out';

my $archive = $node->archive_dir;
my @segments = grep { m{/[0-9A-F]{24}$} } glob("$archive/*");
cmp_ok(scalar(@segments), '>=', 2, 'segments archived');
is_deeply([ files_containing($canary, $archive) ], [], 'the WAL archive holds no canary');
is_deeply([ files_containing($canary, $node->backup_dir . '/base') ], [], 'the base backup holds no canary');

my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'base', has_restoring => 1);
$restored->append_conf('postgresql.conf', "recovery_target_name = 'target'\nrecovery_target_action = 'promote'\n");
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'recovery timed out';
is($restored->safe_psql('postgres', 'SELECT count(*), min(id), max(id) FROM t'), '3000|1|3000',
	'PITR returns exactly the rows up to the restore point');
is($restored->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE '${canary}_after%'"), '0', 'and none after it');
$restored->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_new' || g FROM generate_series(5001, 5100) g");
$restored->safe_psql('postgres', 'CHECKPOINT');
$restored->stop;
is_deeply([ files_containing($canary, $restored->data_dir) ], [], 'the restored cluster holds no canary in any file');
$node->stop;

done_testing();
