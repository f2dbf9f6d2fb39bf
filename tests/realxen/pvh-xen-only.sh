# realxen-guest: 128:2:256
# realxen-guest-type: pvh
# realxen job: the control for the PVH guest's triple faults in all-pvh, with no xsr at all: for
# 8 minutes the guest of all-pvh (128 MiB, 2 vcpus, rewriting 256 pages a second) goes through
# what all-pvh puts it through, done by Xen's own tools and dom0 alone: `xl save -c` (suspend,
# resume, 134 MB written), Xen's log-dirty mode on for 3 s and off (dom0's libxenctrl from
# python), a 60 s-bounded `xl dump-core` now and then, and 134 MB written to the transfer disk
# with fsync (the load under which all-pvh's guest died at 13:45); the heartbeat is checked after
# each step. The count of rounds survived is the figure; a death is logged with Xen's dump.
. ./common.sh
DOMID=$(xl domid "$GUEST")
died() { log "round $n, $1: the guest died: $(xl list "$GUEST" 2>&1 | tail -n 1)"; xl dmesg | grep -A6 -i 'triple' | head -20; }
end=$(( $(date +%s) + 480 )); n=0; survived=0; dead=
while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n+1))
    ms xl save -c "$GUEST" "$OUT/c.save" < /dev/null; rm -f "$OUT/c.save"
    alive || { died "xl save -c"; dead=1; break; }
    xen_logdirty "$DOMID" 2; sleep 3; xen_logdirty "$DOMID" 0
    alive || { died "log-dirty"; dead=1; break; }
    if [ $((n % 3)) -eq 1 ]; then
        ms timeout 60 xl dump-core "$GUEST" "$OUT/core.partial" < /dev/null; xl unpause "$GUEST" 2>/dev/null; rm -f "$OUT/core.partial"
        alive || { died "xl dump-core"; dead=1; break; }
    fi
    ms dd if=/dev/zero of="$OUT/load.bin" bs=1M count=128 conv=fsync status=none; rm -f "$OUT/load.bin"
    alive || { died "dom0 disk writes"; dead=1; break; }
    survived=$n; log "round $n: alive"
done
figure xen-only-rounds-survived "$survived${dead:+ (died in round $n)}"
check [ -z "$dead" ]
exit $fail
