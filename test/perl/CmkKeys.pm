# Key material of a cmk data directory, derived in Perl from the keyring and
# its file KEK (independently of cmk's code), and a scanner that looks for
# it in a memory image (a core dump): for tests that prove keys do not leak.
#   - the keyring (DESIGN.md "Keyring format v2", or v1) is parsed here, each
#     wrapped DEK unwrapped with `openssl pkeyutl` (RSA-OAEP-256);
#   - sub-keys by HKDF-SHA256 (RFC 5869, on Digest::SHA's HMAC) with the
#     labels of DESIGN.md "HKDF";
#   - for every AES-256 key among them, its key schedule (FIPS 197 key
#     expansion; the encryption round keys as AES-NI and OpenSSL keep them,
#     and the decryption round keys of the equivalent inverse cipher).
package CmkKeys;

use strict;
use warnings;
use Exporter 'import';
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64);
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;

our @EXPORT = qw(keyring_deks hkdf_sha256 cmk_sub_keys aes256_round_keys key_needles scan_image);

# [ [generation, dek], ... ] of $datadir/pg_cmk/keyring, unwrapped with the
# PEM private key $kek.
sub keyring_deks
{
	my ($datadir, $kek) = @_;
	my $k = slurp_file("$datadir/pg_cmk/keyring");
	die "not a cmk keyring" unless substr($k, 0, 8) eq "CMKRING\n";
	my ($version, $flags, $current, $count) = unpack('n n N N', substr($k, 8, 12));
	die "keyring format $version" unless $version == 1 || $version == 2;
	my $pos = $version == 2 ? 32 : 20;    # v2: installed timeline and LSN
	my @out;
	my $tmp = tempdir(CLEANUP => 1);
	for (1 .. $count)
	{
		my ($gen) = unpack('N', substr($k, $pos, 4));
		$pos += 4 + 8;
		my $alen = unpack('C', substr($k, $pos, 1));
		my $alg = substr($k, $pos + 1, $alen);
		$pos += 1 + $alen;
		for my $field ('url', 'version')
		{
			my $n = unpack('n', substr($k, $pos, 2));
			$pos += 2 + $n;
		}
		my $wlen = unpack('n', substr($k, $pos, 2));
		my $wrapped = substr($k, $pos + 2, $wlen);
		$pos += 2 + $wlen + 16 + ($version == 2 ? 8 : 0);    # v2: current-from LSN
		open(my $fh, '>:raw', "$tmp/w") or die;
		print $fh $wrapped;
		close $fh;
		my $md = $alg eq 'RSA-OAEP' ? 'sha1' : 'sha256';
		system('openssl', 'pkeyutl', '-decrypt', '-inkey', $kek, '-in', "$tmp/w", '-out', "$tmp/d",
			'-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', "rsa_oaep_md:$md", '-pkeyopt', "rsa_mgf1_md:$md") == 0
		  or die "openssl pkeyutl could not unwrap generation $gen";
		my $dek = slurp_file("$tmp/d");
		die "a DEK is 32 bytes" unless length($dek) == 32;
		push @out, [ $gen, $dek ];
	}
	return @out;
}

sub hkdf_sha256
{
	my ($ikm, $salt, $info, $len) = @_;
	my $prk = hmac_sha256($ikm, $salt);
	my ($t, $okm) = ('', '');
	for (my $i = 1; length($okm) < $len; $i++)
	{
		$t = hmac_sha256($t . $info . chr($i), $prk);
		$okm .= $t;
	}
	return substr($okm, 0, $len);
}

# name => bytes, the sub-keys of one DEK (DESIGN.md "HKDF").
sub cmk_sub_keys
{
	my ($dek) = @_;
	my $salt = 'cmk key hierarchy v1';
	return (
		'data pages' => hkdf_sha256($dek, $salt, 'cmk data pages aes-256-xts', 64),
		'wal' => hkdf_sha256($dek, $salt, 'cmk wal aes-256-xts', 64),
		'temp files' => hkdf_sha256($dek, $salt, 'cmk temp files aes-256-xts', 64),
		'temp file tails' => hkdf_sha256($dek, $salt, 'cmk temp file tails ff1 aes-256', 32),
		'keyring mac' => hkdf_sha256($dek, $salt, 'cmk keyring hmac-sha256', 32));
}

# ---- AES-256 key expansion (FIPS 197 §5.2) ----

my @sbox;
{
	# The S-box from its definition: multiplicative inverse in GF(2^8),
	# then the affine transformation.
	my @exp = (1);
	push @exp, $exp[-1] ^ xtime($exp[-1]) for 1 .. 254;    # powers of 3
	my %log = map { $exp[$_] => $_ } 0 .. 254;
	for my $x (0 .. 255)
	{
		my $inv = $x ? $exp[(255 - $log{$x}) % 255] : 0;
		my $s = $inv;
		for my $r (1 .. 4) { $s ^= (($inv << $r) | ($inv >> (8 - $r))) & 0xff; }
		$sbox[$x] = $s ^ 0x63;
	}
}

sub xtime { my ($b) = @_; return (($b << 1) ^ (($b & 0x80) ? 0x1b : 0)) & 0xff; }

sub gmul
{
	my ($a, $b) = @_;
	my $p = 0;
	while ($b)
	{
		$p ^= $a if $b & 1;
		$a = xtime($a);
		$b >>= 1;
	}
	return $p;
}

# The 15 encryption round keys (16 bytes each) of an AES-256 key, and the
# 13 middle decryption round keys of the equivalent inverse cipher
# (InvMixColumns of round keys 1..13), as AES-NI implementations keep them.
sub aes256_round_keys
{
	my ($key) = @_;
	my @w = map { [ unpack('C4', substr($key, 4 * $_, 4)) ] } 0 .. 7;
	my $rcon = 1;
	for my $i (8 .. 59)
	{
		my @t = @{ $w[ $i - 1 ] };
		if ($i % 8 == 0)
		{
			@t = map { $sbox[$_] } (@t[ 1 .. 3 ], $t[0]);
			$t[0] ^= $rcon;
			$rcon = xtime($rcon);
		}
		elsif ($i % 8 == 4)
		{
			@t = map { $sbox[$_] } @t;
		}
		$w[$i] = [ map { $w[ $i - 8 ][$_] ^ $t[$_] } 0 .. 3 ];
	}
	my @enc = map { pack('C16', map { @{ $w[$_] } } (4 * $_ .. 4 * $_ + 3)) } 0 .. 14;
	my @dec;
	for my $r (1 .. 13)
	{
		my @b = unpack('C16', $enc[$r]);
		my @m;
		for my $c (0 .. 3)
		{
			my @a = @b[ 4 * $c .. 4 * $c + 3 ];
			push @m,
			  gmul($a[0], 14) ^ gmul($a[1], 11) ^ gmul($a[2], 13) ^ gmul($a[3], 9),
			  gmul($a[0], 9) ^ gmul($a[1], 14) ^ gmul($a[2], 11) ^ gmul($a[3], 13),
			  gmul($a[0], 13) ^ gmul($a[1], 9) ^ gmul($a[2], 14) ^ gmul($a[3], 11),
			  gmul($a[0], 11) ^ gmul($a[1], 13) ^ gmul($a[2], 9) ^ gmul($a[3], 14);
		}
		push @dec, pack('C16', @m);
	}
	return (\@enc, \@dec);
}

# name => needle for every secret of a data directory: each DEK, each
# sub-key (XTS keys as their two AES-256 halves), and for every AES-256 key
# its round keys 2..14 and decryption round keys (16 bytes each; the first
# two round keys are the key itself).
sub key_needles
{
	my ($datadir, $kek) = @_;
	my %n;
	for my $g (keyring_deks($datadir, $kek))
	{
		my ($gen, $dek) = @$g;
		$n{"generation $gen DEK"} = $dek;
		# As Key Vault's unwrap answer carries it (base64url), and base64.
		(my $b64 = encode_base64($dek, '')) =~ s/=+$//;
		(my $b64url = $b64) =~ tr{+/}{-_};
		$n{"generation $gen DEK in base64"} = $b64;
		$n{"generation $gen DEK in base64url"} = $b64url;
		my %sub = cmk_sub_keys($dek);
		for my $name (sort keys %sub)
		{
			my $key = $sub{$name};
			my @aes =
			    length($key) == 64 ? ([ 'key 1', substr($key, 0, 32) ], [ 'key 2', substr($key, 32) ])
			  : $name eq 'keyring mac' ? ()
			  :                          ([ 'key', $key ]);
			if (!@aes) { $n{"generation $gen $name key"} = $key; next; }
			for my $a (@aes)
			{
				my ($which, $k) = @$a;
				$n{"generation $gen $name $which"} = $k;
				my ($enc, $dec) = aes256_round_keys($k);
				$n{"generation $gen $name $which round key $_"} = $enc->[$_] for 2 .. 14;
				$n{"generation $gen $name $which decryption round key $_"} = $dec->[ $_ - 1 ] for 1 .. 13;
			}
		}
	}
	return %n;
}

# Names of the needles found in the file $path (read in 64 MB chunks with
# an overlap, so a needle across a chunk boundary is found too).
sub scan_image
{
	my ($path, %needles) = @_;
	my %found;
	open(my $fh, '<:raw', $path) or die "open $path: $!";
	my $overlap = 64;
	my $carry = '';
	while (read($fh, my $chunk, 64 << 20))
	{
		my $data = $carry . $chunk;
		for my $name (keys %needles)
		{
			$found{$name} = 1 if index($data, $needles{$name}) >= 0;
		}
		$carry = substr($data, -$overlap);
	}
	close $fh;
	return sort keys %found;
}

1;
