# realxen-guest: 128:1:256
# realxen job (issue 10): a `xsr save --domain` that is interrupted or fails mid-way leaves the
# guest running (resumed, with the same pattern md5) and no output: no file of that name and no
# temporary file. A 128 MiB guest makes the copy slow enough to interrupt; its workload rewrites
# 256 pages a second, so with --dirty-threshold 0 a live save keeps iterating. Each save writes
# into a folder of its own, so "no temporary file" does not depend on xsr's temporary names.
. ./common.sh
./xsr --version
# empty DIR: nothing at all is left in DIR
empty() { [ -z "$(ls -A "$1")" ] || { log "left in $1: $(ls -lA "$1")"; return 1; }; }

# 1. SIGTERM while a non-live save copies: the guest is suspended then, and must come back.
mkdir -p "$OUT/term"
./xsr save --domain "$GUEST" --out "$OUT/term/guest.save" > "$OUT/term.txt" 2>&1 &
pid=$!
check wait_writing "$OUT/term"
state=$(dom_state "$GUEST"); log "state while the save copies: '$state'"
check [ "${state#*s}" != "$state" ]
kill -TERM $pid; wait_for $pid 120; rc=$?
log "SIGTERM: exit $rc: $(cat "$OUT/term.txt")"
check [ $rc -ne 0 ]
check grep -qi interrupt "$OUT/term.txt"
check empty "$OUT/term"
check runs_on

# 1b. SIGHUP (the terminal or ssh session went away), passed on by the supervising parent.
mkdir -p "$OUT/hup"
./xsr save --domain "$GUEST" --out "$OUT/hup/guest.save" > "$OUT/hup.txt" 2>&1 &
pid=$!
check wait_writing "$OUT/hup"
kill -HUP $pid; wait_for $pid 120; rc=$?
log "SIGHUP: exit $rc: $(cat "$OUT/hup.txt")"
check [ $rc -eq 2 ]
check grep -qi interrupt "$OUT/hup.txt"
check empty "$OUT/hup"
check runs_on

# 2. SIGINT during the live pre-copy (the guest runs meanwhile).
mkdir -p "$OUT/int"
./xsr save --domain "$GUEST" --out "$OUT/int/guest.save" --live --max-iterations 20 --dirty-threshold 0 > "$OUT/int.txt" 2>&1 &
pid=$!
check wait_writing "$OUT/int"
check running
kill -INT $pid; wait_for $pid 120; rc=$?
log "SIGINT: exit $rc: $(cat "$OUT/int.txt")"
check [ $rc -ne 0 ]
check grep -qi interrupt "$OUT/int.txt"
check empty "$OUT/int"
check runs_on

# 3. The output filesystem fills up (8 MiB for a 128 MiB guest): plain and live.
mkdir -p /tmp/full && mount -t tmpfs -o size=8m tmpfs /tmp/full
./xsr save --domain "$GUEST" --out /tmp/full/plain.save > "$OUT/full-plain.txt" 2>&1; rc=$?
log "save into a full filesystem: exit $rc: $(cat "$OUT/full-plain.txt")"
check [ $rc -eq 2 ]
check empty /tmp/full
check runs_on
./xsr save --domain "$GUEST" --out /tmp/full/live.save --live > "$OUT/full-live.txt" 2>&1; rc=$?
log "live save into a full filesystem: exit $rc: $(cat "$OUT/full-live.txt")"
check [ $rc -eq 2 ]
check empty /tmp/full
check runs_on
umount /tmp/full

# 4. An unwritable place (a read-only filesystem): refused before the guest is touched.
#    --keep-running, so that a save that wrongly succeeded would not take the guest away.
mkdir -p /tmp/ro && mount -t tmpfs -o ro,size=1m tmpfs /tmp/ro
./xsr save --domain "$GUEST" --out /tmp/ro/guest.save --keep-running > "$OUT/ro.txt" 2>&1; rc=$?
log "save into a read-only filesystem: exit $rc: $(cat "$OUT/ro.txt")"
check [ $rc -eq 2 ]
check runs_on
umount /tmp/ro

# 5. After all that the guest saves normally (suspend, resume and log-dirty state are clean).
check ./xsr save --domain "$GUEST" --out "$OUT/after.save" --live --keep-running
check ./xsr verify --strict "$OUT/after.save"
check runs_on
rm -f "$OUT/after.save"
exit $fail
