# realxen-guest: 32:1
# realxen-guest-type: hvm
# realxen job (issue 14): the standard guest as HVM (QEMU as device model, started by libxl)
# restored through xsr as libxl's save helper (`restore_job` in common.sh: `xl restore`, then
# `xsr restore --domain`, with Xen's own helper disabled; figures against Xen's helper on the same
# file, same boot).
. ./common.sh
restore_job
exit $fail
