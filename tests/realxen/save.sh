# realxen-guest: 32:1
# realxen job (issue 10): `xsr save --domain` of the running standard guest next to `xl save` of
# the same guest in the same boot. Here: `xl save -c` twice (xl.save timed; xl2.save with the
# guest's state sampled, see `polled` in common.sh), `xsr save --domain --keep-running` (the guest runs on with the same
# pattern md5), `xsr save --domain` (the guest is destroyed), `xsr verify --strict` of both xsr
# files in dom0, `xl restore -e` of the xsr file (the heartbeat continues with the same md5), and
# an `xl save -c` of the restored guest (its suspend path works again). On the host (cargo xtask
# realxen): xl.save against xl2.save (the control: what two saves of one guest share) and each
# xsr file against xl.save: record sequence, static records, vcpu record lengths, page types,
# page tables and the pattern pages' pfns.
. ./common.sh
./xsr --version

ms xl save -c "$GUEST" "$OUT/xl.save" < /dev/null || fail=1
xl_ms=$MS
check runs_on
polled xl2 xl save -c "$GUEST" "$OUT/xl2.save" || fail=1
xl_lo=$DOWN_LO xl_hi=$DOWN_HI
check runs_on

ms ./xsr save --domain "$GUEST" --out "$OUT/xsr-keep.save" --keep-running --json > "$OUT/save-keep.json" || fail=1
keep_ms=$MS
cat "$OUT/save-keep.json"
check [ "$(json_str "$OUT/save-keep.json" outcome)" = running ]
check [ "$(json_field "$OUT/save-keep.json" domid)" = "$DOMID" ]
check runs_on

hb=$(last_heartbeat "$GUEST")
ms ./xsr save --domain "$DOMID" --out "$OUT/xsr.save" --json > "$OUT/save.json" || fail=1
xsr_ms=$MS
cat "$OUT/save.json"
check [ "$(json_str "$OUT/save.json" outcome)" = destroyed ]
check gone
check ./xsr verify --strict "$OUT/xsr-keep.save"
check ./xsr verify --strict "$OUT/xsr.save"
./xsr inspect "$OUT/xsr.save" | tail -n 12

ms xl restore -e "$OUT/xsr.save" < /dev/null || log "xl restore exit $? (judged by the domain)"
restore_ms=$MS
check wait_heartbeat_after "$GUEST" "$hb" 120
check runs_on
ms xl save -c "$GUEST" "$OUT/after-restore.save" < /dev/null || fail=1
check runs_on
rm -f "$OUT/after-restore.save"

figure guest-pages "$(json_field "$OUT/save.json" pages)"
figure xl-save-c-ms "$xl_ms"
figure xsr-save-keep-running-ms "$keep_ms"
figure xsr-save-ms "$xsr_ms"
figure xsr-save-json-wall-ms "$(json_field "$OUT/save.json" wall_ms)"
figure ratio-xl-save-vs-xsr-save-wall "$(ratio "$xl_ms" "$keep_ms")"
figure xl-save-polled-suspended-ms "${xl_lo}-${xl_hi}"
figure xsr-save-keep-running-downtime-ms "$(json_field "$OUT/save-keep.json" downtime_ms)"
figure xsr-save-downtime-ms "$(json_field "$OUT/save.json" downtime_ms)"
figure xsr-save-suspend-ms "$(json_field "$OUT/save.json" suspend_ms)"
figure xl-restore-of-xsr-save-ms "$restore_ms"
ls -ls "$OUT"
exit $fail
