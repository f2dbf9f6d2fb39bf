# realxen job for examples/xen-probe.rs (sr-xen's Xen calls on a real Xen 4.17), kept beside the
# example rather than in tests/realxen because it needs the example binary, which
# `cargo xtask realxen` does not build. Run from the repository:
#   cargo build --release --example xen-probe -p sr-xen && cargo build --release
#   flock /tmp/realxen.lock ../shared/realxen/realxen.sh job crates/sr-xen/examples/xen-probe-job.sh \
#       target/release/examples/xen-probe target/release/xsr tests/realxen/common.sh
# (REALXEN_GUEST=32:2 for a 2-vcpu guest.)
#
# sr-xen's xen-probe on the real Xen: every call of a PV saver, suspend + resume (guest must
# carry on with the same md5), byte comparison with xl save's records of the same guest, the
# suspend failure path (too short timeouts: the request is withdrawn, or the guest that took it
# is resumed), then destroy (xl list must not show the guest).
. ./common.sh
# rec_body FILE TYPE SKIP: the body of the first record TYPE in FILE (xsr inspect's offsets),
# after SKIP further bytes (the vcpu header of per-vcpu records)
rec_body() {
    set -- "$1" $(awk -v t="$2" '$4 == t { print $1, $5; exit }' "$OUT/xl-inspect.txt") "$3"
    dd if="$1" bs=1 skip=$(( $2 + 8 + $4 )) count=$(( $3 - $4 )) 2>/dev/null
}
log "probe: guest $GUEST domid $DOMID"
mkdir -p "$OUT/dump"
xen-probe "$GUEST" --dump "$OUT/dump" > "$OUT/probe-resume.txt" 2> "$OUT/probe-resume.err"; rc=$?
log "xen-probe (suspend+resume) exit $rc"; cat "$OUT/probe-resume.txt"; log "stderr:"; cat "$OUT/probe-resume.err"
check [ $rc -eq 0 ]
check runs_on
log "console tail after suspend+resume:"; tail -n 6 "$(conlog "$GUEST")"

timed xl save -c "$GUEST" "$OUT/xl.save" < /dev/null
check runs_on
xsr inspect "$OUT/xl.save" > "$OUT/xl-inspect.txt" 2>&1
grep -v PAGE_DATA "$OUT/xl-inspect.txt"
# the xl header: 48 bytes, the u32 config length, the config
cfglen=$(stat -c %s "$OUT/dump/config.json")
dd if="$OUT/xl.save" bs=1 skip=52 count="$cfglen" 2>/dev/null > "$OUT/xl-config.json"
check cmp "$OUT/dump/config.json" "$OUT/xl-config.json"
rec_body "$OUT/xl.save" X86_CPUID_POLICY 0 > "$OUT/xl-cpuid.bin"
check cmp "$OUT/dump/cpuid.bin" "$OUT/xl-cpuid.bin"
rec_body "$OUT/xl.save" X86_MSR_POLICY 0 > "$OUT/xl-msr.bin"
check cmp "$OUT/dump/msr.bin" "$OUT/xl-msr.bin"
rec_body "$OUT/xl.save" X86_PV_VCPU_EXTENDED 8 > "$OUT/xl-extended-0.bin"
check cmp "$OUT/dump/extended-0.bin" "$OUT/xl-extended-0.bin"
ls -l "$OUT/dump" "$OUT"/xl-*
rm -f "$OUT/xl.save"

for ms in 0 5 15; do
    xen-probe "$GUEST" --suspend-timeout-ms $ms > "$OUT/probe-timeout-$ms.txt" 2>&1; rc=$?
    log "xen-probe --suspend-timeout-ms $ms exit $rc"; cat "$OUT/probe-timeout-$ms.txt"
    check [ $rc -eq 0 ]
    check runs_on
    log "control/shutdown now: '$(xenstore-read "/local/domain/$DOMID/control/shutdown" 2>&1)'"
done

xen-probe "$GUEST" --destroy > "$OUT/probe-destroy.txt" 2> "$OUT/probe-destroy.err"; rc=$?
log "xen-probe --destroy exit $rc"; cat "$OUT/probe-destroy.txt"; log "stderr:"; cat "$OUT/probe-destroy.err"
check [ $rc -eq 0 ]
xl list
check [ -z "$(xl list | awk -v g="$GUEST" '$1 == g')" ]
check [ "$(xl list | wc -l)" -eq 2 ]
exit $fail
