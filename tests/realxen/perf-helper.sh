# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen-perf
# realxen job (issue 14's speed goal): where the save helpers' time goes in this nested host's
# dom0. The standard PV guest is saved once by stock `xl save`; then `xl restore -p` of that
# file runs three times through Xen's libxl-save-helper and three times through xsr,
# alternately, each under this host's `perf record` (the cpu-clock software event: a PV dom0
# has no PMU, 2000 samples a second, the whole process tree of xl, libxl's helper included);
# then `xl save -c` of the restored guest the same way. $OUT/perf-OP-HELPER-N.txt are the
# profiles (per command, shared object and symbol; kernel symbols from dom0's kallsyms); the
# log gives each helper's share by shared object. Then one more round of each under `perf record
# -g` (kernel call chains: which system call or fault the kernel time serves;
# $OUT/perf-OP-HELPER-g.txt) and under `perf trace -s` (system calls by count and time,
# $OUT/trace-OP-HELPER.txt). No check but that both helpers do the work.
. ./common.sh
mkdir -p /tmp/perf && tar -xf "$IN/perf.tar" -C /tmp
PERF="env LD_LIBRARY_PATH=/tmp/perf /tmp/perf/perf"
log "perf: $($PERF --version 2>&1)"
echo 0 > /proc/sys/kernel/kptr_restrict 2>/dev/null
echo -1 > /proc/sys/kernel/perf_event_paranoid 2>/dev/null
timed xl save "$GUEST" "$OUT/g.save" < /dev/null || exit 1
check gone
# profile OP HELPER N CMD...: CMD under perf record, its profile in $OUT/perf-OP-HELPER-N.txt
profile() {
    _op=$1 _h=$2 _r=$3; shift 3
    if [ $_h = xsr ]; then _helper=$IN/xsr; else _helper=$XEN_HELPER; fi
    _d=/tmp/perf-$_op-$_h-$_r.data
    ms $PERF record -q -F 2000 -o "$_d" -- env LIBXL_SAVE_HELPER="$_helper" "$@" < /dev/null > "$OUT/$_op-$_h-$_r.txt" 2>&1
    _prc=$?
    log "round $_r, $_h: $_op under perf: exit $_prc in $MS ms"
    check [ $_prc -eq 0 ]
    $PERF report -i "$_d" --stdio --no-children --sort comm,dso,sym --percent-limit 0.3 \
        > "$OUT/perf-$_op-$_h-$_r.txt" 2> "$OUT/perf-$_op-$_h-$_r.err"
    $PERF report -i "$_d" --stdio --no-children --comm "$( [ $_h = xsr ] && echo xsr || echo libxl-save-help )" \
        --sort dso,sym --percent-limit 0.05 > "$OUT/perf-$_op-$_h-$_r.helper.txt" 2>/dev/null
    $PERF report -i "$_d" --stdio --no-children --sort comm,dso --percent-limit 1 \
        2>/dev/null | grep -v '^#' | grep -v '^$' > "$OUT/perf-$_op-$_h-$_r.dso.txt"
    log "round $_r, $_h, $_op by command and object: $(head -n 12 "$OUT/perf-$_op-$_h-$_r.dso.txt" | tr -s ' ' | tr '\n' '|')"
    rm -f "$_d"
}
# calls OP HELPER CMD...: CMD once under perf record -g and once under perf trace -s
calls() {
    _op=$1 _h=$2; shift 2
    if [ $_h = xsr ]; then _helper=$IN/xsr; else _helper=$XEN_HELPER; fi
    if [ $_h = xsr ]; then _comm=xsr; else _comm=libxl-save-help; fi
    _d=/tmp/perf-$_op-$_h-g.data
    $PERF record -q -g -F 2000 -o "$_d" -- env LIBXL_SAVE_HELPER="$_helper" "$@" < /dev/null > /dev/null 2>&1
    $PERF report -i "$_d" --stdio --no-children --comm "$_comm" --dso '[kernel.kallsyms]' --sort sym \
        -g caller,0.5,callee,function,percent --percent-limit 1.5 > "$OUT/perf-$_op-$_h-g.txt" 2>&1
    rm -f "$_d"
    if [ "$_op" = restore ]; then xl destroy "$GUEST"; fi
    rm -f /tmp/c.save
    $PERF trace -s -o "$OUT/trace-$_op-$_h.txt" -- env LIBXL_SAVE_HELPER="$_helper" "$@" < /dev/null > /dev/null 2>&1
    log "$_op through $_h under perf trace: exit $?: $(grep -A14 "$_comm" "$OUT/trace-$_op-$_h.txt" | tr -s ' ' | tr '\n' '|' | cut -c1-900)"
}
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
for r in 1 2 3; do
    for h in xen xsr; do
        profile restore $h $r xl restore -p "$OUT/g.save"
        xl destroy "$GUEST"
        check gone
    done
done
for h in xen xsr; do
    calls restore $h xl restore -p "$OUT/g.save"
    xl destroy "$GUEST"
    check gone
done
xl restore -e "$OUT/g.save" < /dev/null
for h in xen xsr; do
    calls save $h xl save -c "$GUEST" /tmp/c.save
done
for r in 1 2 3; do
    for h in xen xsr; do
        profile save $h $r xl save -c "$GUEST" "/tmp/c.save"
        rm -f /tmp/c.save
    done
done
exit $fail
