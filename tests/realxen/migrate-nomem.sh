# realxen-guest: 700:1
# realxen job (issue 16): a receiver that cannot create the domain. The guest (700 MiB) is larger
# than what the host has free once it runs, so a second copy within one host cannot be made:
# `xsr receive --domain` fails in libxl and says so to the sender, which resumes its guest (exit
# 2 on both sides); nothing named GUEST--incoming is left, the guest runs on with the same md5.
. ./common.sh
./xsr --version
ip link set lo up
disable_xen_helper
xl info | grep -E "total_memory|free_memory"
hb=$(last_heartbeat "$GUEST")
./xsr receive --domain --listen 127.0.0.1:7990 > "$OUT/recv.txt" 2>&1 &
rpid=$!
check listening 7990
./xsr send --domain "$GUEST" --live --to 127.0.0.1:7990 > "$OUT/send.txt" 2>&1; rc=$?
wait_for $rpid 120; rrc=$?
log "send exit $rc: $(cat "$OUT/send.txt")"
log "receive exit $rrc: $(cat "$OUT/recv.txt")"
check [ $rc -eq 2 ]
check [ $rrc -eq 2 ]
check grep -q "the receiver failed" "$OUT/send.txt"
check one_copy
check beats_on "$GUEST" "$hb"
exit $fail
