# realxen-guest: 32:1:256
# realxen-guest-type: pvh
# realxen job: xsr save and send of a PVH guest against xl save, xl restore of xsr's files (see lib-hvm-save.sh).
. ./lib-hvm-save.sh
