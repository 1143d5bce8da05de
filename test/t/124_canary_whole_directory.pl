# No file holds user data in plaintext: one workload writes a canary through
# every path PostgreSQL stores data by (heap, TOAST, every index access
# method, large objects, temp spills of sorts and hash joins, NOTIFY with a
# backlog, serializable and prepared transactions, logical decoding that
# spills, pg_stat_statements), and every file under the data directory
# (the server log is outside it here), of a base backup and of the WAL
# archive is searched for the canary: while sessions hold a spilled sort,
# a NOTIFY backlog and a prepared transaction open, after a crash and
# restart, and after a clean shutdown.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use File::Find;
use Time::HiRes qw(usleep);

my $canary = 'cmkCANARYwhole';

my $node = cmk_node('whole', conf => <<'EOC');
shared_preload_libraries = 'cmk, pg_stat_statements'
shared_buffers = 1MB
work_mem = 64kB
logical_decoding_work_mem = 64kB
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4
max_prepared_transactions = 4
archive_mode = on
autovacuum = off
restart_after_crash = on
track_commit_timestamp = on
EOC
my $archive = $node->archive_dir;
$node->append_conf('postgresql.conf', "archive_command = 'cp \"%p\" \"$archive/%f\"'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE EXTENSION pg_stat_statements');
$node->poll_query_until('postgres', "SELECT state = 'done' FROM cmk_sweep_progress")
  or die 'the sweep did not finish';

# Files holding the canary under the given directories, relative names.
sub holders
{
	my ($what, @dirs) = @_;
	my @hits = files_containing($canary, @dirs);
	is_deeply(\@hits, [], "$what: no file holds the canary");
	return @hits;
}

# Data: a value with the canary, unique per row and not compressible away.
my $value = "'${canary}_' || md5(g::text) || '_' || md5((g * 7)::text)";
$node->safe_psql('postgres', <<"EOS");
CREATE TABLE t (id int PRIMARY KEY, v text, long text, doc tsvector, words text[]);
ALTER TABLE t ALTER COLUMN long SET STORAGE EXTERNAL;
INSERT INTO t SELECT g, $value, repeat($value, 200), to_tsvector('simple', $value), ARRAY[$value]
  FROM generate_series(1, 3000) g;
CREATE INDEX t_btree ON t USING btree (v);
CREATE INDEX t_hash ON t USING hash (v);
CREATE INDEX t_gist ON t USING gist (doc);
CREATE INDEX t_gin ON t USING gin (words);
CREATE INDEX t_spgist ON t USING spgist (v);
CREATE INDEX t_brin ON t USING brin (v);
SELECT lo_from_bytea(0, convert_to(repeat('${canary}_large_object ', 500), 'UTF8'));
CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t WHERE id % 3 = 0;
CREATE UNLOGGED TABLE u AS SELECT id, v FROM t;
SELECT 1 AS ${canary}_in_a_query_text;
EOS
my $reference = $node->safe_psql('postgres', 'SELECT count(*), md5(string_agg(v || long, \',\' ORDER BY id)) FROM t');

# Logical decoding of a transaction larger than logical_decoding_work_mem
# (it spills to pg_replslot/<slot>/*.spill).
$node->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('s1', 'test_decoding')");
$node->safe_psql('postgres', "INSERT INTO t SELECT g, $value, 'x', NULL, NULL FROM generate_series(3001, 6000) g");
like($node->safe_psql('postgres', "SELECT count(*) FROM pg_logical_slot_get_changes('s1', NULL, NULL) WHERE data LIKE '%$canary%'"),
	qr/^[1-9]\d*$/, 'logical decoding returned the rows');

# A catalog rewritten while a logical slot exists leaves rewrite mappings
# (pg_logical/mappings); decoding past a checkpoint's running-transactions
# record serializes the slot's snapshot (pg_logical/snapshots).
$node->safe_psql('postgres', 'CHECKPOINT');
$node->safe_psql('postgres', "SELECT count(*) FROM pg_logical_slot_get_changes('s1', NULL, NULL)");
$node->safe_psql('postgres', 'VACUUM FULL pg_class');

# Serializable transactions that conflict.
for my $i (1 .. 3)
{
	$node->safe_psql('postgres', "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM t WHERE v > '${canary}_8'; UPDATE t SET v = v WHERE id = $i; COMMIT");
}

# Held open while the data directory and a base backup are searched:
# a spilled sort behind a cursor, a listener that does not read its
# notifications while others pile up behind it, a prepared transaction.
my $sorter = $node->background_psql('postgres');
$sorter->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$sorter->query_safe('SELECT pg_export_snapshot()');    # pg_snapshots/<file>
$sorter->query_safe('DECLARE c CURSOR FOR SELECT left(v, 20) FROM t ORDER BY md5(long), v');
like($sorter->query_safe('FETCH 1 FROM c'), qr/$canary/, 'a spilled sort is open');
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN ch; BEGIN; SELECT 1');
$node->safe_psql('postgres', "SELECT pg_notify('ch', '${canary}_notify_' || g || repeat('.', 200)) FROM generate_series(1, 3000) g");
cmp_ok(-s $node->data_dir . '/pg_notify/0000', '>', 65536, 'the NOTIFY backlog reached pg_notify on disk');
$node->safe_psql('postgres', "BEGIN; INSERT INTO t VALUES (0, '${canary}_prepared', 'p'); PREPARE TRANSACTION 'p1'");
$node->safe_psql('postgres', 'SELECT count(*) FROM t a JOIN t b USING (v)');    # a multi-batch hash join
$node->safe_psql('postgres', 'CHECKPOINT');
ok(scalar(glob($node->data_dir . '/pg_twophase/*')), 'the prepared transaction has a state file');
my $tmp_bytes = 0;
find({ no_chdir => 1, wanted => sub { $tmp_bytes += -s $_ if -f $_ } }, $node->data_dir . '/base/pgsql_tmp')
  if -d $node->data_dir . '/base/pgsql_tmp';
cmp_ok($tmp_bytes, '>', 100_000, 'the sort spilled to pgsql_tmp');
# The other files the search must cover (README "What is encrypted where").
for my $f ('pg_snapshots/*', 'pg_logical/mappings/map-*', 'pg_logical/snapshots/*.snap', 'pg_replslot/s1/state',
	'pg_commit_ts/0000', 'pg_subtrans/0000', 'pg_multixact/offsets/0000', 'global/pg_internal.init',
	'base/*/pg_internal.init', 'pg_xact/0000')
{
	ok(scalar(grep { -s $_ } glob($node->data_dir . "/$f")), "$f exists and is searched");
}

holders('while a sort, a NOTIFY backlog and a prepared transaction are open', $node->data_dir);
$node->backup('bk', backup_options => [ '-X', 'fetch' ]);
holders('a base backup (pg_basebackup -X fetch)', $node->backup_dir . '/bk');
ok(-f $node->backup_dir . '/bk/backup_label', 'the base backup has its backup_label');

# The queue read back from pg_notify: every notification, intact.
my $received = $listener->query_safe('COMMIT; SELECT 1');
is(scalar(() = $received =~ /payload "${canary}_notify_\d+\.{200}"/g), 3000, 'the listener received all 3000 notifications intact');

# A crash (a backend killed with SIGKILL: every process restarts) and the
# restart, then a clean shutdown (pg_stat_statements writes its dump).
$sorter->quit;
$listener->quit;
my $victim = $node->background_psql('postgres');
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
chomp $pid;
kill 'KILL', $pid;
eval { $victim->quit };
$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not restart';
$node->safe_psql('postgres', "COMMIT PREPARED 'p1'");
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE id <= 3000 AND id > 0'), '3000', 'the rows survived the crash');
holders('after the crash and restart', $node->data_dir);
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->poll_query_until('postgres', 'SELECT last_failed_wal IS NULL AND archived_count > 0 FROM pg_stat_archiver');
$node->stop;
ok(-s $node->data_dir . '/pg_stat/pgstat.stat', 'the shutdown wrote the cumulative statistics');
holders('after a clean shutdown', $node->data_dir);
holders('the WAL archive', $archive);

# dynamic_shared_memory_type = mmap would keep parallel queries' data in
# files under pg_dynshmem/ that cmk cannot encrypt: refused at start.
$node->append_conf('postgresql.conf', "dynamic_shared_memory_type = mmap\n");
my $offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1), 'dynamic_shared_memory_type = mmap: the server refuses to start');
like(slurp_log_since($node, $offset), qr/FATAL:  cmk cannot run with dynamic_shared_memory_type = mmap.*\n.*DETAIL:.*pg_dynshmem/,
	'with a message that says why');

done_testing();
