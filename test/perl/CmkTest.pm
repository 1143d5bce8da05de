# Helpers shared by cmk's TAP tests: clusters with cmk loaded and a local
# KEK, raw scans of files for canary strings, and data-directory fingerprints.
package CmkTest;

use strict;
use warnings;
use Exporter 'import';
use File::Find;
use Digest::SHA;
use IPC::Run;
use List::Util qw(first);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(make_kek cmk_node pgbackrest_stanza run_shell plain_node files_containing dir_fingerprint
  fingerprint_diff slurp_log_since can_attach_gdb rewind_and_follow flip_byte
  pg_checksum_page flip_page_byte psql_arg);

# An RSA private key in PEM, as cmk.key_url = 'file:...' expects.
sub make_kek
{
	my ($path, $bits) = @_;
	$bits //= 2048;
	system('openssl', 'genpkey', '-quiet', '-algorithm', 'RSA', '-pkeyopt',
		"rsa_keygen_bits:$bits", '-out', $path) == 0
	  or die "openssl genpkey failed for $path";
	chmod 0600, $path;
	return $path;
}

# A new cluster with cmk in shared_preload_libraries and a fresh local KEK.
#   checksums => 1      initdb --data-checksums
#   key_url => '...'    instead of the generated file: key
#   conf => '...'       more postgresql.conf lines
sub cmk_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init($opt{checksums} ? (extra => ['--data-checksums']) : (),
		$opt{init} ? %{ $opt{init} } : ());
	my $kek = $node->basedir . '/kek.pem';
	make_kek($kek) unless $opt{key_url};
	my $key_url = $opt{key_url} // "file:$kek";
	$node->append_conf('postgresql.conf', <<"EOC");
shared_preload_libraries = 'cmk'
cmk.key_url = '$key_url'
EOC
	$node->append_conf('postgresql.conf', $opt{conf}) if $opt{conf};
	return $node;
}

# The same cluster without cmk, as a control for the canary scans.
sub plain_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init($opt{checksums} ? (extra => ['--data-checksums']) : ());
	$node->append_conf('postgresql.conf', $opt{conf}) if $opt{conf};
	return $node;
}

# Files under @dirs whose raw bytes contain $needle (the server log is never
# under a data directory in these tests).
sub files_containing
{
	my ($needle, @dirs) = @_;
	my @hits;
	find(
		{
			no_chdir => 1,
			wanted => sub {
				return unless -f $_;
				open(my $fh, '<:raw', $_) or return;
				local $/;
				my $data = <$fh>;
				close $fh;
				push @hits, $File::Find::name
				  if defined $data && index($data, $needle) >= 0;
			}
		},
		grep { -d $_ } @dirs);
	return @hits;
}

# SHA-256 of every file of a data directory, except the ones a failed start
# itself writes and removes (postmaster.pid, postmaster.opts).
sub dir_fingerprint
{
	my ($dir) = @_;
	my %sums;
	find(
		{
			no_chdir => 1,
			wanted => sub {
				return unless -f $_;
				my $rel = substr($File::Find::name, length($dir) + 1);
				return if $rel =~ /^postmaster\.(pid|opts)$/;
				$sums{$rel} = Digest::SHA->new(256)->addfile($_, 'b')->hexdigest;
			}
		},
		$dir);
	return \%sums;
}

# List of differences between two fingerprints ('' when equal).
sub fingerprint_diff
{
	my ($a, $b) = @_;
	my @diff;
	for my $f (sort keys %$a)
	{
		push @diff, "changed $f" if exists $b->{$f} && $a->{$f} ne $b->{$f};
		push @diff, "removed $f" unless exists $b->{$f};
	}
	push @diff, map { "added $_" } grep { !exists $a->{$_} } sort keys %$b;
	return join(', ', @diff);
}

# Whether gdb can attach to the server's processes from here: gdb is
# installed and Yama (if loaded) lets a process trace a non-child of the
# same user (ptrace_scope 0, Debian's default).
sub can_attach_gdb
{
	return 0 unless system('gdb --version >/dev/null 2>&1') == 0;
	my $scope = '/proc/sys/kernel/yama/ptrace_scope';
	return 1 unless -e $scope;
	return slurp_file($scope) =~ /^0/ ? 1 : 0;
}

# Log text written after byte offset $from.
sub slurp_log_since
{
	my ($node, $from) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $from // 0);
}


# An old primary, stopped, rewound by $rewind (a sub that runs the rewind
# and tests it) and started as a standby of $upstream. pg_rewind copies the
# source's postgresql.conf too: the node's own is put back first.
sub rewind_and_follow
{
	my ($node, $upstream, $rewind) = @_;
	my $conf = $node->data_dir . '/postgresql.conf';
	my $saved = slurp_file($conf);
	$rewind->();
	open(my $fh, '>', $conf) or die "could not write $conf: $!";
	print $fh $saved;
	close $fh;
	$node->enable_streaming($upstream);
	$node->set_standby_mode;
	$node->start;
	return;
}

# Runs a shell command; returns its exit status and its output (stdout and
# stderr together).
sub run_shell
{
	my ($cmd) = @_;
	my $out = `$cmd 2>&1`;
	return ($? >> 8, $out);
}

# Corrupts one byte of a file in place. Flipped bits, not a fixed value: a
# fixed byte equals what is there in one run out of 256 when the bytes are
# ciphertext under a key new in each run, and then nothing is corrupt.
# The bits are $mask's (default 0x40).
sub flip_byte
{
	my ($file, $offset, $mask) = @_;
	open(my $fh, '+<:raw', $file) or die "open $file: $!";
	seek($fh, $offset, 0) or die "seek $file: $!";
	read($fh, my $b, 1) == 1 or die "read $file at $offset: short";
	seek($fh, $offset, 0) or die "seek $file: $!";
	print $fh chr(ord($b) ^ ($mask // 0x40));
	close $fh or die "close $file: $!";
}

# PostgreSQL's pg_checksum_page (storage/checksum_impl.h) of the 8 kB page
# $page as block $blkno of its relation.
my @checksum_base_offsets = (
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756);

sub pg_checksum_page
{
	my ($page, $blkno) = @_;
	die 'pg_checksum_page: not an 8 kB page' unless length($page) == 8192;
	substr($page, 8, 2) = "\0\0";    # pd_checksum counts as zero
	my @words = unpack('V2048', $page);
	my @sums = @checksum_base_offsets;
	for my $i (0 .. 65)    # 64 rows of the page, then two rows of zeros
	{
		for my $j (0 .. 31)
		{
			my $t = $sums[$j] ^ ($i < 64 ? $words[ $i * 32 + $j ] : 0);
			$sums[$j] = (($t * 16777619) & 0xFFFFFFFF) ^ ($t >> 17);
		}
	}
	my $c = 0;
	$c ^= $_ for @sums;
	return (($c ^ $blkno) % 65535) + 1;
}

# Corrupts one byte of block $blkno of a relation file (segment 0) at
# $offset within the page, such that the page's stored checksum no longer
# matches: a single flip leaves it matching in one run out of 65,535 when
# the page is ciphertext under a key new in each run.
sub flip_page_byte
{
	my ($file, $blkno, $offset) = @_;
	open(my $fh, '<:raw', $file) or die "open $file: $!";
	seek($fh, $blkno * 8192, 0) or die "seek $file: $!";
	read($fh, my $page, 8192) == 8192 or die "read $file block $blkno: short";
	close $fh;
	my $stored = unpack('v', substr($page, 8, 2));
	my $orig = ord(substr($page, $offset, 1));
	my $mask = first {
		substr($page, $offset, 1) = chr($orig ^ $_);
		pg_checksum_page($page, $blkno) != $stored
	} (0x40, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x80);
	flip_byte($file, $blkno * 8192 + $offset, $mask);
}

# psql with the query as an argument (-c), not on its standard input as
# PostgreSQL::Test::Cluster's psql passes it: a server that refuses the
# connection makes psql exit before it reads its input, and IPC::Run then
# dies of the broken pipe. Returns (exit code, stdout, stderr) as that psql.
sub psql_arg
{
	my ($node, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-XAtq', '-d', $node->connstr($db), '-c', $sql ], '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	chomp $out;
	return ($rc, $out, $err);
}

# A pgBackRest stanza "cmk" for a node that is not started yet: a repository
# and its configuration in the node's base directory, archive_command pushing
# to it. Extra [global] options as "key=value" strings. Returns the command
# prefix ("pgbackrest --config=... --stanza=cmk").
sub pgbackrest_stanza
{
	my ($node, @global) = @_;
	my $base = $node->basedir;
	mkdir "$base/repo";
	my $extra = join('', map { "$_\n" } @global);
	open(my $fh, '>', "$base/pgbackrest.conf") or die "$base/pgbackrest.conf: $!";
	print $fh <<"EOC";
[global]
repo1-path=$base/repo
log-path=$base
lock-path=$base
log-level-console=warn
log-level-file=off
start-fast=y
archive-async=n
$extra
[cmk]
pg1-path=@{[ $node->data_dir ]}
pg1-socket-path=@{[ $node->host ]}
pg1-port=@{[ $node->port ]}
EOC
	close $fh;
	my $br = "pgbackrest --config=$base/pgbackrest.conf --stanza=cmk";
	$node->append_conf('postgresql.conf', "archive_mode = on\narchive_command = '$br archive-push %p'\n");
	return $br;
}

1;
