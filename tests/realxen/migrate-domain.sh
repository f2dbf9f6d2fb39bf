# realxen-guest: 32:1:100
# realxen-tls
# realxen job (issue 16): live migration of the PV guest (rewriting 100 pages a second) within one
# dom0, ending with the guest running in a new domain, with Xen's libxl-save-helper disabled
# wherever xsr must do the work:
#  1. a sender whose certificate another CA signed is refused: nothing is created, the guest runs on;
#  2. `xsr send --domain --live` into `xsr receive --domain` over TLS 1.3 (mutual certificates),
#     twice (plaintext rounds too when a TLS round fails: xsr_into_xsr_job);
#  3. `xsr migrate` into stock `xl migrate-receive` (Xen's helper on: the stock receiver uses it);
#  4. `xl migrate` into `xsr migrate-receive` (Xen's helper disabled in the receiver's mount
#     namespace; the sending xl has xsr as its save helper: Xen's own cannot migrate a PV guest
#     on this host, it gets no log-dirty mode);
#  5. the downtime, in the same boot: `xsr send --domain --live` into `xsr receive --domain` against
#     `xl migrate` into `xl migrate-receive` with xsr as the save helper of both, 5 times each,
#     alternately, both measured by the same sampler (downtime_pairs);
#  6. the faults of migrate-faults.sh (migrate_faults_job);
#  7. then the same guest started again as PVH (switch_guest): xsr -> xsr over TLS twice, stock
#     `xl migrate` into `xsr migrate-receive` twice, the downtime pairs twice (as
#     migrate-domain-pvh): one boot for both types, as the real Xen is shared.
# After each: exactly one copy (named GUEST, running), heartbeat continuing with the pattern md5.
. ./common.sh
./xsr --version
ip link set lo up
# The host must keep dom0's vector registers, or TLS records and heaps break (docs/xen.md).
check host_fpu

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

# 2. xsr -> xsr over TLS, twice.
xsr_into_xsr_job

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

# 4. xl migrate (xsr as its save helper) -> xsr migrate-receive (Xen's helper disabled for the receiver).
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

# 5. Downtime, xsr against xl with xsr as the save helper of both ends.
downtime_pairs 5

figure xsr-migrate-to-xl-ms "$to_xl_ms"
figure xl-migrate-to-xsr-ms "$from_xl_ms"

# 6. Faults.
migrate_faults_job

# 7. PVH.
if check switch_guest pvh; then
    xsr_into_xsr_job
    xl_into_xsr_job
    downtime_pairs 2
fi
exit $fail
