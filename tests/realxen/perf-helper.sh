# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen-perf
# realxen job (issue 14's speed goal): where the save helpers' time goes in this nested host's
# dom0. The standard PV guest is saved once by stock `xl save`; then `xl restore -p` of that
# file runs three times through Xen's libxl-save-helper and three times through xsr,
# alternately, each under this host's `perf record` (the cpu-clock software event: a PV dom0
# has no PMU, 2000 samples a second, the whole process tree of xl, libxl's helper included).
# $OUT/perf-HELPER-N.txt are the profiles (per command, shared object and symbol; kernel
# symbols from dom0's kallsyms); the log gives each helper's share by shared object. No check
# but that both helpers restore.
. ./common.sh
mkdir -p /tmp/perf && tar -xf "$IN/perf.tar" -C /tmp
PERF="env LD_LIBRARY_PATH=/tmp/perf /tmp/perf/perf"
log "perf: $($PERF --version 2>&1)"
echo 0 > /proc/sys/kernel/kptr_restrict 2>/dev/null
echo -1 > /proc/sys/kernel/perf_event_paranoid 2>/dev/null
timed xl save "$GUEST" "$OUT/g.save" < /dev/null || exit 1
check gone
for r in 1 2 3; do
    for h in xen xsr; do
        if [ $h = xsr ]; then helper=$IN/xsr; else helper=$XEN_HELPER; fi
        ms $PERF record -q -F 2000 -o "/tmp/perf-$h-$r.data" -- env LIBXL_SAVE_HELPER="$helper" xl restore -p "$OUT/g.save" \
            < /dev/null > "$OUT/restore-$h-$r.txt" 2>&1; rc=$?
        log "round $r, $h: xl restore -p under perf: exit $rc in $MS ms"
        check [ $rc -eq 0 ]
        xl destroy "$GUEST"
        check gone
        $PERF report -i "/tmp/perf-$h-$r.data" --stdio --no-children --sort comm,dso,sym --percent-limit 0.3 \
            > "$OUT/perf-$h-$r.txt" 2> "$OUT/perf-$h-$r.err"
        $PERF report -i "/tmp/perf-$h-$r.data" --stdio --no-children --sort comm,dso --percent-limit 1 \
            2>/dev/null | grep -v '^#' | grep -v '^$' > "$OUT/perf-$h-$r.dso.txt"
        log "round $r, $h by command and object: $(head -n 12 "$OUT/perf-$h-$r.dso.txt" | tr -s ' ' | tr '\n' '|')"
    done
done
exit $fail
