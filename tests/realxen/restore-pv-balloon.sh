# realxen-guest: 48:1
# realxen-guest-type: pv
# realxen job (issue 14): a ballooned PV guest through xsr as libxl's save helper, both ways
# (`balloon_job` in common.sh: the 48 MiB guest gives 16 MiB back to Xen, so its p2m has holes
# that `xl save` sends as XTAB; then `restore_job`: `xl restore` and `xsr restore --domain` with
# Xen's own helper disabled, the guest runs on with the pattern's md5 and the same memory size,
# figures against Xen's helper on the same file); then `helper_save_job` on the ballooned guest
# (`xl save` through xsr with its holes, a stock restore of it, `xl save -c` timed against Xen's
# helper, stock `xl migrate` failing for PV, `xl migrate` with xsr on both ends).
. ./common.sh
KEEP_GUEST=1 balloon_job
unset KEEP_GUEST
helper_save_job
exit $fail
