# realxen-guest: 32:1:100
# realxen-guest-type: hvm
# realxen job (issue 14): `xl migrate` of the HVM guest (rewriting 100 pages a second) to the same
# host, with Xen's helper on the sending side (xsr's save mode is not done) and xsr as the
# receiving side's save helper (`xl migrate-receive` with LIBXL_SAVE_HELPER): a live stream,
# pages sent in several passes, restored by xsr. Its report proves it restored; the guest runs
# on under its name with the pattern md5 and the heartbeat continuing; the source is gone.
. ./common.sh
./xsr --version
hb=$(last_heartbeat "$GUEST")
src=$(xl domid "$GUEST")
rm -f "$OUT/migrate-report.json"
ms xl migrate -s '' "$GUEST" "env LIBXL_SAVE_HELPER=$IN/xsr XSR_HELPER_REPORT=$OUT/migrate-report.json xl migrate-receive" \
    < /dev/null > "$OUT/migrate.txt" 2>&1; rc=$?
mig_ms=$MS
cat "$OUT/migrate.txt"
log "xl migrate with xsr receiving: exit $rc"
check [ $rc -eq 0 ]
cat "$OUT/migrate-report.json"
check grep -q '"ok": true' "$OUT/migrate-report.json"
check [ -n "$(xl domid "$GUEST")" ]
check [ "$(xl domid "$GUEST")" != "$src" ]
# xenconsoled logs the receiving domain under the name it had when its console appeared
name="$GUEST"
[ -s "$(conlog "$GUEST--incoming")" ] && name="$GUEST--incoming"
log "the received guest's console log: $(conlog "$name")"
check wait_heartbeat_after "$name" "$hb" 120
check running
now=$(last_heartbeat "$name")
check [ "$(heartbeat_md5_after "$name" "$now")" = "$PATTERN_MD5" ]
check vcpus_online "$GUEST"
figure xl-migrate-xsr-receiving-ms "$mig_ms"
figure migrate-received-pages "$(json_field "$OUT/migrate-report.json" pages)"
figure migrate-stream-bytes "$(json_field "$OUT/migrate-report.json" bytes)"
exit $fail
