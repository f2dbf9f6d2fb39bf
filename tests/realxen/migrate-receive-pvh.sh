# realxen-guest: 32:1:100
# realxen-guest-type: pvh
# realxen job (issue 16): stock `xl migrate` of the pvh guest (rewriting 100 pages a second) into
# `xsr migrate-receive` within one dom0, twice, with Xen's helper disabled for the receiver:
# the guest runs on as one copy, heartbeat continuing, same pattern md5 (xl_into_xsr_job).
. ./common.sh
xl_into_xsr_job
exit $fail
