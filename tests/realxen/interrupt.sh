# realxen-guest: 128:1
# realxen job: a dump that is killed or fails mid-copy leaves the domain running, unpaused,
# with log-dirty off. A 128 MiB guest and 1-pfn batches make the copy slow enough to kill.
# "log-dirty off" is shown by Xen itself: enabling log-dirty fails while it is on (a second
# --live dump during the first fails), and works again once the killed dump has cleaned up.
. ./common.sh
# wait_copying_prefix PREFIX: until the dump's temporary file PREFIX* holds some data (its name ends in
# the pid of the working process, the supervised child of the xsr started here)
wait_copying_prefix() {
    i=0
    while [ $i -lt 400 ]; do
        for f in "$1"*; do [ "$(du -k "$f" 2>/dev/null | cut -f1)" -gt 64 ] 2>/dev/null && return 0; done
        sleep 0.05; i=$((i+1))
    done
    return 1
}
# wait_copying_pid PID: until a file the working process of xsr PID (its supervised child) has
# open holds some data (the raw image a core is made from has no name: an O_TMPFILE beside the
# output)
wait_copying_pid() {
    i=0
    while [ $i -lt 400 ]; do
        for f in /proc/"$1"/fd/* /proc/$(pgrep -P "$1" | head -n 1)/fd/*; do
            [ "$(stat -L -c %b "$f" 2>/dev/null || echo 0)" -gt 128 ] && return 0
        done
        sleep 0.05; i=$((i+1))
    done
    return 1
}

# 1. Paused dump, SIGTERM mid-copy: the guest was paused by the dump.
./xsr dump --domain "$GUEST" --out "$OUT/term.raw" --format raw --batch 1 > "$OUT/term.txt" 2>&1 &
pid=$!
check wait_copying_prefix "$OUT/.term.raw.partial-"
state=$(dom_state "$GUEST"); log "state while the paused dump copies: '$state'"
check [ "${state#*p}" != "$state" ]
kill -TERM $pid; wait $pid; rc=$?
log "SIGTERM: exit $rc: $(cat "$OUT/term.txt")"
check [ $rc -ne 0 ]
check grep -q "interrupted by signal 15" "$OUT/term.txt"
check [ ! -e "$OUT/term.raw" ]
check [ -z "$(ls -A "$OUT" | grep partial)" ]
check runs_on

# 1b. The same with SIGHUP (the terminal or ssh session that ran it went away).
./xsr dump --domain "$GUEST" --out "$OUT/hup.raw" --format raw --batch 1 > "$OUT/hup.txt" 2>&1 &
pid=$!
check wait_copying_prefix "$OUT/.hup.raw.partial-"
kill -HUP $pid; wait $pid; rc=$?
log "SIGHUP: exit $rc: $(cat "$OUT/hup.txt")"
check [ $rc -eq 2 ]
check grep -q "interrupted by signal 1" "$OUT/hup.txt"
check [ ! -e "$OUT/hup.raw" ]
check [ -z "$(ls -A "$OUT" | grep partial)" ]
check runs_on

# 2. Live dump, SIGINT mid-copy. Where Xen has log-dirty mode for the guest, a second live
#    dump meanwhile must fail (Xen refuses to enable it twice); where it has not (Debian's
#    4.17 is built without shadow paging, so PV guests have none) xsr uses compare pre-copy.
./xsr dump --domain "$GUEST" --out "$OUT/probe.elf" --live --json > "$OUT/probe.json" || fail=1
tracking=$(sed -n 's/^  "dirty_tracking": "\(.*\)",$/\1/p' "$OUT/probe.json")
log "live dump dirty tracking on this Xen: $tracking"
rm -f "$OUT/probe.elf"
./xsr dump --domain "$GUEST" --out "$OUT/int.elf" --live --batch 1 > "$OUT/int.txt" 2>&1 &
pid=$!
check wait_copying_pid $pid
if [ "$tracking" = log-dirty ]; then
    ./xsr dump --domain "$GUEST" --out "$OUT/second.elf" --live > "$OUT/second.txt" 2>&1; rc2=$?
    log "second live dump while the first runs: exit $rc2: $(cat "$OUT/second.txt")"
    check [ $rc2 -ne 0 ]
fi
check running
kill -INT $pid; wait $pid; rc=$?
log "SIGINT: exit $rc: $(cat "$OUT/int.txt")"
check [ $rc -ne 0 ]
check grep -q "interrupted by signal 2" "$OUT/int.txt"
check [ -z "$(ls -A "$OUT" | grep partial)" ]
check runs_on
check ./xsr dump --domain "$GUEST" --out "$OUT/after-int.elf" --live
check runs_on
rm -f "$OUT/after-int.elf"

# 3. Dumps that fail mid-copy: the output filesystem fills up (an 8 MiB tmpfs for a 128 MiB dump).
mkdir -p /tmp/full && mount -t tmpfs -o size=8m tmpfs /tmp/full
./xsr dump --domain "$GUEST" --out /tmp/full/paused.raw --format raw > "$OUT/full-paused.txt" 2>&1; rc=$?
log "paused dump into a full filesystem: exit $rc: $(cat "$OUT/full-paused.txt")"
check [ $rc -ne 0 ]
check runs_on
./xsr dump --domain "$GUEST" --out /tmp/full/live.elf --live > "$OUT/full-live.txt" 2>&1; rc=$?
log "live dump into a full filesystem: exit $rc: $(cat "$OUT/full-live.txt")"
check [ $rc -ne 0 ]
check [ -z "$(ls -A /tmp/full)" ]
check runs_on
check ./xsr dump --domain "$GUEST" --out "$OUT/after-full.elf" --live
check runs_on
umount /tmp/full
rm -f "$OUT/after-full.elf"
exit $fail
