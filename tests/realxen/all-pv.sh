# realxen-guest: 128:2:256
# realxen-xfer-mb: 1536
# realxen job: the PV dump and save jobs in one boot of one 128 MiB, 2-vcpu PV guest rewriting 256 pages a
# second (see lib-parts.sh; each part's outputs in $OUT/PART).
. ./lib-parts.sh
./xsr --version
part dump dump
part live live
part save save
part save-live save-live
part save-2vcpu save-2vcpu
part interrupt interrupt
part save-interrupt save-interrupt
part save-kill save-kill
exit $fail
