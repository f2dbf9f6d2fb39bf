# realxen-guest: 32:1:256
# realxen job: pause time of a paused dump against a --live dump, in the same boot, while the
# guest rewrites 256 pages a second (REALXEN_GUEST=32:1:256). Three rounds; each dump must
# leave the guest running with the same pattern md5, and the live dumps' median pause must be
# shorter than the paused dumps' median pause.
. ./common.sh
rounds=3
# The text summaries, once each (for the README).
./xsr dump --domain "$GUEST" --out "$OUT/text-paused.elf" || fail=1
./xsr dump --domain "$GUEST" --out "$OUT/text-live.lime" --format lime --live || fail=1
rm -f "$OUT/text-paused.elf" "$OUT/text-live.lime"
check runs_on
for r in $(seq 1 $rounds); do
    ./xsr dump --domain "$GUEST" --out "$OUT/paused-$r.elf" --json > "$OUT/paused-$r.json" || fail=1
    check runs_on
    ./xsr dump --domain "$GUEST" --out "$OUT/live-$r.elf" --live --json > "$OUT/live-$r.json" || fail=1
    check runs_on
    p=$(json_field "$OUT/paused-$r.json" paused_ms)
    l=$(json_field "$OUT/live-$r.json" paused_ms)
    passes=$(grep -c '"pass":' "$OUT/live-$r.json")
    pages=$(sed -n 's/^      "written": \([0-9]*\),*$/\1/p' "$OUT/live-$r.json" | tr '\n' ' ')
    tracking=$(sed -n 's/^  "dirty_tracking": "\(.*\)",$/\1/p' "$OUT/live-$r.json")
    log "round $r: paused dump paused the guest ${p} ms; live dump ${l} ms after $passes passes ($tracking) writing $pages pages"
    echo "$p" >> "$OUT/paused-ms.txt"
    echo "$l" >> "$OUT/live-ms.txt"
    figure "paused-dump-pause-ms-$r" "$p"
    figure "live-dump-pause-ms-$r" "$l"
    figure "live-dump-pages-written-per-pass-$r" "$(echo $pages | tr ' ' '/')"
    rm -f "$OUT/paused-$r.elf" "$OUT/live-$r.elf"
done
# Pause times under TCG on a shared host vary several-fold from one dump to the next, so the
# comparison is of the medians of the rounds (each round's figures are printed above).
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
pm=$(median "$OUT/paused-ms.txt"); lm=$(median "$OUT/live-ms.txt")
log "median pause over $rounds rounds: paused dump ${pm} ms, live dump ${lm} ms"
check awk -v l="$lm" -v p="$pm" 'BEGIN { exit !(l + 0 < p + 0) }'
figure paused-dump-pause-ms-median "$pm"
figure live-dump-pause-ms-median "$lm"
cat "$OUT/live-$rounds.json"
exit $fail
