# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14): the standard PV guest restored through xsr as libxl's save helper
# (`restore_job` in common.sh: `xl restore`, then `xsr restore --domain`, with Xen's own helper
# disabled; figures against Xen's helper on the same file, same boot).
. ./common.sh
restore_job
exit $fail
