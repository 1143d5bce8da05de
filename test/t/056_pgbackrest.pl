# pgBackRest (Debian's package): full backup with page checksum validation,
# WAL archive-push, restore. Validation passes on encrypted pages (their
# checksum is over the ciphertext), the repository holds no canary, and the
# restored cluster returns every row. A page corrupted on purpose is
# reported, so the validation is real.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

plan skip_all => 'pgbackrest is not installed' unless `which pgbackrest` =~ /pgbackrest/;

my $canary = 'cmkCANARYbackrest';
my $node = cmk_node('backrest', checksums => 1, init => { allows_streaming => 1 });
my $base = $node->basedir;
my $br = pgbackrest_stanza($node);
my $repo = "$base/repo";
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text);");
$node->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_' || g FROM generate_series(1, 20000) g");
$node->safe_psql('postgres', 'CHECKPOINT');

my ($rc, $out) = run_shell("$br stanza-create");
is($rc, 0, 'stanza-create') or diag($out);
($rc, $out) = run_shell("$br check");
is($rc, 0, 'pgbackrest check (archive-push works)') or diag($out);
($rc, $out) = run_shell("$br backup --type=full --checksum-page");
is($rc, 0, 'full backup') or diag($out);
unlike($out, qr/invalid page checksum/i, 'page checksum validation finds no invalid page on the encrypted cluster');

$node->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_after_' || g FROM generate_series(20001, 21000) g");
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->safe_psql('postgres', 'CHECKPOINT');
my ($expected) = $node->safe_psql('postgres', "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t");
($rc, $out) = run_shell("$br check");    # archives the current segment and waits for it
is($rc, 0, 'WAL archived after the backup') or diag($out);

is_deeply([ files_containing($canary, $repo) ], [], 'the pgBackRest repository (backup and WAL archive) holds no canary');

# Restore into a new cluster and recover to the end of the archive.
my $restored = PostgreSQL::Test::Cluster->new('restored');
mkdir $restored->data_dir;
chmod 0700, $restored->data_dir;
($rc, $out) = run_shell("$br --pg1-path=@{[ $restored->data_dir ]} restore --type=default");
is($rc, 0, 'restore') or diag($out);
$restored->append_conf('postgresql.conf', "port = @{[ $restored->port ]}\nunix_socket_directories = '@{[ $restored->host ]}'\narchive_mode = off\n");
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'recovery did not finish';
is($restored->safe_psql('postgres', "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t"), $expected,
	'the restored cluster returns every row, including those replayed from the archive');
$restored->stop;
is_deeply([ files_containing($canary, $restored->data_dir) ], [], 'the restored cluster holds no canary');

# Corrupt one byte of an encrypted page: the validation must notice.
$node->stop;
my $relpath = $node->data_dir . '/' . do {
	$node->start;
	my $p = $node->safe_psql('postgres', "SELECT pg_relation_filepath('t')");
	$node->stop;
	$p;
};
flip_page_byte($relpath, 3, 4000);
$node->start;
($rc, $out) = run_shell("$br backup --type=full --checksum-page --log-level-console=warn");
like($out, qr/invalid page checksum/i, 'a corrupted encrypted page is reported by the validation') or diag($out);
$node->stop;

done_testing();
