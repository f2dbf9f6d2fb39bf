# The body of save-pvh.sh and save-hvm.sh: xsr save and send of a running PVH or HVM guest that
# rewrites 256 pages a second, next to `xl save -c` of the same guest in the same boot:
#   xl save -c twice (xl.save timed, xl2.save with the guest's state sampled: `polled`);
#   xsr save --keep-running (plain) and --live --keep-running, sampled alike;
#   xsr send --domain --live --keep-running into xsr receive (recv.save);
#   xsr save (plain, the domain destroyed), xl restore -e of it, the heartbeat on with the same md5;
#   xsr send --domain (plain, destroyed) into xsr receive, xl restore -e of recv2.save, likewise;
#   xl save -c of the guest restored from xsr's files (its suspend path works again).
# After each step that keeps the guest: running unpaused, same md5, log-dirty off, QEMU running.
# Every xsr file passes `xsr verify --strict` here; on the host each is compared with xl.save
# (record sequence, static records, HVM params and context records, the pfns with data, the
# pattern pages' pfns), as is xl2.save (the control).
. ./common.sh
. ./lib-hvm.sh
./xsr --version
ip link set lo up

# xl_saves: the two references, both of one guest (xl_ref runs both again on a fresh guest)
xl_saves() {
    ms xl save -c "$GUEST" "$OUT/xl.save" < /dev/null || return $?
    xl_ms=$MS
    left_as_found || return 1
    polled xl2 xl save -c "$GUEST" "$OUT/xl2.save" || return $?
    xl2_ms=$MS xl_lo=$DOWN_LO xl_hi=$DOWN_HI
}
require xl_ref xl_saves
require left_as_found

polled keep ./xsr save --domain "$GUEST" --out "$OUT/xsr-keep.save" --keep-running --json || fail=1
keep_ms=$MS keep_lo=$DOWN_LO keep_hi=$DOWN_HI
cat "$OUT/keep.out"
check [ "$(json_str "$OUT/keep.out" outcome)" = running ]
check [ "$(json_str "$OUT/keep.out" guest_type)" = "$GUEST_TYPE" ]
check left_as_found

polled live ./xsr save --domain "$GUEST" --out "$OUT/xsr-live.save" --live --keep-running --json || fail=1
live_ms=$MS live_lo=$DOWN_LO live_hi=$DOWN_HI
cat "$OUT/live.out"
check [ "$(json_field "$OUT/live.out" live_passes)" -ge 1 ]
check [ "$(json_str "$OUT/live.out" dirty_tracking)" = log-dirty ]
check left_as_found

port=7951
./xsr receive --listen 127.0.0.1:$port --out-file "$OUT/recv.save" > "$OUT/recv.txt" 2>&1 &
rpid=$!
check listening $port
ms ./xsr send --domain "$GUEST" --to 127.0.0.1:$port --live --keep-running --json > "$OUT/send.json" 2> "$OUT/send.err"; rc=$?
wait_for $rpid 60; rrc=$?
log "send --live --keep-running: exit $rc: $(cat "$OUT/send.err"); receive: exit $rrc: $(cat "$OUT/recv.txt")"
cat "$OUT/send.json"
check [ $rc -eq 0 ]
check [ $rrc -eq 0 ]
check left_as_found

hb=$(last_heartbeat "$GUEST")
ms ./xsr save --domain "$DOMID" --out "$OUT/xsr.save" --json > "$OUT/save.json" || fail=1
save_ms=$MS
cat "$OUT/save.json"
check [ "$(json_str "$OUT/save.json" outcome)" = destroyed ]
check gone
ms xl restore -e "$OUT/xsr.save" < /dev/null || log "xl restore exit $? (judged by the domain)"
check wait_heartbeat_after "$GUEST" "$hb" 120
check left_as_found

port=7952
./xsr receive --listen 127.0.0.1:$port --out-file "$OUT/recv2.save" > "$OUT/recv2.txt" 2>&1 &
rpid=$!
check listening $port
hb=$(last_heartbeat "$GUEST")
# (text summary, on standard error: for the docs)
ms ./xsr send --domain "$GUEST" --to 127.0.0.1:$port > "$OUT/send2.out" 2> "$OUT/send2.err"; rc=$?
wait_for $rpid 60; rrc=$?
log "send (plain): exit $rc: $(cat "$OUT/send2.err"); receive: exit $rrc: $(cat "$OUT/recv2.txt")"
check [ $rc -eq 0 ]
check [ $rrc -eq 0 ]
check gone
ms xl restore -e "$OUT/recv2.save" < /dev/null || log "xl restore exit $? (judged by the domain)"
check wait_heartbeat_after "$GUEST" "$hb" 120
check left_as_found
ms xl save -c "$GUEST" "$OUT/after.save" < /dev/null || fail=1
check left_as_found
rm -f "$OUT/after.save"

for f in xsr-keep xsr-live recv xsr recv2; do check ./xsr verify --strict "$OUT/$f.save"; done
./xsr inspect "$OUT/xsr-live.save" | grep -v PAGE_DATA

log "downtime sampled alike: xl save -c ${xl_lo}-${xl_hi} ms, xsr save ${keep_lo}-${keep_hi} ms, xsr save --live ${live_lo}-${live_hi} ms"
figure xl-save-c-ms "$xl_ms"
figure xsr-save-keep-running-ms "$keep_ms"
figure ratio-xl-save-vs-xsr-save-wall "$(ratio "$xl2_ms" "$keep_ms")"
figure xl-save-polled-suspended-ms "${xl_lo}-${xl_hi}"
figure xsr-save-polled-suspended-ms "${keep_lo}-${keep_hi}"
figure xsr-live-polled-suspended-ms "${live_lo}-${live_hi}"
figure ratio-xl-save-vs-xsr-save-downtime-high "$(ratio "$xl_hi" "$keep_hi")"
figure ratio-xl-save-vs-xsr-live-downtime-high "$(ratio "$xl_hi" "$live_hi")"
figure xsr-live-own-downtime-ms "$(json_field "$OUT/live.out" downtime_ms)"
figure xsr-live-passes "$(json_field "$OUT/live.out" live_passes)"
figure xsr-save-own-downtime-ms "$(json_field "$OUT/keep.out" downtime_ms)"
figure xsr-gfn-scan-ms "$(json_field "$OUT/keep.out" gfn_scan_ms)"
figure xsr-device-model-ms "$(json_field "$OUT/keep.out" device_model_ms)"
figure xsr-send-live-ms "$(json_field "$OUT/send.json" wall_ms)"
ls -ls "$OUT"
exit $fail
