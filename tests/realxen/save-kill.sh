# realxen-guest: 128:1
# realxen job: the saver process dies while the guest is suspended (SIGKILL: what a crash in a
# C library looks like from outside, where no handler of its own can run): the supervising
# xsr process resumes the guest, exits 2 and leaves no file; the guest can be saved again.
. ./common.sh
./xsr save --domain "$GUEST" --out "$OUT/k.save" > "$OUT/k.txt" 2>&1 &
parent=$!
i=0; while [ $i -lt 200 ]; do st=$(xl list "$GUEST" 2>/dev/null | awk 'NR==2{print $5}'); case "$st" in *s*) break;; esac; sleep 0.05; i=$((i+1)); done
log "state before kill: $st"
child=$(pgrep -P $parent)
log "parent $parent child $child"
kill -9 $child
wait $parent; rc=$?
cat "$OUT/k.txt"
log "exit $rc"
check [ $rc -eq 2 ]
ls -la "$OUT"
check [ ! -e "$OUT/k.save" ]
check [ -z "$(ls -A $OUT | grep partial)" ]
check runs_on
./xsr save --domain "$GUEST" --out "$OUT/ok.save" --keep-running; check [ $? -eq 0 ]
check runs_on
rm -f $OUT/*.save
exit $fail
