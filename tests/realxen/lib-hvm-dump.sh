# The body of dump-pvh.sh and dump-hvm.sh: xsr dump of the running standard guest (2 vcpus, its
# workload rewriting pages), paused (ELF) and live (ELF, LiME), next to `xl save -c` and a bounded
# `xl dump-core` of the same guest in the same boot, then three rounds of a paused against a live dump for their pause
# times. Here: exit codes, the guest left as found after every dump (running unpaused with the
# pattern md5, log-dirty off, QEMU running); the live dumps' median pause below the paused
# dumps'. On the host (cargo xtask realxen): the 1024 pattern pages in each dump at pfns where
# xl save -c has them, readelf and gdb seeing both vcpus (vcpus.txt).
# (No raw image here: an HVM guest's spans every gfn below its maximum, 4 GiB; the ELF and LiME
# files are written from the same raw image.)
. ./common.sh
. ./lib-hvm.sh
./xsr --version
xl vcpu-list "$GUEST"
xl vcpu-list "$GUEST" | awk 'NR > 1' | wc -l > "$OUT/vcpus.txt"

# The reference addresses of the pattern pages: `xl save -c` of the guest (seconds). `xl dump-core`
# of a PVH or HVM guest maps each of the ~1M gfns below the maximum on its own (13 minutes for
# the PVH guest here, measured once, see docs/xen.md), so it runs for at most CORE_LIMIT seconds
# and its time then counts as a lower bound.
CORE_LIMIT=${CORE_LIMIT:-60}
require xl_ref ms xl save -c "$GUEST" "$OUT/xl.save" < /dev/null
require left_as_found
keepalive "xl dump-core" & ka=$!
ms timeout "$CORE_LIMIT" xl dump-core "$GUEST" "$OUT/xl-core.partial" < /dev/null; core_rc=$?
core_ms=$MS
kill $ka
core_bytes=$(stat -c %s "$OUT/xl-core.partial" 2>/dev/null || echo 0)
log "xl dump-core: exit $core_rc after ${core_ms} ms, ${core_bytes} bytes written"
rm -f "$OUT/xl-core.partial"
# `timeout` kills xl on a signal: the domain may be left paused by it
xl unpause "$GUEST" 2>/dev/null
check left_as_found

ms ./xsr dump --domain "$GUEST" --out "$OUT/xsr.elf" --json > "$OUT/dump-paused.json" || fail=1
xsr_ms=$MS
cat "$OUT/dump-paused.json"
check left_as_found
ms ./xsr dump --domain "$DOMID" --out "$OUT/xsr-live.elf" --live --json > "$OUT/dump-live.json" || fail=1
cat "$OUT/dump-live.json"
check left_as_found
# The text summaries, for the docs.
./xsr dump --domain "$GUEST" --out "$OUT/xsr.lime" --format lime --live || fail=1
check left_as_found
check [ "$(json_str "$OUT/dump-paused.json" kind)" = "$GUEST_TYPE" ]
check [ "$(json_field "$OUT/dump-paused.json" vcpus)" = "$(cat "$OUT/vcpus.txt")" ]

rounds=3
for r in $(seq 1 $rounds); do
    ./xsr dump --domain "$GUEST" --out "$OUT/paused-$r.elf" --json > "$OUT/paused-$r.json" || fail=1
    check left_as_found
    ./xsr dump --domain "$GUEST" --out "$OUT/live-$r.elf" --live --json > "$OUT/live-$r.json" || fail=1
    check left_as_found
    p=$(json_field "$OUT/paused-$r.json" paused_ms)
    l=$(json_field "$OUT/live-$r.json" paused_ms)
    log "round $r: paused dump paused the guest ${p} ms; live dump ${l} ms ($(grep -c '"pass":' "$OUT/live-$r.json") passes)"
    echo "$p" >> "$OUT/paused-ms.txt"
    echo "$l" >> "$OUT/live-ms.txt"
    rm -f "$OUT/paused-$r.elf" "$OUT/live-$r.elf"
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
pm=$(median "$OUT/paused-ms.txt"); lm=$(median "$OUT/live-ms.txt")
log "median pause over $rounds rounds: paused dump ${pm} ms, live dump ${lm} ms"
check awk -v l="$lm" -v p="$pm" 'BEGIN { exit !(l + 0 < p + 0) }'

pages=$(json_field "$OUT/dump-paused.json" pages)
figure guest-pages "$pages"
figure xsr-dump-paused-ms "$xsr_ms"
if [ "$core_rc" -eq 0 ]; then
    figure xl-dump-core-ms "$core_ms"
    figure ratio-xl-dump-core-vs-xsr-dump-paused-wall "$(ratio "$core_ms" "$xsr_ms")"
else
    figure xl-dump-core-unfinished-after-ms "$core_ms (${core_bytes} bytes written)"
    figure ratio-xl-dump-core-vs-xsr-dump-paused-wall-at-least "$(ratio "$core_ms" "$xsr_ms")"
fi
# Throughput: what xl dump-core wrote (it writes page by page as it goes, the RAM at the lowest
# gfns first) over its time, against xsr's paused ELF dump.
core_mibs=$(echo "$core_bytes $core_ms" | awk '{ printf "%.3f", $1 / 1048576 / ($2 > 0 ? $2 / 1000 : 1) }')
figure xl-dump-core-mib-per-s "$core_mibs"
figure ratio-xsr-dump-vs-xl-dump-core-mib-per-s "$(ratio "$(json_field "$OUT/dump-paused.json" mib_per_sec)" "$core_mibs")"
figure xsr-dump-paused-mib-per-s "$(json_field "$OUT/dump-paused.json" mib_per_sec)"
figure xsr-gfn-scan-ms "$(json_field "$OUT/dump-paused.json" gfn_scan_ms)"
figure xsr-gfn-scan-calls "$(json_field "$OUT/dump-paused.json" gfn_scan_calls)"
figure paused-dump-pause-ms-median "$pm"
figure live-dump-pause-ms-median "$lm"
figure ratio-paused-vs-live-dump-pause "$(ratio "$pm" "$lm")"
ls -ls "$OUT"
exit $fail
