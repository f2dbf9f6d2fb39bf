# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14): xsr as libxl's save helper in save mode, for the standard PV guest, with
# Xen's own libxl-save-helper disabled (a stock `xl save` is shown to fail first, the guest
# running on). `xl save` through xsr (the domain is gone), `xsr verify --strict` of the file,
# then with Xen's helper back a stock `xl restore` of it: the heartbeat continues with the
# pattern's md5. Figures: `xl save -c` through xsr and through Xen's helper alternately
# (`polled` in common.sh: wall time and how long the guest was down), medians. Then `xl migrate`
# to localhost: with Xen's helper it fails on this Xen (no log-dirty for PV; the guest runs on),
# with xsr as the helper on both ends (pre-copy by comparison) it moves and runs on.
. ./common.sh
./xsr --version

disable_xen_helper
xl save "$GUEST" "$OUT/control.save" < /dev/null > "$OUT/control.txt" 2>&1; rc=$?
log "control: stock xl save with Xen's helper disabled: exit $rc: $(grep -i 'helper\|error' "$OUT/control.txt" | head -n 3 | tr '\n' ' ')"
check [ $rc -ne 0 ]
check runs_on
rm -f "$OUT/control.save"

hb=$(last_heartbeat "$GUEST")
ms env LIBXL_SAVE_HELPER="$IN/xsr" XSR_HELPER_REPORT="$OUT/save-report.json" xl save "$GUEST" "$OUT/x.save" \
    < /dev/null > "$OUT/xsr-save.txt" 2>&1; rc=$?
save_ms=$MS
cat "$OUT/xsr-save.txt" "$OUT/save-report.json"
log "xl save through xsr: exit $rc"
check [ $rc -eq 0 ]
check grep -q '"ok": true' "$OUT/save-report.json"
check gone
check ./xsr verify --strict "$OUT/x.save"
./xsr inspect "$OUT/x.save" | tail -n 8

enable_xen_helper
fresh_console "$GUEST"
ms xl restore -e "$OUT/x.save" < /dev/null || log "xl restore exit $? (judged by the domain)"
check wait_heartbeat_after "$GUEST" "$hb" 120
check runs_on
check vcpus_online "$GUEST"
rm -f "$OUT/x.save"

# The time figures: `xl save -c` (the guest resumes, so its downtime can be sampled) through
# Xen's helper and through xsr alternately, $TIME_ROUNDS times each; medians.
rm -f "$OUT"/s-*.ms "$OUT"/s-*.down
for r in $(seq "${TIME_ROUNDS:-3}"); do
    for h in xen xsr; do
        if [ $h = xen ]; then real=$XEN_HELPER; else real=$IN/xsr; fi
        polled "s-$h-$r" env HELPER_REAL="$real" LIBXL_SAVE_HELPER="$(timed_helper s-$h)" xl save -c "$GUEST" "$OUT/t.save" \
            || { log "xl save -c through $h: failed: $(tail -n 3 "$OUT/s-$h-$r.out")"; fail=1; }
        echo "$MS" >> "$OUT/s-$h.ms"
        echo "${DOWN_HI:-}" >> "$OUT/s-$h.down"
        rm -f "$OUT/t.save"
        check runs_on
    done
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for f in s-xen.ms s-xsr.ms s-xen.down s-xsr.down s-xen.helper-ms s-xsr.helper-ms; do log "$f: $(tr '\n' ' ' < "$OUT/$f")"; done

# xl migrate to localhost: stock (Xen's helper both ends) fails for PV on this Xen
hb=$(last_heartbeat "$GUEST")
src=$(xl domid "$GUEST")
xl migrate -s '' "$GUEST" "xl migrate-receive" < /dev/null > "$OUT/migrate-stock.txt" 2>&1; rc=$?
log "stock xl migrate of the PV guest: exit $rc: $(grep -i 'error\|fail' "$OUT/migrate-stock.txt" | head -n 4 | tr '\n' ' ')"
check [ $rc -ne 0 ]
check [ "$(xl domid "$GUEST")" = "$src" ]
check runs_on
no_domain "$GUEST--incoming" || log "left behind: $(xl list | grep incoming)"

disable_xen_helper
hb=$(last_heartbeat "$GUEST")
ms env LIBXL_SAVE_HELPER="$IN/xsr" XSR_HELPER_REPORT="$OUT/migrate-send.json" xl migrate -s '' "$GUEST" \
    "env LIBXL_SAVE_HELPER=$IN/xsr XSR_HELPER_REPORT=$OUT/migrate-receive.json xl migrate-receive" \
    < /dev/null > "$OUT/migrate.txt" 2>&1; rc=$?
mig_ms=$MS
cat "$OUT/migrate.txt" "$OUT/migrate-send.json" "$OUT/migrate-receive.json"
log "xl migrate with xsr on both ends: exit $rc"
check [ $rc -eq 0 ]
check grep -q '"ok": true' "$OUT/migrate-send.json"
check grep -q '"ok": true' "$OUT/migrate-receive.json"
check [ -n "$(xl domid "$GUEST")" ]
check [ "$(xl domid "$GUEST")" != "$src" ]
name="$GUEST"
[ -s "$(conlog "$GUEST--incoming")" ] && name="$GUEST--incoming"
check wait_heartbeat_after "$name" "$hb" 120
check running
now=$(last_heartbeat "$name")
check [ "$(heartbeat_md5_after "$name" "$now")" = "$PATTERN_MD5" ]
check vcpus_online "$GUEST"
enable_xen_helper

figure xl-save-through-xsr-ms "$save_ms"
figure xl-save-c-through-xsr-median-ms "$(median "$OUT/s-xsr.ms")"
figure xl-save-c-through-xen-median-ms "$(median "$OUT/s-xen.ms")"
figure ratio-xl-save-c-xsr-vs-xen "$(ratio "$(median "$OUT/s-xsr.ms")" "$(median "$OUT/s-xen.ms")")"
figure helper-save-xsr-median-ms "$(median "$OUT/s-xsr.helper-ms")"
figure helper-save-xen-median-ms "$(median "$OUT/s-xen.helper-ms")"
figure downtime-xsr-median-ms "$(median "$OUT/s-xsr.down")"
figure downtime-xen-median-ms "$(median "$OUT/s-xen.down")"
figure ratio-downtime-xsr-vs-xen "$(ratio "$(median "$OUT/s-xsr.down")" "$(median "$OUT/s-xen.down")")"
figure xl-migrate-xsr-both-ends-ms "$mig_ms"
figure migrate-sent-pages "$(json_field "$OUT/migrate-send.json" pages)"
exit $fail
