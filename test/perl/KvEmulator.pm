# The local Key Vault emulator (test/kv_emulator) for TAP tests: start it on
# a fixed loopback port with a state directory, drive it with its admin CLI,
# stop and restart it. It is addressed as a real vault is:
# https://cmk-emulator.vault.azure.net:PORT, signing in at
# https://login.cmk-emulator.test:PORT; test/kv_emulator/hosts.sh (run by
# scripts/install_deps.sh) names both 127.0.0.1 in /etc/hosts.
# See test/kv_emulator/CONTRACT.md.
package KvEmulator;

use strict;
use warnings;
use Cwd 'abs_path';
use File::Basename 'dirname';
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Socket qw(inet_ntoa);
use Time::HiRes 'usleep';

my $script = abs_path(dirname(__FILE__) . '/../kv_emulator/kv_emulator.py');

# Options: tenant; host (the vault's name, default cmk-emulator.vault.azure.net;
# cmk-emulator-2.vault.azure.net and cmk-emulator.managedhsm.azure.net are also
# in /etc/hosts); login_host (default login.cmk-emulator.test).
sub new
{
	my ($class, $dir, %opt) = @_;
	mkdir $dir;
	my $self = bless {
		dir => $dir,
		port => PostgreSQL::Test::Cluster::get_free_port(),
		tenant => $opt{tenant} // '11111111-2222-3333-4444-555555555555',
		host => $opt{host} // 'cmk-emulator.vault.azure.net',
		login_host => $opt{login_host} // 'login.cmk-emulator.test',
	}, $class;
	for my $name ($self->{host}, $self->{login_host})
	{
		my $addr = gethostbyname($name);
		die "$name does not resolve to 127.0.0.1: run `bash test/kv_emulator/hosts.sh` as root "
		  . "(scripts/install_deps.sh does)\n"
		  unless defined $addr && inet_ntoa($addr) eq '127.0.0.1';
	}
	# A proxy from the environment must not see the emulator's names.
	for my $var (qw(no_proxy NO_PROXY))
	{
		my %have = map { $_ => 1 } split /,/, $ENV{$var} // '';
		$ENV{$var} = join(',', grep { length } $ENV{$var} // '',
			grep { !$have{$_} } $self->{host}, $self->{login_host});
	}
	$self->start;
	return $self;
}

sub start
{
	my ($self) = @_;
	unlink "$self->{dir}/ready";
	$self->{run} = IPC::Run::start(
		[
			'python3', $script, 'serve', '--state-dir', $self->{dir}, '--port', $self->{port},
			'--tenant', $self->{tenant}, '--host', $self->{host}, '--host', $self->{login_host}
		],
		'>', "$self->{dir}/emulator.log", '2>&1');
	# Up to 2 minutes: it makes its TLS keys first, and a loaded CI machine
	# can be slow at that.
	for (1 .. 1200)
	{
		return if -f "$self->{dir}/ready";
		usleep(100_000);
	}
	die "the Key Vault emulator did not start within 120 s: " . slurp_file("$self->{dir}/emulator.log");
}

sub stop
{
	my ($self) = @_;
	return unless $self->{run};
	$self->{run}->signal('TERM');
	$self->{run}->finish;
	delete $self->{run};
}

sub DESTROY { my ($self) = @_; $self->stop if $self->{run}; }

# The vault (key URLs are url() . '/keys/NAME[/VERSION]') and the sign-in host.
sub url { my ($self) = @_; return "https://$self->{host}:$self->{port}"; }
sub authority { my ($self) = @_; return "https://$self->{login_host}:$self->{port}"; }
sub host { my ($self) = @_; return $self->{host}; }
sub ca_file { my ($self) = @_; return "$self->{dir}/ca.pem"; }
sub tenant { my ($self) = @_; return $self->{tenant}; }

# Runs an admin command; returns the decoded JSON (dies on failure).
sub admin
{
	my ($self, @args) = @_;
	my ($out, $err);
	IPC::Run::run([ 'python3', $script, 'admin', '--state-dir', $self->{dir}, @args ], '>', \$out, '2>', \$err)
	  or die "kv_emulator admin @args failed: $err $out";
	return $out =~ /\S/ ? decode_json($out) : undef;
}

# Audit entries as a list of hashes, optionally only those of one caller.
sub audit
{
	my ($self, %opt) = @_;
	my $all = $self->admin('audit', $opt{caller} ? ('--caller', $opt{caller}) : ());
	return @$all;
}

# The environment a server needs to sign in with a client secret.
sub secret_env
{
	my ($self, $client_id, $secret) = @_;
	return (
		AZURE_AUTHORITY_HOST => $self->authority,
		AZURE_TENANT_ID => $self->{tenant},
		AZURE_CLIENT_ID => $client_id,
		AZURE_CLIENT_SECRET => $secret);
}

# The version in a key bundle's kid.
sub key_version { my ($bundle) = @_; return ($bundle->{key}{kid} =~ m{/(\w+)$})[0]; }

# What most Key Vault tests start with: the server's identity (client id
# pg-server, a random client secret, the permissions a server needs), an
# RSA-2048 key "kek", and the identity's sign-in variables in %ENV for the
# servers the test starts. Returns the key's URL without version, its first
# version and the secret.
sub server_identity_and_key
{
	my ($self) = @_;
	my $secret = 'cmk-tap-secret-' . int(rand(1e9));
	$self->admin('add-identity', '--tenant', $self->{tenant}, '--client-id', 'pg-server', '--secret', $secret);
	$self->admin('grant', '--client-id', 'pg-server', '--permissions', 'get,wrapKey,unwrapKey');
	my $v1 = key_version($self->admin('create-key', '--name', 'kek', '--size', '2048'));
	my %env = $self->secret_env('pg-server', $secret);
	@ENV{ keys %env } = values %env;
	return ($self->url . '/keys/kek', $v1, $secret);
}

1;
