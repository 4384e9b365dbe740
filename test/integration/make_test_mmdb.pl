#!/usr/bin/perl
# Writes a GeoLite2-Country-shaped .mmdb for tests: make_test_mmdb.pl OUT NETWORK=CC ...
# e.g. make_test_mmdb.pl /tmp/t.mmdb 127.0.0.8/32=NL 127.0.0.9/32=DE
# Test databases are made here at test time (Debian's libmaxmind-db-writer-perl), never fetched.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my ($out, @entries) = @ARGV;
die "usage: $0 OUT NETWORK=CC ...\n" unless $out && @entries;

my %types = (country => 'map', registered_country => 'map', iso_code => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 24,
    database_type         => 'GeoLite2-Country',
    languages             => ['en'],
    description           => { en => 'mc-proxy test database' },
    map_key_type_callback => sub { $types{ $_[0] } },
    # Tests use loopback addresses, which a real database leaves out.
    remove_reserved_networks => 0,
    alias_ipv6_to_ipv4       => 1,
);
for my $entry (@entries) {
    my ($network, $country) = split /=/, $entry, 2;
    $tree->insert_network($network, { country => { iso_code => $country } });
}
# Write to a new file and rename, so a reader never sees a half-written database.
open my $fh, '>:raw', "$out.tmp" or die "cannot write $out.tmp: $!\n";
$tree->write_tree($fh);
close $fh or die "cannot close $out.tmp: $!\n";
rename "$out.tmp", $out or die "cannot rename to $out: $!\n";
