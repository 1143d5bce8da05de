# Raw page scans for TAP tests: the key generation of every page of every
# relation file of a data directory, as stored (pd_flags bits 8..15).
package PageScan;

use strict;
use warnings;
use Exporter 'import';
use File::Find;

our @EXPORT = qw(page_generations);

# Returns { generation => pages } over global/, base/ and pg_tblspc/;
# all-zero pages count as 'new', generation 0 as plaintext.
sub page_generations
{
	my ($datadir) = @_;
	my %count;
	my @dirs = grep { -d $_ } map { "$datadir/$_" } qw(global base pg_tblspc);
	find(
		{
			follow => 1,
			no_chdir => 1,
			wanted => sub {
				return unless -f $_ && m{/\d+(_(fsm|vm|init))?(\.\d+)?$};
				open(my $fh, '<:raw', $_) or return;
				my $page;
				while (read($fh, $page, 8192) == 8192)
				{
					if ($page !~ /[^\0]/) { $count{new}++; next; }
					my $flags = unpack('v', substr($page, 10, 2));
					$count{ $flags >> 8 }++;
				}
				close $fh;
			}
		},
		@dirs);
	return \%count;
}

1;
