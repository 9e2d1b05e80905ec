#!/usr/bin/perl
# rewrite_launches.pl IN OUT — the CUDA emulator's one source change (tools/cuda_emu/README.md):
# every kernel launch `NAME<<<CONFIG>>>(ARGS)` becomes
#   cg_emu_launch(cg_emu_cfg(CONFIG), [&]() { NAME(ARGS); }, "NAME")
# (NAME may carry template arguments; ARGS may span lines, also inside a macro definition).
# Dynamic shared memory `extern __shared__ T NAME[];` becomes
#   T *const NAME = (T *)cg_emu_dynamic_shared();
# (the launch's smem bytes; line count unchanged). Each static `__shared__ T a[N], b;` gets
#   cg_emu_static_shared(&a, sizeof a); cg_emu_static_shared(&b, sizeof b);
# after it on the same line, so the runtime can check static + dynamic against the 48 KiB.
# A `#line 1 "IN"` first keeps compiler messages pointing at the real source.
use strict;
use warnings;

my ($in, $out) = @ARGV;
die "usage: rewrite_launches.pl IN OUT\n" unless defined $out;
open(my $fh, '<', $in) or die "$in: $!\n";
my $src = do { local $/; <$fh> };
close $fh;

my $parens = qr/(\((?:[^()]++|(?-1))*+\))/;           # balanced (...)
my $tmpl = qr/(?:<(?:[^<>;]++|<[^<>;]*>)*>)?/;         # optional <...> (one level of nesting)
my $n = 0;
$src =~ s{([A-Za-z_]\w*$tmpl)\s*<<<((?:(?!>>>).)*?)>>>\s*$parens}{
    my ($name, $cfg, $args) = ($1, $2, $3);
    (my $label = $name) =~ s/"/\\"/g;
    $n++;
    "cg_emu_launch(cg_emu_cfg($cfg), [&]() { $name$args; }, \"$label\")"
}gse;
$src =~ s{\bextern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;}{$1 *const $2 = ($1 *)cg_emu_dynamic_shared();}g;
# what is left of __shared__ is static: register every declarator's size
$src =~ s{\b(__shared__\s+([^;{}()]*?);)}{
    my ($decl, $body) = ($1, $2);
    my ($depth, $cur, @parts) = (0, "");
    for my $ch (split //, $body) {
        $depth++ if $ch eq '[';
        $depth-- if $ch eq ']';
        if ($ch eq ',' && $depth == 0) { push @parts, $cur; $cur = ""; } else { $cur .= $ch; }
    }
    push @parts, $cur;
    my @names;
    my ($first) = $parts[0] =~ /(\w+)\s*(?:\[|$)/;
    die "$in: cannot read the __shared__ declaration '$decl'\n" unless defined $first;
    push @names, $first;
    for my $p (@parts[1 .. $#parts]) {
        my ($nm) = $p =~ /^\s*(\w+)/;
        die "$in: cannot read the __shared__ declaration '$decl'\n" unless defined $nm;
        push @names, $nm;
    }
    $decl . join("", map { " cg_emu_static_shared(&$_, sizeof $_);" } @names)
}ge;
die "$in: a <<< left after the rewrite (an unusual launch form?)\n" if $src =~ /<<</;
open(my $oh, '>', $out) or die "$out: $!\n";
print $oh "#line 1 \"$in\"\n", $src;
close $oh;
