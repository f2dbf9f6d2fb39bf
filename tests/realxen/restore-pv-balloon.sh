# realxen-guest: 48:1
# realxen-guest-type: pv
# realxen job (issue 14): a ballooned PV guest restored through xsr as libxl's save helper. The
# 48 MiB guest gives 16 MiB back to Xen (`xl mem-set`: its balloon driver returns the frames, so
# its p2m has holes and `xl save` sends those pfns as XTAB); then `restore_job` (common.sh):
# `xl restore` and `xsr restore --domain` with Xen's own helper disabled, the guest runs on with
# the pattern's md5 and the same memory size, figures against Xen's helper on the same file.
. ./common.sh
mem_mb() { xl list "$GUEST" | awk 'NR == 2 { print $3 }'; }
log "before the balloon: $(mem_mb) MiB"
xl mem-set "$GUEST" 32m
i=0; while [ "$(mem_mb)" -gt 33 ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
log "after xl mem-set 32m and ${i}s: $(mem_mb) MiB"
check [ "$(mem_mb)" -le 33 ]
check runs_on
# saved_hook FILE (called by restore_job on its xl save file): the p2m's holes are in it as XTAB
saved_hook() {
    ./xsr inspect "$1" | grep '^pages:' | tee "$OUT/balloon-pages.txt"
    check grep -q 'XTAB [0-9]' "$OUT/balloon-pages.txt"
}
restore_job
check [ "$restored_mb" -le 33 ]
exit $fail
