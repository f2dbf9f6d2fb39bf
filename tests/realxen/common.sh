# Helpers shared by the xsr realxen jobs (sourced after the harness's job-lib.sh).
PATTERN_MD5=3cc9d3857fb7d6caa6e3f7e60130e57f
fail=0
# check CMD...: log CHECK-OK or CHECK-FAIL (and remember the failure)
check() { if "$@"; then log "CHECK-OK $*"; else log "CHECK-FAIL $*"; fail=1; fi; }
# figure NAME VALUE: a measured figure, collected by cargo xtask realxen
figure() { log "FIGURE $1 $2"; }
# ms CMD...: run CMD, set MS to its wall milliseconds (date's nanoseconds), return its status
ms() { _a=$(date +%s%N); "$@"; _rc=$?; _b=$(date +%s%N); MS=$(( (_b - _a) / 1000000 )); log "TIME ${MS}ms for: $*"; return $_rc; }
# heartbeat_md5_after NAME N: the md5 of the first heartbeat numbered above N
heartbeat_md5_after() {
    wait_heartbeat_after "$1" "$2" 60 >&2 || return 1
    grep -o 'REALXEN-HEARTBEAT [0-9]* md5=[0-9a-f]*' "$(conlog "$1")" | awk -v n="$2" '$2 > n { sub("md5=", "", $3); print $3; exit }'
}
# running: the guest exists and is not paused (xl list state without 'p'). Asked up to three
# times a second apart, because xl itself sometimes fails (harness quirk 3); a domain left
# paused stays paused, so a retry cannot hide that.
running() {
    for _try in 1 2 3; do
        _state=$(dom_state "$GUEST")
        case "$_state" in *p*|'') log "state of $GUEST: '$_state' (try $_try)"; sleep 1 ;; *) return 0 ;; esac
    done
    return 1
}
# runs_on: the guest is running and prints a new heartbeat with the pattern's md5
runs_on() { _hb=$(last_heartbeat "$GUEST"); running && [ "$(heartbeat_md5_after "$GUEST" "$_hb")" = "$PATTERN_MD5" ]; }
# json_field FILE KEY: a number from xsr's --json output
json_field() { sed -n "s/^  \"$2\": \([0-9.]*\),*$/\1/p" "$1" | head -n 1; }
# json_str FILE KEY: a string from xsr's --json output (a top-level "  \"key\": \"value\"," line)
json_str() { sed -n "s/^  \"$2\": \"\(.*\)\",*$/\1/p" "$1" | head -n 1; }
# ratio A B: A / B with two decimals (B = 0 counts as 1; "-" when A or B is missing)
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then echo "$1 $2" | awk '{ printf "%.2f", $1 / ($2 > 0 ? $2 : 1) }'; else echo -; fi; }
# gone: the guest no longer exists, within 5 s (Xen may list a domain for a moment while it is
# torn down). Only a successful `xl list` counts, so an xl failure is never taken for a destroyed
# domain.
gone() {
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        if _list=$(xl list 2>/dev/null) && ! echo "$_list" | awk 'NR > 1 { print $1 }' | grep -qx "$GUEST"; then
            return 0
        fi
        sleep 0.5
    done
    log "$GUEST still exists: $(xl list "$GUEST" 2>&1 | tail -n 1)"
    return 1
}
# xl_save_stamped LABEL XL_SAVE_ARGS...: `xl -vvv save ARGS` with each line of its log stamped
# with CLOCK_MONOTONIC nanoseconds (python3 in dom0) into $OUT/LABEL.xl.log. Sets MS (wall ms)
# and DOWN_MS, xl's downtime as xsr's downtime_ms counts it (from the suspend request until the
# stream is complete): from libxl's "issuing PV suspend request" line to libxl-save-helper's
# "complete r=0" line. Taken from xl's own log because sampling `xl list` from outside cannot
# resolve it: one `xl list` takes ~140 ms here and the whole suspended span of a 32 MiB guest
# is ~250-500 ms. The stamper runs SCHED_FIFO (chrt), so it reads each line as xl writes it
# even while the save keeps dom0's vcpus busy; a stamper that was starved anyway shows as
# "guest has suspended" stamped within 10 ms of the request (the guest took 63 ms here to
# suspend), and then DOWN_MS stays empty (not measured) rather than wrong. Returns xl's status.
xl_save_stamped() {
    _label=$1; shift
    _a=$(date +%s%N)
    { xl -vvv save "$@" < /dev/null 2>&1; echo "XL-EXIT $?"; } \
        | chrt -f 50 python3 -u -c '
import sys, time
for line in sys.stdin.buffer:
    sys.stdout.write("%d %s\n" % (time.monotonic_ns(), line.decode(errors="replace").rstrip("\r\n")))
    sys.stdout.flush()' > "$OUT/$_label.xl.log"
    _b=$(date +%s%N); MS=$(( (_b - _a) / 1000000 ))
    _rc=$(sed -n 's/^[0-9]* XL-EXIT \([0-9]*\)$/\1/p' "$OUT/$_label.xl.log")
    DOWN_MS=$(awk '/issuing PV suspend request/ && !t0 { t0 = $1 } /guest has suspended/ && !ts { ts = $1 }
        /libxl-save-helper: debug: complete r=/ && !t1 { t1 = $1 }
        END { if (t0 && ts && t1 && ts - t0 >= 10000000) printf "%d", (t1 - t0) / 1000000 }' "$OUT/$_label.xl.log")
    log "xl save $*: exit ${_rc:-?}, ${MS} ms, suspend request to stream complete ${DOWN_MS:-(not measured: see $_label.xl.log)} ms"
    [ "$_rc" = 0 ]
}
# wait_for PID SECONDS: wait for PID's exit status, killing it after SECONDS (a process that
# never ends would otherwise hold the job until the harness kills the nested machine)
wait_for() {
    ( sleep "$2"; kill "$1" 2>/dev/null && log "killed $1 after $2 s" ) &
    _w=$!
    wait "$1"; _rc=$?
    kill $_w 2>/dev/null
    return $_rc
}
# wait_writing DIR: until a file in DIR holds more than 64 KiB (a save or receive is writing
# pages), for at most 60 s
wait_writing() {
    _until=$(( $(date +%s) + 60 ))
    while [ "$(date +%s)" -lt $_until ]; do
        for _f in "$1"/* "$1"/.[!.]*; do
            [ -f "$_f" ] && [ "$(stat -c %s "$_f")" -gt 65536 ] && return 0
        done
        sleep 0.05
    done
    log "nothing above 64 KiB in $1 after 60 s: $(ls -lA "$1" | tail -n +2)"
    return 1
}
