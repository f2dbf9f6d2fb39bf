# realxen-guest: 128:1:256
# realxen-guest-type: hvm
# realxen job: interrupted and killed dumps and saves of a HVM guest leave it as found (see lib-hvm-interrupt.sh).
. ./lib-hvm-interrupt.sh
