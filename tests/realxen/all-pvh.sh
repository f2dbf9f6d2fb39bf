# realxen-guest: 128:2:256
# realxen-xfer-mb: 1536
# realxen-guest-type: pvh
# realxen job: dump-pvh, save-pvh and interrupt-pvh in one boot of one 128 MiB, 2-vcpu PVH guest
# rewriting 256 pages a second (see lib-parts.sh; each part's outputs in $OUT/PART).
. ./lib-parts.sh
./xsr --version
part dump dump-pvh
part save save-pvh
part interrupt interrupt-pvh
exit $fail
