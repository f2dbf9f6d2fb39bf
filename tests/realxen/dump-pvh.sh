# realxen-guest: 32:2:256
# realxen-guest-type: pvh
# realxen job: dumps of a PVH guest, paused and live, against xl save -c of it (see lib-hvm-dump.sh).
. ./lib-hvm-dump.sh
