# realxen-guest: 32:1:100
# realxen-tls
# realxen job (issue 16): live migration of the PV guest (rewriting 100 pages a second) within one
# dom0, ending with the guest running in a new domain, with Xen's libxl-save-helper disabled
# wherever xsr must do the work:
#  1. a sender whose certificate another CA signed is refused: nothing is created, the guest runs on;
#  2. `xsr send --domain --live` into `xsr receive --domain` over TLS 1.3 (mutual certificates);
#  3. `xsr migrate` into stock `xl migrate-receive` (Xen's helper on: the stock receiver uses it);
#  4. stock `xl migrate` into `xsr migrate-receive` (Xen's helper disabled in the receiver's mount
#     namespace only). The sending xl runs with xsr as its save helper: Xen's own helper cannot
#     send a live PV guest on this host (no log-dirty mode for PV: "Failed to enable logdirty:
#     95"), xsr's tracks by comparison; the protocol and the receiving side are what is tested;
#  5. the downtime, in the same boot: `xsr send --domain --live` into `xsr receive --domain` against
#     `xl migrate` into `xl migrate-receive` with xsr as the save helper of both xl processes, both
#     measured by the same sampler (from the source seen down to the new domain seen running).
# After each: exactly one copy (named GUEST, running), heartbeat continuing with the pattern md5.
. ./common.sh
./xsr --version
ip link set lo up
# The host must keep dom0's vector registers, or TLS records and heaps break (docs/xen.md).
check host_fpu
TLS_DST="--tls-cert dst.example.crt --tls-key dst.example.key --tls-ca ca.crt --tls-allow src.example"
TLS_SRC="--tls-name dst.example --tls-cert src.example.crt --tls-key src.example.key --tls-ca ca.crt"

# 1. A rogue sender.
disable_xen_helper
hb=$(last_heartbeat "$(console_of)")
./xsr receive --domain --listen 127.0.0.1:7951 $TLS_DST > "$OUT/rogue-recv.txt" 2>&1 &
rpid=$!
check listening 7951
./xsr send --domain "$GUEST" --live --to 127.0.0.1:7951 --tls-name dst.example --tls-cert rogue.example.crt \
    --tls-key rogue.example.key --tls-ca ca.crt > "$OUT/rogue-send.txt" 2>&1; rc=$?
wait_for $rpid 30; rrc=$?
log "rogue: send exit $rc: $(cat "$OUT/rogue-send.txt"); receive exit $rrc: $(cat "$OUT/rogue-recv.txt")"
check [ $rc -eq 2 ]
check [ $rrc -eq 2 ]
check one_copy
check beats_on "$(console_of)" "$hb"

# 2. xsr -> xsr over TLS.
hb=$(last_heartbeat "$(console_of)")
src=$(xl domid "$GUEST")
./xsr receive --domain --listen 127.0.0.1:7952 $TLS_DST --json > "$OUT/tls-recv.json" 2> "$OUT/tls-recv.err" &
rpid=$!
check listening 7952
ms ./xsr send --domain "$GUEST" --live --to 127.0.0.1:7952 $TLS_SRC --json > "$OUT/tls-send.json" 2> "$OUT/tls-send.err"; rc=$?
tls_ms=$MS
wait_for $rpid 60; rrc=$?
cat "$OUT/tls-send.json" "$OUT/tls-send.err" "$OUT/tls-recv.json" "$OUT/tls-recv.err"
log "xsr -> xsr over TLS: send exit $rc, receive exit $rrc"
check [ $rc -eq 0 ]
check [ $rrc -eq 0 ]
check [ "$(json_str_retry "$OUT/tls-send.json" outcome)" = destroyed ]
check [ "$(xl domid "$GUEST")" != "$src" ]
check [ "$(json_field "$OUT/tls-recv.json" domid)" = "$(xl domid "$GUEST")" ]
check grep -q "TLS 1.3" "$OUT/tls-recv.err"
migrated_to "$src"
check one_copy
check beats_on "$(console_of)" "$hb"
check vcpus_online "$GUEST"

# 3. xsr migrate -> stock xl migrate-receive.
enable_xen_helper
hb=$(last_heartbeat "$(console_of)")
src=$(xl domid "$GUEST")
ms ./xsr migrate -s '' "$GUEST" "xl migrate-receive -e" > "$OUT/to-xl.txt" 2>&1; rc=$?
to_xl_ms=$MS
cat "$OUT/to-xl.txt"
log "xsr migrate into xl migrate-receive: exit $rc"
check [ $rc -eq 0 ]
check [ "$(xl domid "$GUEST")" != "$src" ]
check grep -q "migration target: Domain started successsfully" "$OUT/to-xl.txt"
migrated_to "$src"
check one_copy
check beats_on "$(console_of)" "$hb"

# 4. stock xl migrate (xsr as its save helper: PV) -> xsr migrate-receive (Xen's helper disabled for the receiver only).
printf '#!/bin/sh\necho "Xen'"'"'s libxl-save-helper is disabled by this job ($*)" >&2\nexit 99\n' > /tmp/no-save-helper
chmod 755 /tmp/no-save-helper
hb=$(last_heartbeat "$(console_of)")
src=$(xl domid "$GUEST")
ms xsr_xl xl migrate -s '' "$GUEST" "exec unshare -m sh -c 'mount --bind /tmp/no-save-helper $XEN_HELPER && exec $IN/xsr migrate-receive'" \
    > "$OUT/from-xl.txt" 2>&1; rc=$?
from_xl_ms=$MS
cat "$OUT/from-xl.txt"
log "xl migrate into xsr migrate-receive: exit $rc"
check [ $rc -eq 0 ]
check grep -q "Migration successful" "$OUT/from-xl.txt"
check grep -q "received domain" "$OUT/from-xl.txt"
check [ "$(xl domid "$GUEST")" != "$src" ]
migrated_to "$src"
check one_copy
check beats_on "$(console_of)" "$hb"

# 5. Downtime, xsr against xl with xsr as the save helper of both xl processes.
./xsr receive --domain --listen 127.0.0.1:7953 > "$OUT/down-recv.txt" 2>&1 &
rpid=$!
check listening 7953
hb=$(last_heartbeat "$(console_of)")
src=$(xl domid "$GUEST")
migration_downtime xsr-down ./xsr send --domain "$GUEST" --live --to 127.0.0.1:7953 --json; rc=$?
xsr_down=$DOWNTIME_MS xsr_ms=$MS
wait_for $rpid 60
check [ $rc -eq 0 ]
migrated_to "$src"
check one_copy
check beats_on "$(console_of)" "$hb"
hb=$(last_heartbeat "$(console_of)")
src=$(xl domid "$GUEST")
migration_downtime xl-down xsr_xl xl migrate -s '' "$GUEST" "env LIBXL_SAVE_HELPER=$IN/xsr xl migrate-receive -e"; rc=$?
xl_down=$DOWNTIME_MS xl_ms=$MS
check [ $rc -eq 0 ]
migrated_to "$src"
check one_copy
check beats_on "$(console_of)" "$hb"

figure xsr-to-xsr-tls-ms "$tls_ms"
figure xsr-to-xsr-tls-downtime-ms "$(json_field "$OUT/tls-send.json" downtime_ms)"
figure xsr-migrate-to-xl-ms "$to_xl_ms"
figure xl-migrate-to-xsr-ms "$from_xl_ms"
figure downtime-xsr-send-receive-ms "$xsr_down"
figure downtime-xl-migrate-xsr-helper-ms "$xl_down"
figure migrate-xsr-send-receive-ms "$xsr_ms"
figure migrate-xl-xsr-helper-ms "$xl_ms"
figure ratio-downtime-xsr-vs-xl "$(ratio "$xsr_down" "$xl_down")"
exit $fail
