# Streaming replication with encrypted WAL and pages:
# - a standby from pg_basebackup -X fetch (WAL read by the backup walsender
#   as stored: ciphertext) replays, holds no canary in its files or WAL, is
#   promoted and written;
# - a backup taken with -X stream has plaintext WAL (pg_basebackup writes
#   what streaming replication sends); pg_cmk wal encrypt fixes that, and a
#   standby starts from it;
# - pg_rewind of the old primary works after pg_cmk wal decrypt, and
#   pg_cmk wal encrypt afterwards leaves no plaintext.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYrepl';
my $primary = cmk_node('primary', checksums => 1,
	init => { allows_streaming => 1 }, conf => "wal_keep_size = 256MB\n");
$primary->start;
$primary->safe_psql('postgres', "CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text);");
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_a' || g FROM generate_series(1, 2000) g");

# Standby from a backup whose WAL was fetched as stored.
$primary->backup('fetch', backup_options => [ '-X', 'fetch' ]);
is_deeply([ files_containing($canary, $primary->backup_dir . '/fetch') ], [], 'backup -X fetch holds no canary');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'fetch', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_b' || g FROM generate_series(2001, 4000) g");
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t'), '4000', 'standby replays the encrypted stream');
$standby->safe_psql('postgres', 'CHECKPOINT');
$standby->stop;
is_deeply([ files_containing($canary, $standby->data_dir) ], [], 'standby: no canary in its data files or WAL');
$standby->start;

# A backup with streamed WAL: plaintext until pg_cmk encrypts it.
$primary->backup('stream');
my $sdir = $primary->backup_dir . '/stream';
my $out = `pg_cmk wal encrypt -D $sdir 2>&1`;
is($?, 0, 'pg_cmk wal encrypt on the -X stream backup');
like($out, qr/(\d+) pages encrypted/, "pg_cmk reports: $out");
my ($encrypted) = $out =~ /(\d+) pages encrypted/;
cmp_ok($encrypted, '>', 0, 'the streamed WAL had plaintext pages, now encrypted');
like(`pg_cmk wal encrypt -D $sdir 2>&1`, qr/ 0 pages encrypted/, 'a second run finds nothing left to encrypt');
is_deeply([ files_containing($canary, $sdir) ], [], 'backup -X stream after pg_cmk: no canary');
my $standby2 = PostgreSQL::Test::Cluster->new('standby2');
$standby2->init_from_backup($primary, 'stream', has_streaming => 1);
$standby2->start;
$primary->wait_for_catchup($standby2);
is($standby2->safe_psql('postgres', 'SELECT count(*) FROM t'), '4000', 'standby from the -X stream backup replays');
$standby2->stop;

# Promote; the old primary diverges, then is rewound.
$standby->promote;
$standby->safe_psql('postgres', 'CHECKPOINT');    # the control file names the new timeline
$standby->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_new' || g FROM generate_series(4001, 5000) g");
$primary->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_lost' || g FROM generate_series(9001, 9500) g");
$primary->stop;

my $pdata = $primary->data_dir;
rewind_and_follow($primary, $standby, sub {
	command_ok([ 'pg_cmk', 'wal', 'decrypt', '-D', $pdata ], 'pg_cmk wal decrypt before pg_rewind');
	my $rewind_out = `pg_rewind --target-pgdata $pdata --source-server '@{[ $standby->connstr('postgres') ]}' 2>&1`;
	is($?, 0, 'pg_rewind of the old primary');
	like($rewind_out, qr/Done!/, 'pg_rewind rewound (not "no rewind required")');
	command_ok([ 'pg_cmk', 'wal', 'encrypt', '-D', $pdata ], 'pg_cmk wal encrypt after pg_rewind');
});
$standby->safe_psql('postgres', "INSERT INTO t SELECT g, '${canary}_c' || g FROM generate_series(5001, 5500) g");
$standby->wait_for_catchup($primary);
is($primary->safe_psql('postgres', 'SELECT count(*) FROM t'), '5500', 'rewound old primary follows the new one');
is($primary->safe_psql('postgres', "SELECT count(*) FROM t WHERE v LIKE '${canary}_lost%'"), '0', 'its diverged rows are gone');
$primary->safe_psql('postgres', 'CHECKPOINT');
$primary->stop;
$standby->stop;
is_deeply([ files_containing($canary, $pdata) ], [], 'rewound old primary: no canary in any file');
is_deeply([ files_containing($canary, $standby->data_dir) ], [], 'promoted standby: no canary in any file');

done_testing();
