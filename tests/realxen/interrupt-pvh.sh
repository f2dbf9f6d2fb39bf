# realxen-guest: 128:1:256
# realxen-guest-type: pvh
# realxen job: interrupted and killed dumps and saves of a PVH guest leave it as found (see lib-hvm-interrupt.sh).
. ./lib-hvm-interrupt.sh
