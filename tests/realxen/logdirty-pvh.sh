# realxen-guest: 128:2:256
# realxen-guest-type: pvh
# realxen job: is a PVH guest's death after an interrupted live dump xsr's doing or the nested
# host's? (all-pvh 13:34: the 2-vcpu guest triple-faulted ~1 s after an `xsr dump --live` whose
# worker was killed, when the supervisor had turned Xen's log-dirty mode off.) Part A, Xen alone:
# log-dirty on for 2 s, then off (XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY / _OFF through dom0's
# libxenctrl, no xsr), ten times, the heartbeat checked after each. Part B: the same guest (or a
# fresh one if A killed it), six live dumps, every other one with its worker killed mid-copy (xsr's supervisor
# turns log-dirty off) or that run to their end, the heartbeat checked after each. Both parts
# begin with a suspend and resume of the guest by Xen's own `xl save -c`. Counts of survived cycles are figures.
. ./common.sh
./xsr --version
DOMID=$(xl domid "$GUEST")
# A suspend and resume first (`xl save -c`, Xen's own), as in all-pvh before each crash.
ms xl save -c "$GUEST" "$OUT/c.save" < /dev/null; log "xl save -c: exit $?"; rm -f "$OUT/c.save"
a_ok=0
for n in 1 2 3 4 5 6 7 8 9 10; do
    xen_logdirty "$DOMID" 2 || log "cycle $n: enable failed"
    sleep 2
    xen_logdirty "$DOMID" 0 || log "cycle $n: off failed"
    if alive; then a_ok=$((a_ok+1)); log "A cycle $n: alive"; else log "A cycle $n: the guest died: $(xl list "$GUEST" 2>&1 | tail -n 1)"; break; fi
done
figure xen-logdirty-cycles-survived "$a_ok/10"
xl dmesg | grep -A3 -i 'triple' | head -20
if [ $a_ok -lt 10 ]; then
    new_guest pvh 128 2 256 || { log "no fresh guest"; exit 1; }
fi
mkdir -p "$OUT/d"
ms xl save -c "$GUEST" "$OUT/c.save" < /dev/null; log "xl save -c: exit $?"; rm -f "$OUT/c.save"
b_ok=0
for n in 1 2 3 4 5 6; do
    ./xsr dump --domain "$GUEST" --out "$OUT/d/kill.elf" --live --batch 1 > "$OUT/kill-$n.txt" 2>&1 &
    pid=$!
    child=$(child_of $pid)
    wait_copying "$child"
    # (n, not i: wait_copying and child_of count with i) odd cycles: the worker killed mid-copy; even ones: the dump runs to its end
    [ $((n % 2)) -eq 1 ] && kill -KILL "$child"
    wait_for $pid 300; rm -f "$OUT/d/kill.elf"
    log "B cycle $n: $(cat "$OUT/kill-$n.txt")"
    if alive; then b_ok=$((b_ok+1)); log "B cycle $n: alive"; else log "B cycle $n: the guest died: $(xl list "$GUEST" 2>&1 | tail -n 1)"; break; fi
done
figure xsr-killed-live-dump-cycles-survived "$b_ok/6"
xl dmesg | grep -A3 -i 'triple' | head -20
check [ $a_ok -eq 10 ]
check [ $b_ok -eq 6 ]
exit $fail
