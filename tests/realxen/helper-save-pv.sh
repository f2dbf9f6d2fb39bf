# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14): xsr as libxl's save helper in save mode for the standard PV guest
# (`helper_save_job` in common.sh, with Xen's own libxl-save-helper disabled): `xl save` through
# xsr, then a stock `xl restore` of the file; `xl save -c` timed through xsr and through Xen's
# helper; stock `xl migrate` shown to fail on this Xen (no log-dirty for PV), then `xl migrate`
# with xsr on both ends.
. ./common.sh
helper_save_job
exit $fail
