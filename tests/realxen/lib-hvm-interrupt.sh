# The body of interrupt-pvh.sh and interrupt-hvm.sh: an xsr dump or save of a PVH or HVM guest
# that is interrupted (SIGINT, SIGTERM) or killed outright (SIGKILL of the working process, whose
# supervising parent then puts the domain back) leaves the guest as found: running unpaused with
# the pattern md5, Xen's log-dirty mode off (shown by Xen itself: logdirty_off), QEMU running
# (QMP query-status), no output and no temporary file. One-pfn batches make the copies slow
# enough to interrupt.
. ./common.sh
. ./lib-hvm.sh
./xsr --version
# wait_state LETTER: until xl list shows LETTER (p paused, s suspended) in the guest's state
wait_state() { i=0; while [ $i -lt 600 ]; do case "$(dom_state "$GUEST")" in *$1*) return 0 ;; esac; sleep 0.05; i=$((i+1)); done; return 1; }
mkdir -p "$OUT/d"

# 1. A paused dump, SIGTERM mid-copy.
./xsr dump --domain "$GUEST" --out "$OUT/d/term.elf" --batch 1 > "$OUT/term.txt" 2>&1 &
pid=$!
check wait_state p
kill -TERM $pid; wait_for $pid 120; rc=$?
log "paused dump, SIGTERM: exit $rc: $(cat "$OUT/term.txt")"
check [ $rc -ne 0 ]
check grep -q "interrupted by signal 15" "$OUT/term.txt"
check no_partial "$OUT/d"
check [ ! -e "$OUT/d/term.elf" ]
require left_as_found

# 2. A paused dump whose worker is killed (SIGKILL) while the guest is paused.
./xsr dump --domain "$GUEST" --out "$OUT/d/kill.elf" --batch 1 > "$OUT/kill.txt" 2>&1 &
pid=$!
check wait_state p
child=$(child_of $pid); log "dump $pid, worker $child"
kill -KILL "$child"; wait_for $pid 120; rc=$?
log "paused dump, worker SIGKILL: exit $rc: $(cat "$OUT/kill.txt")"
check [ $rc -eq 2 ]
check grep -q "unpaused" "$OUT/kill.txt"
check no_partial "$OUT/d"
require left_as_found

# 3. A live dump, SIGINT mid-copy (log-dirty and, for HVM, QEMU's log-dirty on).
./xsr dump --domain "$GUEST" --out "$OUT/d/int.elf" --live --batch 1 > "$OUT/int.txt" 2>&1 &
pid=$!
child=$(child_of $pid)
check wait_copying "$child"
check running
kill -INT $pid; wait_for $pid 120; rc=$?
log "live dump, SIGINT: exit $rc: $(cat "$OUT/int.txt")"
check [ $rc -ne 0 ]
check grep -q "interrupted by signal 2" "$OUT/int.txt"
check no_partial "$OUT/d"
require left_as_found

# 4. A live dump whose worker is killed mid-copy: its parent turns log-dirty modes off.
./xsr dump --domain "$GUEST" --out "$OUT/d/kill-live.elf" --live --batch 1 > "$OUT/kill-live.txt" 2>&1 &
pid=$!
child=$(child_of $pid)
check wait_copying "$child"
kill -KILL "$child"; wait_for $pid 120; rc=$?
log "live dump, worker SIGKILL: exit $rc: $(cat "$OUT/kill-live.txt")"
check [ $rc -eq 2 ]
check grep -q "log-dirty mode turned off" "$OUT/kill-live.txt"
check no_partial "$OUT/d"
require left_as_found

# 5. A plain save, SIGTERM while the guest is suspended and its memory copied.
./xsr save --domain "$GUEST" --out "$OUT/d/term.save" --batch 1 > "$OUT/save-term.txt" 2>&1 &
pid=$!
check wait_state s
check wait_writing "$OUT/d"
log "HVM_PARAM_CALLBACK_IRQ while suspended: $(hvm_param 0)"
kill -TERM $pid; wait_for $pid 120; rc=$?
log "save, SIGTERM: exit $rc: $(cat "$OUT/save-term.txt")"
watch_guest 6
check [ $rc -ne 0 ]
check grep -qi interrupt "$OUT/save-term.txt"
check [ -z "$(ls -A "$OUT/d")" ]
require left_as_found

# 6. A live save, SIGINT during the pre-copy.
./xsr save --domain "$GUEST" --out "$OUT/d/int.save" --live --batch 1 --max-iterations 20 --dirty-threshold 0 > "$OUT/save-int.txt" 2>&1 &
pid=$!
check wait_writing "$OUT/d"
check running
kill -INT $pid; wait_for $pid 120; rc=$?
log "live save, SIGINT: exit $rc: $(cat "$OUT/save-int.txt")"
check [ $rc -ne 0 ]
check grep -qi interrupt "$OUT/save-int.txt"
check [ -z "$(ls -A "$OUT/d")" ]
require left_as_found

# 7. A save whose worker is killed while the guest is suspended (HVM: QEMU stopped too).
./xsr save --domain "$GUEST" --out "$OUT/d/kill.save" --live --batch 1 --max-iterations 2 > "$OUT/save-kill.txt" 2>&1 &
pid=$!
child=$(child_of $pid)
check wait_state s
check wait_writing "$OUT/d"
log "QEMU while the save copies suspended: $(qemu_status)"
kill -KILL "$child"; wait_for $pid 120; rc=$?
log "save, worker SIGKILL: exit $rc: $(cat "$OUT/save-kill.txt")"
check [ $rc -eq 2 ]
check grep -q "resumed" "$OUT/save-kill.txt"
check [ -z "$(ls -A "$OUT/d")" ]
require left_as_found

# 8. After all that, the guest saves normally and the file verifies.
check ./xsr save --domain "$GUEST" --out "$OUT/after.save" --live --keep-running
check ./xsr verify --strict "$OUT/after.save"
require left_as_found
rm -f "$OUT/after.save"
exit $fail
