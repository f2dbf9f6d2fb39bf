# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14), the standard PV guest, xsr as libxl's save helper both ways, with Xen's
# own helper disabled: restores (`restore_job` in common.sh: `xl restore`, then `xsr restore
# --domain`; figures against Xen's helper on the same file, same boot), then in the same boot
# saves (`helper_save_job`: `xl save` through xsr and a stock `xl restore` of it, `xl save -c`
# timed through both helpers, stock `xl migrate` shown to fail on this Xen (no log-dirty for PV),
# then `xl migrate` with xsr on both ends, pre-copy by comparison).
. ./common.sh
KEEP_GUEST=1 restore_job
helper_save_job
exit $fail
