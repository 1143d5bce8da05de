# Validating encryption: pg_cmk verify on stopped clusters and backups, and
# cmk_verify() on a running server.
# - A cluster created and filled without cmk: verify finds only plaintext
#   (exit 3). Started with cmk (sweep throttled to a crawl): the old table is
#   still plaintext and listed, the new one encrypted; every file where the
#   canary is visible is one verify calls plaintext. After the sweep and
#   pg_cmk wal encrypt: exit 0 and no canary anywhere.
# - A cluster created with cmk (data checksums, a tablespace, two-phase and
#   pg_stat_statements files): every user relation is encrypted; cmk_verify()
#   after CHECKPOINT agrees with pg_cmk verify after stop; --check-keys finds
#   nothing wrong; backups with -X fetch and -X stream verify (the streamed
#   WAL is plaintext until pg_cmk wal encrypt).
# - Tampered pages and files: --check-keys exits 4 naming the block (bad
#   header after decryption, checksum mismatch over the ciphertext); without
#   it the marks alone say nothing is wrong.
use strict;
use warnings;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYverify';

# pg_cmk verify: (exit status, stdout, stderr).
sub verify
{
	my ($dir, @args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pg_cmk', 'verify', '-D', $dir, @args ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# pg_cmk verify --json: (exit status, report), the report with files by path.
sub verify_json
{
	my ($dir, @args) = @_;
	my ($rc, $out, $err) = verify($dir, '--json', @args);
	my $j = eval { decode_json($out) };
	if (!$j)
	{
		fail("pg_cmk verify --json @args on $dir gives JSON: $err");
		return ($rc, { files => [], classes => {}, problems => [] });
	}
	$j->{by_path} = { map { $_->{path} => $_ } @{ $j->{files} } };
	return ($rc, $j);
}

sub class_of
{
	my ($j, $class) = @_;
	return $j->{classes}{$class};
}

# Files of relation $path (its forks) in a report.
sub forks_of
{
	my ($j, $path) = @_;
	return grep { $_->{path} =~ m{^\Q$path\E(_fsm|_vm|_init)?$} } @{ $j->{files} };
}

sub wal_encrypt
{
	my ($dir, $what) = @_;
	command_ok([ 'pg_cmk', 'wal', 'encrypt', '-D', $dir ], "$what: pg_cmk wal encrypt");
}

#### 1. A cluster created and filled without cmk, then started with cmk.

my $pre = plain_node('pre', conf => "autovacuum = off\n");
$pre->start;
$pre->safe_psql('postgres', <<"EOS");
CREATE TABLE pre_t (id int PRIMARY KEY, v text);
INSERT INTO pre_t SELECT g, '${canary}_pre_' || g FROM generate_series(1, 20000) g;
EOS
my $pre_path = $pre->safe_psql('postgres', "SELECT pg_relation_filepath('pre_t')");
my $pre_pages = $pre->safe_psql('postgres', "SELECT pg_relation_size('pre_t') / 8192");
$pre->stop;
my $pdir = $pre->data_dir;

my ($rc, $j) = verify_json($pdir);
is($rc, 3, 'without cmk: exit 3');
ok(!$j->{keyring}{present}, 'without cmk: no keyring');
is(class_of($j, 'data_pages')->{encrypted}, 0, 'without cmk: no encrypted page');
cmp_ok(class_of($j, 'data_pages')->{plaintext}, '>', 1000, 'without cmk: every catalog page is plaintext');
cmp_ok(class_of($j, 'wal')->{plaintext}, '>', 0, 'without cmk: plaintext WAL pages');
is(class_of($j, 'wal')->{encrypted}, 0, 'without cmk: no encrypted WAL page');
is($j->{by_path}{$pre_path}{plaintext}, $pre_pages, "without cmk: all $pre_pages pages of pre_t plaintext");
my ($rc_keys, $out, $err) = verify($pdir, '--check-keys');
is($rc_keys, 1, 'without cmk: --check-keys is an error');
like($err, qr/there is no keyring/, 'without cmk: --check-keys says there is no keyring');

# With cmk, the sweep throttled to about one page a second: it cannot
# rewrite pre_t's pages before the stop.
my $kek = make_kek($pre->basedir . '/kek.pem');
$pre->append_conf('postgresql.conf', <<"EOC");
shared_preload_libraries = 'cmk'
cmk.key_url = 'file:$kek'
cmk.sweep_cost_limit = 1
cmk.sweep_cost_delay = 1000
EOC
$pre->start;
$pre->safe_psql('postgres', <<"EOS");
CREATE EXTENSION cmk;
CREATE TABLE post_t AS SELECT g AS id, '${canary}_post_' || g AS v FROM generate_series(1, 20000) g;
CHECKPOINT;
EOS
my $post_path = $pre->safe_psql('postgres', "SELECT pg_relation_filepath('post_t')");
$pre->stop;

($rc, $j) = verify_json($pdir);
is($rc, 3, 'first start with cmk: exit 3 (pages written before cmk)');
ok($j->{keyring}{present}, 'first start with cmk: keyring present');
my $pre_plain = $j->{by_path}{$pre_path}{plaintext};
cmp_ok($pre_plain, '>', $pre_pages - 40, "first start with cmk: pre_t still plaintext ($pre_plain of $pre_pages pages)");
is($j->{by_path}{$post_path}{plaintext}, 0, 'first start with cmk: post_t has no plaintext page');
cmp_ok($j->{by_path}{$post_path}{encrypted}, '>', 50, 'first start with cmk: post_t encrypted');
cmp_ok(class_of($j, 'wal')->{encrypted}, '>', 0, 'first start with cmk: encrypted WAL pages');
note(sprintf('cluster filled before cmk, after a first start: data pages %d encrypted, %d plaintext; WAL %d encrypted, %d plaintext',
		map { class_of($j, $_->[0])->{ $_->[1] } } ([ 'data_pages', 'encrypted' ], [ 'data_pages', 'plaintext' ],
			[ 'wal', 'encrypted' ], [ 'wal', 'plaintext' ])));

# Wherever the canary is visible, verify says plaintext; where it says
# encrypted only, the canary is not there.
my %plain_file = map { $_->{path} => 1 } grep { $_->{plaintext} > 0 } @{ $j->{files} };
my @hits = map { substr($_, length($pdir) + 1) =~ s/\.\d+$//r } files_containing($canary, "$pdir/base", "$pdir/global");
ok(scalar(@hits) > 0, 'first start with cmk: the canary is visible in some relation file');
is_deeply([ grep { !$plain_file{$_} } @hits ], [], 'every relation file showing the canary is reported plaintext');
ok(!grep({ $_ eq $post_path } @hits), 'post_t shows no canary');

my ($rc_list, $list) = verify($pdir, '--list');
is($rc_list, 3, '--list: exit 3');
like($list, qr/^\s+data_pages\s+\Q$pre_path\E\s+\d+\s+\d+\s+\d+$/m, '--list names pre_t');
unlike($list, qr/\Q$post_path\E/, '--list does not name post_t');
like($list, qr/Result: PLAINTEXT: \d+ data pages/, 'the text report ends with what is plaintext');

($rc, $j) = verify_json($pdir, '--check-keys', '--sample', 'all');
is($rc, 3, 'mixed cluster, --check-keys: still exit 3, not 4');
is($j->{problem_count}, 0, 'mixed cluster, --check-keys: every encrypted page decrypts to a sane header');
cmp_ok($j->{check_keys}{data_pages_decrypted}, '>', 50, 'mixed cluster, --check-keys: pages were decrypted');
cmp_ok($j->{check_keys}{wal_pages_decrypted}, '>', 0, 'mixed cluster, --check-keys: WAL pages were decrypted');

# The sweep at full speed, then the WAL of before cmk encrypted offline.
$pre->append_conf('postgresql.conf', "cmk.sweep_cost_limit = 2000\ncmk.sweep_cost_delay = 0\n");
$pre->start;
$pre->poll_query_until('postgres', "SELECT state = 'done' FROM cmk_sweep_progress")
  or die 'the sweep did not finish';
$pre->safe_psql('postgres', 'CHECKPOINT');
$pre->stop;
($rc, $j) = verify_json($pdir);
is(class_of($j, 'data_pages')->{plaintext}, 0, 'after the sweep: no plaintext data page');
is($j->{by_path}{$pre_path}{plaintext}, 0, 'after the sweep: pre_t encrypted');
is($rc, class_of($j, 'wal')->{plaintext} > 0 ? 3 : 0, 'after the sweep: exit status follows the WAL that is left');
wal_encrypt($pdir, 'after the sweep');
($rc, $j) = verify_json($pdir, '--check-keys');
is($rc, 0, 'after the sweep and pg_cmk wal encrypt: exit 0');
is(class_of($j, 'wal')->{plaintext}, 0, 'after pg_cmk wal encrypt: no plaintext WAL page');
is_deeply([ files_containing($canary, "$pdir/base", "$pdir/global", "$pdir/pg_wal") ], [],
	'and the canary is nowhere in base/, global/ or pg_wal/');

# Checksums off: a changed header block shows only after decryption.
flip_byte("$pdir/$post_path", 8192 + 20);
($rc) = verify($pdir);
is($rc, 0, 'tampered page, marks only: exit 0 (nothing to see without a key)');
($rc, $j) = verify_json($pdir, '--check-keys', '--sample', 'all');
is($rc, 4, 'tampered page, --check-keys: exit 4');
is(scalar(@{ $j->{problems} }), 1, 'tampered page, --check-keys: one problem');
is($j->{problems}[0]{path} . ':' . $j->{problems}[0]{block}, "$post_path:1", 'the problem names the file and block');
like($j->{problems}[0]{what}, qr/bad page header/, 'the problem: a bad header after decryption');

#### 2. A cluster created with cmk.

my $node = cmk_node(
	'fresh',
	checksums => 1,
	init => { allows_streaming => 1 },
	conf => "shared_preload_libraries = 'cmk, pg_stat_statements'\n"
	  . "max_prepared_transactions = 2\nautovacuum = off\n");
my $ts_dir = $node->basedir . '/ts';
mkdir $ts_dir or die "mkdir $ts_dir: $!";
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION cmk; CREATE EXTENSION pg_stat_statements;');
$node->poll_query_until('postgres', "SELECT state = 'done' FROM cmk_sweep_progress")
  or die 'the sweep did not finish';
$node->safe_psql('postgres', "CREATE TABLESPACE ts LOCATION '$ts_dir'; CREATE DATABASE app;");
$node->safe_psql('app', <<"EOS");
CREATE TABLE t (id int PRIMARY KEY, v text, arr text[], big text);
ALTER TABLE t ALTER big SET STORAGE EXTERNAL;
INSERT INTO t SELECT g, '${canary}_' || g, ARRAY['${canary}_' || (g % 100)], repeat('${canary}_toast', 200)
  FROM generate_series(1, 5000) g;
CREATE INDEX t_v ON t (v);
CREATE INDEX t_arr ON t USING gin (arr);
CREATE SEQUENCE s; SELECT nextval('s');
CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM t WHERE id % 2 = 0;
CREATE UNLOGGED TABLE u AS SELECT id, v FROM t WHERE id % 3 = 0;
CREATE INDEX u_v ON u (v);
CREATE TABLE in_ts TABLESPACE ts AS SELECT id, v FROM t WHERE id % 5 = 0;
VACUUM t;
CREATE TABLE t2pc (v text);
BEGIN; INSERT INTO t2pc VALUES ('${canary}_2pc'); PREPARE TRANSACTION '${canary}_gid';
SELECT count(*) FROM t WHERE v = '${canary}_42';
EOS
my $user_rel_query = <<'EOQ';
SELECT pg_relation_filepath(c.oid) FROM pg_class c
WHERE c.oid >= 16384 AND c.relkind IN ('r', 'i', 't', 'm', 'S') AND c.relpersistence <> 't' ORDER BY 1
EOQ
my @user_rels = map { split /\n/, $node->safe_psql($_, $user_rel_query) } qw(postgres app);
my $t_path = $node->safe_psql('app', "SELECT pg_relation_filepath('t')");
ok(scalar(@user_rels) >= 10, 'cmk cluster: user relations: ' . scalar(@user_rels));

# cmk_verify() after CHECKPOINT on the running server.
$node->safe_psql('postgres', 'CHECKPOINT');
my %sql;
for my $line (split /\n/, $node->safe_psql('postgres', 'SELECT file_class, relation, encrypted, plaintext, empty FROM cmk_verify()'))
{
	my ($class, $rel, $e, $p, $z) = split /\|/, $line;
	$sql{$class}{$rel} = { encrypted => $e, plaintext => $p, empty => $z };
}
is($node->safe_psql('postgres', "SELECT sum(plaintext) FROM cmk_verify() WHERE file_class = 'data_pages'"), '0',
	'cmk_verify(): no plaintext data page after the sweep');
my @user_sql = map { my $p = $_; grep { m{^\Q$p\E(_fsm|_vm|_init)?$} } keys %{ $sql{data_pages} } } @user_rels;
is_deeply([ grep { $sql{data_pages}{$_}{plaintext} != 0 } @user_sql ], [], 'cmk_verify(): user relations have no plaintext page');
ok(exists $sql{data_pages}{$t_path} && $sql{data_pages}{$t_path}{encrypted} > 50, 'cmk_verify(): t is encrypted');
ok((grep { m{^pg_tblspc/\d+/PG_15_\d+/\d+/\d+$} } keys %{ $sql{data_pages} }), 'cmk_verify(): sees the tablespace');
is(scalar(keys %{ $sql{twophase} // {} }), 1, 'cmk_verify(): one two-phase file');
is((values %{ $sql{twophase} })[0]{encrypted}, 1, 'cmk_verify(): the two-phase file is encrypted');
ok(exists $sql{pgss_query_texts}{'pg_stat_tmp/pgss_query_texts.stat'}, 'cmk_verify(): pg_stat_statements texts');
my $denied = $node->psql('postgres', "CREATE ROLE nobody; SET ROLE nobody; SELECT * FROM cmk_verify()", stderr => \my $deny_err);
like($deny_err, qr/permission denied for function cmk_verify/, 'cmk_verify() is not for PUBLIC');

# Backups of the running server.
my $ts_fetch = $node->basedir . '/ts_fetch';
my $ts_stream = $node->basedir . '/ts_stream';
$node->backup('fetch', backup_options => [ '-X', 'fetch', '-T', "$ts_dir=$ts_fetch" ]);
$node->backup('stream', backup_options => [ '-X', 'stream', '-T', "$ts_dir=$ts_stream" ]);
$node->stop;
my $dir = $node->data_dir;

# pg_cmk verify after the stop agrees with cmk_verify() before it.
($rc, $j) = verify_json($dir, '--check-keys', '--sample', 'all');
is($j->{problem_count}, 0, 'cmk cluster, --check-keys: no problem');
cmp_ok($j->{check_keys}{checksums_verified}, '>', 1000, 'cmk cluster: ciphertext checksums verified');
is($j->{check_keys}{checksums_verified}, class_of($j, 'data_pages')->{encrypted}, 'one checksum per encrypted page');
cmp_ok($j->{check_keys}{files_decrypted}, '>=', 2, 'two-phase and pg_stat_statements dump decrypted to their magic');
is(class_of($j, 'twophase')->{encrypted}, 1, 'pg_cmk verify: the two-phase file is encrypted');
is(class_of($j, 'pgss_dump')->{encrypted}, 1, 'pg_cmk verify: the pg_stat_statements dump is encrypted');
my %offline = map { $_->{path} => $_ } grep { $_->{class} eq 'data_pages' } @{ $j->{files} };
is_deeply([ sort keys %offline ], [ sort keys %{ $sql{data_pages} } ], 'same relation files in cmk_verify() and pg_cmk verify');
my @differ = grep {
	my $o = $offline{$_};
	my $s = $sql{data_pages}{$_};
	!$s || $o->{encrypted} != $s->{encrypted} || $o->{plaintext} != $s->{plaintext} || $o->{empty} != $s->{empty}
} sort keys %offline;
is_deeply(\@differ, [], 'same counts for every relation file in cmk_verify() and pg_cmk verify');
my $sql_wal_plain = 0;
$sql_wal_plain += $_->{plaintext} for values %{ $sql{wal} };
cmp_ok(class_of($j, 'wal')->{plaintext}, '<=', $sql_wal_plain, 'no WAL page became plaintext after cmk_verify()');
is_deeply([ map { $_->{path} } grep { $_->{plaintext} } map { forks_of($j, $_) } @user_rels ], [],
	'pg_cmk verify: user relations have no plaintext page');
is(class_of($j, 'data_pages')->{plaintext}, 0, 'pg_cmk verify: no plaintext data page');
is($rc, class_of($j, 'wal')->{plaintext} > 0 ? 3 : 0, 'cmk cluster: exit status follows the WAL of initdb');
note(sprintf('fresh cmk cluster after its sweep: data pages %d encrypted, %d plaintext, %d new; WAL %d encrypted, %d plaintext, %d empty; exit %d',
		(map { class_of($j, 'data_pages')->{$_} } qw(encrypted plaintext empty)),
		(map { class_of($j, 'wal')->{$_} } qw(encrypted plaintext empty)), $rc));
wal_encrypt($dir, 'cmk cluster');
($rc) = verify($dir);
is($rc, 0, 'cmk cluster after pg_cmk wal encrypt: exit 0');

# The backups.
my $fetch = $node->backup_dir . '/fetch';
($rc, $j) = verify_json($fetch, '--check-keys', '--sample', 'all');
is($j->{problem_count}, 0, 'backup -X fetch, --check-keys: no problem');
is(class_of($j, 'data_pages')->{plaintext}, 0, 'backup -X fetch: no plaintext data page');
cmp_ok(class_of($j, 'wal')->{encrypted}, '>', 0, 'backup -X fetch: encrypted WAL');
is(class_of($j, 'twophase')->{encrypted}, 1, 'backup -X fetch: the two-phase file, encrypted');
ok((grep { m{^pg_tblspc/\d+/PG_15_\d+/\d+/\d+$} && $j->{by_path}{$_}{encrypted} > 0 } keys %{ $j->{by_path} }),
	'backup -X fetch: the tablespace, encrypted');
is($rc, class_of($j, 'wal')->{plaintext} > 0 ? 3 : 0, 'backup -X fetch: exit status follows its WAL');
my $stream = $node->backup_dir . '/stream';
($rc, $j) = verify_json($stream);
is($rc, 3, 'backup -X stream: exit 3');
cmp_ok(class_of($j, 'wal')->{plaintext}, '>', 0, 'backup -X stream: streamed WAL is plaintext');
is(class_of($j, 'data_pages')->{plaintext}, 0, 'backup -X stream: no plaintext data page');
for my $b ([ 'fetch', $fetch ], [ 'stream', $stream ])
{
	wal_encrypt($b->[1], "backup -X $b->[0]");
	($rc, $out) = verify($b->[1], '--check-keys');
	is($rc, 0, "backup -X $b->[0] after pg_cmk wal encrypt: exit 0");
	like($out, qr/Result: everything that carries a mark is encrypted/, "backup -X $b->[0]: the report says so");
}

# Tampering, with data checksums on.
flip_page_byte("$dir/$t_path", 1, 17);      # block 1: pd_special, in the first cipher block
flip_page_byte("$dir/$t_path", 2, 5000);    # block 2: the middle of the page
my ($twophase) = glob("$dir/pg_twophase/*");
flip_byte($twophase, 1);
($rc) = verify($dir);
is($rc, 0, 'tampered cluster, marks only: exit 0');
($rc, $j) = verify_json($dir, '--check-keys', '--sample', 'all');
is($rc, 4, 'tampered cluster, --check-keys: exit 4');
my @problems = map { "$_->{path}:$_->{block}:" . ($_->{what} =~ /(checksum mismatch|bad page header|magic)/)[0] } @{ $j->{problems} };
is_deeply(
	\@problems,
	[ "$t_path:1:checksum mismatch", "$t_path:1:bad page header", "$t_path:2:checksum mismatch",
	  substr($twophase, length($dir) + 1) . ':-1:magic' ],
	'tampered cluster, --check-keys: each change named by file, block and what is wrong');
($rc, $out) = verify($dir, '--check-keys', '--sample', '1');
is($rc, 4, 'tampered cluster, one sampled page per file: the checksums still catch block 2');
like($out, qr/Result: CHECK FAILED/, 'the text report says CHECK FAILED');

done_testing();
