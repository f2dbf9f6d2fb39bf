# realxen-guest: 32:1:100
# realxen-guest-type: hvm
# realxen job (issue 14), the standard guest as HVM rewriting 100 pages a second, xsr as libxl's save helper both ways, with
# Xen's own helper disabled: restores (`restore_job` in common.sh: `xl restore`, then
# `xsr restore --domain`; figures against Xen's helper on the same file, same boot), then in the
# same boot saves (`helper_save_job`: `xl save` through xsr and a stock `xl restore` of it,
# `xl save -c` timed through both helpers, `xl migrate` with Xen's helper sending and xsr
# receiving, then with xsr on both ends).
. ./common.sh
KEEP_GUEST=1 restore_job
helper_save_job
exit $fail
