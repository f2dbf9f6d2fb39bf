# realxen-guest: 32:1
# realxen job: xsr dump of the running standard guest, paused (raw, ELF) and live (ELF, LiME), next to
# `xl dump-core` of the same guest in the same boot. Here: exit codes, the guest runs on with
# the same pattern md5 after each dump, throughput figures. On the host (cargo xtask realxen):
# the pattern pages and their guest-physical addresses in the raw, ELF and LiME dumps against
# xl.core, and readelf/gdb on the ELF files.
. ./common.sh
./xsr --version

ms xl dump-core "$GUEST" "$OUT/xl.core" < /dev/null || fail=1
core_ms=$MS
check running

ms ./xsr dump --domain "$GUEST" --out "$OUT/xsr.raw" --format raw --json > "$OUT/dump-paused.json" || fail=1
xsr_ms=$MS
cat "$OUT/dump-paused.json"
check runs_on

ms ./xsr dump --domain "$DOMID" --out "$OUT/xsr-live.elf" --live --json > "$OUT/dump-live.json" || fail=1
cat "$OUT/dump-live.json"
check runs_on

# The text summary, for the README.
./xsr dump --domain "$GUEST" --out "$OUT/xsr.elf" || fail=1
check runs_on
./xsr dump --domain "$GUEST" --out "$OUT/xsr.lime" --format lime --live || fail=1
check runs_on

pages=$(json_field "$OUT/dump-paused.json" pages)
figure guest-pages "$pages"
figure xl-dump-core-ms "$core_ms"
figure xsr-dump-paused-ms "$xsr_ms"
figure xsr-vs-dump-core-speedup "$(echo "$core_ms $xsr_ms" | awk '{ printf "%.2f", $1 / ($2 > 0 ? $2 : 1) }')"
figure xsr-paused-pause-ms "$(json_field "$OUT/dump-paused.json" paused_ms)"
figure xsr-live-pause-ms "$(json_field "$OUT/dump-live.json" paused_ms)"
ls -ls "$OUT"
exit $fail
