# The server owner's key policy (cmk.allowed_key_urls): nobody inside the
# database moves the DEK away from the customer's key. On a cluster whose
# KEK is in (the emulator of) Key Vault, a cmk_key_admin member, a CREATEROLE
# role that granted itself cmk_key_admin and a superuser all fail to rotate
# to a file: key or to another vault host (which is never contacted); the
# policy cannot be set with ALTER SYSTEM or from postgresql.auto.conf; a
# start whose keyring is outside it is refused before the vault is asked;
# postgresql.conf can allow more. On a file-KEK cluster, errors for a
# readable, an unreadable and a missing path within the policy are one
# message.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CmkTest;
use KvEmulator;

my $kv = KvEmulator->new("${PostgreSQL::Test::Utils::tmp_check}/kv_082");
my ($base, $v1) = $kv->server_identity_and_key;
my $vault = $kv->url;

my $node = cmk_node('policy', key_url => $base,
	conf => "cmk.auth = 'client-secret'\ncmk.ca_file = '" . $kv->ca_file . "'\ncmk.key_unavailable_timeout = '3s'\n");
$node->start;
$node->safe_psql('postgres', <<'EOS');
CREATE EXTENSION cmk;
CREATE ROLE bob LOGIN;
GRANT cmk_key_admin TO bob;
CREATE ROLE carol LOGIN CREATEROLE;
EOS
my $datadir = $node->data_dir;
my $server_key = "$datadir/server.key";
make_kek($server_key);    # as a TLS key would be: an RSA key the server can read

sub keyring_sum { return sha256_hex(slurp_file("$datadir/pg_cmk/keyring")); }
sub auto_conf { return -f "$datadir/postgresql.auto.conf" ? slurp_file("$datadir/postgresql.auto.conf") : ''; }
my $ring = keyring_sum();
my $auto = auto_conf();

sub rotate
{
	my ($user, $url) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT cmk_rotate_key('$url')",
		$user ? (extra_params => [ '-U', $user ]) : ());
	return ($ret, $err);
}

sub unchanged
{
	my ($what) = @_;
	is(keyring_sum(), $ring, "$what: the keyring is unchanged");
	is(auto_conf(), $auto, "$what: cmk.key_url is unchanged");
	is($node->safe_psql('postgres', 'SELECT provider FROM cmk_status'), 'azure-key-vault', "$what: still Key Vault");
}

# 1. A cmk_key_admin member cannot move the keyring to a file: key.
my ($ret, $err) = rotate('bob', "file:$server_key");
isnt($ret, 0, 'cmk_key_admin: rotation to file:<data directory>/server.key fails');
like($err, qr/key URL "file:\Q$server_key\E" is not allowed by cmk.allowed_key_urls/, 'refused by the policy');
like($err, qr/allows only \Q$vault\E \(the default when cmk.allowed_key_urls is not set: the vault of the key that wraps the keyring\)/,
	'the message says what the policy allows');
unchanged('cmk_key_admin to file:');

# 2. A CREATEROLE role grants itself cmk_key_admin (PostgreSQL 15 lets it): the policy still stops it.
$node->safe_psql('postgres', 'GRANT cmk_key_admin TO carol', extra_params => [ '-U', 'carol' ]);
($ret, $err) = rotate('carol', "file:$server_key");
like($err, qr/is not allowed by cmk.allowed_key_urls/, 'CREATEROLE that granted itself cmk_key_admin: refused by the policy');
unchanged('CREATEROLE to file:');

# 3. Another vault host (here a listener the test owns) is never contacted.
my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, Proto => 'tcp')
  or die "listen: $!";
my $other = 'https://127.0.0.1:' . $listener->sockport . '/keys/kek';
($ret, $err) = rotate('bob', $other);
like($err, qr/key URL "\Q$other\E" is not allowed by cmk.allowed_key_urls/, 'cmk_key_admin: another vault host is refused');
($ret, $err) = rotate(undef, $other);
like($err, qr/is not allowed by cmk.allowed_key_urls/, 'and so is a superuser');
ok(!IO::Select->new($listener)->can_read(0.5), 'the other host was never contacted');
unchanged('to another vault');

# 4. A superuser cannot either, and cannot change the policy from inside.
($ret, $err) = rotate(undef, "file:$server_key");
like($err, qr/is not allowed by cmk.allowed_key_urls/, 'superuser: rotation to a file: key is refused');
($ret, my $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET cmk.allowed_key_urls = '*'");
like($err, qr/cmk.allowed_key_urls cannot be set with ALTER SYSTEM/, 'ALTER SYSTEM SET cmk.allowed_key_urls is refused');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET cmk.require_purge_protection = off");
like($err, qr/cmk.require_purge_protection cannot be set with ALTER SYSTEM/, 'so is cmk.require_purge_protection');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET cmk.key_url = 'file:$server_key'", extra_params => [ '-U', 'bob' ]);
like($err, qr/is not allowed by cmk.allowed_key_urls/, 'ALTER SYSTEM SET cmk.key_url outside the policy is refused');
unchanged('superuser');
like($node->safe_psql('postgres', q{SELECT string_agg(event || ':' || outcome, ' ') FROM cmk_events WHERE outcome = 'refused'}),
	qr/kek_rotation:refused/, 'refused attempts are events');

# 5. A value written to postgresql.auto.conf stops the start.
$node->stop;
append_to_file("$datadir/postgresql.auto.conf", "cmk.allowed_key_urls = '*'\n");
ok(!$node->start(fail_ok => 1), 'cmk.allowed_key_urls in postgresql.auto.conf: the server refuses to start');
like(slurp_file($node->logfile), qr/cmk.allowed_key_urls is set in ".*postgresql.auto.conf" \(line \d+\), which ALTER SYSTEM writes/,
	'saying where the value comes from');
open(my $fh, '>', "$datadir/postgresql.auto.conf") or die;
print $fh $auto;
close $fh;

# 6. A keyring outside an explicit policy refuses the start before the vault is asked.
$node->append_conf('postgresql.conf', "cmk.allowed_key_urls = 'https://other.vault.azure.net'\n");
my $audit_before = scalar($kv->audit);
my $log_from = -s $node->logfile;
ok(!$node->start(fail_ok => 1), 'a keyring wrapped by a key outside cmk.allowed_key_urls: the server refuses to start');
like(slurp_log_since($node, $log_from), qr/the keyring is wrapped by a key outside the policy: key URL "\Q$base\E" is not allowed/,
	'with a message that names the key');
is(scalar($kv->audit), $audit_before, 'and the vault was not asked');

# 7. postgresql.conf can allow more: the superuser may then move the key.
$node->append_conf('postgresql.conf', "cmk.allowed_key_urls = '$vault, file:$datadir/'\n");
$node->start;
my $n = scalar($kv->audit);
is($node->safe_psql('postgres', "SELECT cmk_rotate_key('file:$server_key')"), "file:$server_key",
	'with file:<data directory>/ allowed in postgresql.conf, the rotation is allowed');
ok((grep { $_->{operation} eq 'KeyUnwrap' && $_->{version} eq $v1 && $_->{result} eq 'Success' } ($kv->audit)[ $n .. scalar($kv->audit) - 1 ]),
	'and the vault\'s audit log shows the unwrap by the old key that proved possession');
is($node->safe_psql('postgres', 'SELECT provider FROM cmk_status'), 'file', 'cmk_status shows the file key');
$node->stop;

# 8. file: errors within the policy do not tell which files exist.
my $fnode = cmk_node('filekek');
$fnode->start;
$fnode->safe_psql('postgres', "CREATE EXTENSION cmk; CREATE ROLE bob LOGIN; GRANT cmk_key_admin TO bob;");
my $dir = $fnode->basedir;
append_to_file("$dir/readable.pem", "not a key\n");
make_kek("$dir/unreadable.pem");
chmod 0, "$dir/unreadable.pem";
my %said;
for my $name ('readable.pem', 'unreadable.pem', 'missing.pem')
{
	my ($r, $o, $e) = $fnode->psql('postgres', "SELECT cmk_rotate_key('file:$dir/$name')", extra_params => [ '-U', 'bob' ]);
	$e =~ s/\Q$name\E/NAME/g;
	$e =~ s/^psql:[^:]*:\d+: //mg;
	$said{$name} = $e;
}
isnt($said{'missing.pem'}, '', "a missing key file is refused: $said{'missing.pem'}");
is($said{'readable.pem'}, $said{'missing.pem'}, 'a readable non-key file gives the same message as a missing one');
is($said{'unreadable.pem'}, $said{'missing.pem'}, 'an unreadable file gives the same message as a missing one');
my %outside;
for my $path ('/etc/shadow', '/etc/passwd', '/nonexistent/x.pem')
{
	my ($r, $o, $e) = $fnode->psql('postgres', "SELECT cmk_rotate_key('file:$path')", extra_params => [ '-U', 'bob' ]);
	$e =~ s/\Q$path\E/PATH/g;
	$e =~ s/^psql:[^:]*:\d+: //mg;
	$outside{$path} = $e;
}
like($outside{'/etc/shadow'}, qr/is not allowed by cmk.allowed_key_urls/, 'paths outside the key\'s directory are refused by the policy');
ok($outside{'/etc/shadow'} eq $outside{'/etc/passwd'} && $outside{'/etc/passwd'} eq $outside{'/nonexistent/x.pem'},
	'with one message whatever the file');
$fnode->stop;
$kv->stop;
done_testing();
