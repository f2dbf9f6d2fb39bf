# realxen-guest: 48:1
# realxen-guest-type: pv
# realxen job (issue 14): a ballooned PV guest restored through xsr as libxl's save helper
# (`balloon_job` in common.sh: the 48 MiB guest gives 16 MiB back to Xen, so its p2m has holes
# that `xl save` sends as XTAB; then `restore_job`: `xl restore` and `xsr restore --domain` with
# Xen's own helper disabled, the guest runs on with the pattern's md5 and the same memory size,
# figures against Xen's helper on the same file).
. ./common.sh
balloon_job
exit $fail
