# realxen-guest: 32:2:256
# realxen-guest-type: hvm
# realxen job: dumps of a HVM guest, paused and live, against xl dump-core (see lib-hvm-dump.sh).
. ./lib-hvm-dump.sh
