# Encrypted data is useless without cmk: a server started without it cannot
# read its encrypted WAL and refuses to start (changing no file); with the
# WAL decrypted by pg_cmk it starts but reports invalid pages instead of
# returning data; once cmk is back every row is intact. cmk itself refuses
# to load any other way than shared_preload_libraries.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;

my $canary = 'cmkCANARYabsent';
my $node = cmk_node('without');
$node->start;
$node->safe_psql('postgres', <<"EOS");
CREATE EXTENSION cmk;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, '${canary}_' || g FROM generate_series(1, 2000) g;
EOS
my $digest_q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
my $expected = $node->safe_psql('postgres', $digest_q);
$node->stop;

# Later lines of postgresql.conf win: take cmk out.
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\nautovacuum = off\n");
my $fp = dir_fingerprint($node->data_dir);
my $offset = -s $node->logfile;
ok(!$node->start(fail_ok => 1), 'without cmk the server does not start');
like(slurp_log_since($node, $offset), qr/PANIC:  could not locate a valid checkpoint record/,
	'because it cannot read its encrypted WAL');
is(fingerprint_diff($fp, dir_fingerprint($node->data_dir)), '', 'and the refused start changed no file');

command_ok([ 'pg_cmk', 'wal', 'decrypt', '-D', $node->data_dir ], 'pg_cmk decrypts the WAL in place');
$node->start;
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT v FROM t ORDER BY id LIMIT 5');
isnt($ret, 0, 'without cmk, reading the table fails');
like($err, qr/invalid page in block \d+ of relation/, 'and PostgreSQL reports an invalid page');
unlike($out, qr/$canary/, 'no row is returned');

$node->stop;

my $plain = plain_node('plain');
$plain->start;
($ret, $out, $err) = $plain->psql('postgres', "LOAD 'cmk'");
isnt($ret, 0, 'LOAD cmk in a session is refused');
like($err, qr/cmk must be loaded via shared_preload_libraries/, 'with a message that says how to load it');
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION cmk');
isnt($ret, 0, 'CREATE EXTENSION cmk without shared_preload_libraries is refused');
like($err, qr/cmk must be loaded via shared_preload_libraries/, 'with the same message');
$plain->stop;

# Put cmk back: WAL encrypted again, override lines dropped.
command_ok([ 'pg_cmk', 'wal', 'encrypt', '-D', $node->data_dir ], 'pg_cmk encrypts the WAL again');
my $conf = slurp_file($node->data_dir . '/postgresql.conf');
$conf =~ s/^shared_preload_libraries = ''\nautovacuum = off\n//m;
open(my $fh, '>', $node->data_dir . '/postgresql.conf') or die;
print $fh $conf;
close $fh;
$node->start;
is($node->safe_psql('postgres', $digest_q), $expected, 'with cmk back, every row is intact');
$node->stop;

done_testing();
