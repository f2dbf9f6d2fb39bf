# realxen-guest: 32:1:256
# realxen-guest-type: hvm
# realxen job: xsr save and send of a HVM guest against xl save, xl restore of xsr's files (see lib-hvm-save.sh).
. ./lib-hvm-save.sh
