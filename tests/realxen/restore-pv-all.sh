# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14): the PV jobs of issue 14 in one boot, one guest after the other: the body
# of restore-pv (the standard guest restored and saved through xsr, `xl migrate` with xsr on both
# ends), then restore-pv-balloon's (a 48 MiB guest ballooned to 32 MiB), restore-pv-2vcpu's (a
# 2-vcpu guest restored through xsr) and restore-faults' (failing restores leave no domain); see
# those jobs, common.sh and lib-restore-faults.sh.
. ./common.sh
. ./lib-restore-faults.sh
log "=== restore-pv"
KEEP_GUEST=1 restore_job
helper_save_job
unset KEEP_GUEST
log "=== restore-pv-balloon"
if new_guest pv 48 1; then balloon_job; else log "CHECK-FAIL new_guest pv 48 1"; fail=1; fi
log "=== restore-pv-2vcpu"
if new_guest pv 32 2; then restore_job; else log "CHECK-FAIL new_guest pv 32 2"; fail=1; fi
log "=== restore-faults"
if new_guest pv 32 1; then faults_job; else log "CHECK-FAIL new_guest pv 32 1"; fail=1; fi
exit $fail
