# realxen-guest: 32:1:100
# realxen job (issue 16): faults at every step of a live migration into a new domain within one
# dom0 (`xsr send --domain --live` into `xsr receive --domain`, Xen's helper disabled), each
# checked for exactly one running copy of the guest afterwards with its heartbeat continuing and
# the pattern md5:
#  - the network cut (a relay resets both connections) during the stream, during the hand-over
#    (the sender renamed its copy away, GO not yet sent), and after it (GO delivered, the
#    receiver's report not yet written);
#  - the receiver killed (SIGKILL of its worker process) during the stream, restored before READY,
#    and after GO before it started its copy;
#  - the sender killed (SIGKILL of its worker process) during the stream, renamed away before GO,
#    and after GO.
# XSR_TEST_HOLD makes a side wait at a named stage, so that each fault lands where it is meant to.
. ./common.sh
./xsr --version
ip link set lo up
disable_xen_helper
SLOW="--max-iterations 30 --dirty-threshold 0"
port=7960
# start_pair [HOLD_SENDER] [HOLD_RECEIVER] [VIA_RELAY]: a receiver and a sender in the background
start_pair() {
    port=$((port + 2)); hb=$(last_heartbeat "$(console_of)"); src=$(xl domid "$GUEST")
    : > "$OUT/recv.txt"; : > "$OUT/send.txt"
    env XSR_TEST_HOLD="$2" ./xsr receive --domain --listen 127.0.0.1:$port >> "$OUT/recv.txt" 2>&1 &
    rpid=$!
    check listening $port
    to=$port
    if [ -n "$3" ]; then relay $((port + 1)) $port; to=$((port + 1)); check listening $to; fi
    env XSR_TEST_HOLD="$1" ./xsr send --domain "$GUEST" --live $SLOW --to 127.0.0.1:$to >> "$OUT/send.txt" 2>&1 &
    spid=$!
}
# end_pair LABEL: wait for both, log their outputs and exit statuses (SRC_RC, RECV_RC)
end_pair() {
    wait_for $spid 120; SRC_RC=$?
    wait_for $rpid 120; RECV_RC=$?
    [ -n "${RELAY:-}" ] && { kill $RELAY 2>/dev/null; wait $RELAY 2>/dev/null; RELAY=; }
    log "$1: send exit $SRC_RC: $(tr '\n' ' ' < "$OUT/send.txt")"
    log "$1: receive exit $RECV_RC: $(tr '\n' ' ' < "$OUT/recv.txt")"
    log "$1: domains after: $(domains)"
}
worker() { pgrep -P "$1" | head -n 1; }
# source_kept LABEL: the source runs on as the one copy
source_kept() {
    check [ $SRC_RC -ne 0 ]
    check [ $RECV_RC -ne 0 ]
    check one_copy
    check beats_on "$(console_of)" "$hb"
}
# dest_runs LABEL: the received copy runs as GUEST, the source is left suspended, renamed away
dest_runs() {
    check one_running
    migrated_to "$src"
    check beats_on "$(console_of)" "$hb"
    check xl list "$GUEST--migratedaway"
    xl destroy "$GUEST--migratedaway"
    check one_copy
}

# Network cut during the stream.
start_pair "" "" relay
check wait_incoming
sleep 1; touch "$OUT/cut"
end_pair cut-stream
source_kept

# Network cut during the hand-over: the source renamed away, GO not sent.
start_pair renamed:5 "" relay
check wait_text "$OUT/send.txt" "holding at renamed"
touch "$OUT/cut"
end_pair cut-handover
source_kept
check grep -q "none of it left" "$OUT/send.txt"

# Network cut after the hand-over: GO delivered, the receiver's copy runs, its report not written.
start_pair "" started:5 relay
check wait_text "$OUT/recv.txt" "holding at started"
touch "$OUT/cut"
end_pair cut-after
check [ $SRC_RC -ne 0 ]
check grep -q "undefined" "$OUT/send.txt"
dest_runs

# The receiver killed during the stream.
start_pair "" ""
check wait_incoming
sleep 1; kill -KILL "$(worker $rpid)"
end_pair kill-receiver-stream
source_kept
check grep -q "has been destroyed" "$OUT/recv.txt"

# The receiver killed with its copy restored, before READY.
start_pair "" restored:30
check wait_text "$OUT/recv.txt" "holding at restored"
kill -KILL "$(worker $rpid)"
end_pair kill-receiver-restored
source_kept

# The receiver killed after GO, before it started its copy: its supervisor starts it.
start_pair "" go:30
check wait_text "$OUT/recv.txt" "holding at go"
kill -KILL "$(worker $rpid)"
end_pair kill-receiver-go
check [ $SRC_RC -ne 0 ]
check grep -q "was started as" "$OUT/recv.txt"
dest_runs

# The sender killed during the stream.
start_pair "" ""
check wait_incoming
sleep 1; kill -KILL "$(worker $spid)"
end_pair kill-sender-stream
source_kept
check grep -q "died of signal 9" "$OUT/send.txt"

# The sender killed renamed away, before GO: its supervisor renames it back and resumes it.
start_pair renamed:30 ""
check wait_text "$OUT/send.txt" "holding at renamed"
kill -KILL "$(worker $spid)"
end_pair kill-sender-renamed
source_kept
check grep -q "renamed back" "$OUT/send.txt"

# The sender killed after GO: the receiver's copy runs, the source stays suspended.
start_pair go:30 ""
check wait_text "$OUT/send.txt" "holding at go"
kill -KILL "$(worker $spid)"
end_pair kill-sender-go
check [ $RECV_RC -eq 0 ]
dest_runs
exit $fail
