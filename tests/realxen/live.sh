# realxen-guest: 32:1:256
# realxen job: pause time of a paused dump against a --live dump, in the same boot, while the
# guest rewrites 256 pages a second (REALXEN_GUEST=32:1:256). Three rounds; each dump must
# leave the guest running with the same pattern md5, and every live pause must be shorter.
. ./common.sh
rounds=3
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
    check awk -v l="$l" -v p="$p" 'BEGIN { exit !(l + 0 < p + 0) }'
    figure "paused-dump-pause-ms-$r" "$p"
    figure "live-dump-pause-ms-$r" "$l"
    figure "live-dump-pages-written-per-pass-$r" "$(echo $pages | tr ' ' '/')"
    rm -f "$OUT/paused-$r.elf" "$OUT/live-$r.elf"
done
cat "$OUT/live-$rounds.json"
exit $fail
