# realxen-guest: 128:2:256
# realxen-xfer-mb: 1536
# realxen-guest-type: hvm
# realxen job: dump-hvm, save-hvm and interrupt-hvm in one boot of one 128 MiB, 2-vcpu HVM guest
# rewriting 256 pages a second (see lib-parts.sh; each part's outputs in $OUT/PART).
. ./lib-parts.sh
./xsr --version
part dump dump-hvm
part save save-hvm
part interrupt interrupt-hvm
exit $fail
