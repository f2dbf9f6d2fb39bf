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
# polled LABEL CMD...: run CMD (a save that keeps the guest: `xl save -c`, `xsr save
# --keep-running`) while sampling the guest's state with `xl list` back to back, each sample
# stamped (CLOCK_REALTIME ns) just before xl is asked, into $OUT/LABEL.poll. Sets MS (CMD's
# wall ms) and DOWN_LO / DOWN_HI, bounds of how long the guest was suspended or paused ('s' or
# 'p' in its state, or absent): the last such sample's stamp minus the one after the first such
# sample, and the stamp two samples after the last one minus the one before the first (sample
# i's answer comes from between stamps i and i+1). One `xl list` takes ~150 ms here, so the
# bounds are some 300-450 ms apart. Used for xl save and xsr alike, so both pay the same cost
# of the sampling; xl's own -vvv log could not be timed (stamped by a reader in dom0, its
# lines arrived in bursts: the suspend request and "guest has suspended" with one stamp).
polled() {
    _label=$1; shift
    _a=$(date +%s%N)
    "$@" < /dev/null > "$OUT/$_label.out" 2>&1 &
    _p=$!
    : > "$OUT/$_label.poll"
    while kill -0 $_p 2>/dev/null; do
        echo "$(date +%s%N) $(xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $5 }')" >> "$OUT/$_label.poll"
    done
    wait $_p; _rc=$?
    _b=$(date +%s%N); MS=$(( (_b - _a) / 1000000 ))
    for _i in 1 2; do echo "$(date +%s%N) $(xl list "$GUEST" 2>/dev/null | awk 'NR == 2 { print $5 }')" >> "$OUT/$_label.poll"; done
    set -- $(awk '{ t[NR] = $1; d[NR] = ($2 ~ /[sp]/ || $2 == "") }
        END { for (i = 1; i <= NR; i++) if (d[i]) { if (!f) f = i; l = i }
              if (!f) { print "0 0"; exit }
              lo = (l > f) ? t[l] - t[f + 1] : 0; if (lo < 0) lo = 0
              hi = t[(l + 2 <= NR) ? l + 2 : NR] - t[(f > 1) ? f - 1 : 1]
              printf "%d %d\n", lo / 1000000, hi / 1000000 }' "$OUT/$_label.poll")
    DOWN_LO=$1 DOWN_HI=$2
    log "$_label: exit $_rc, ${MS} ms, guest suspended between $DOWN_LO and $DOWN_HI ms ($(wc -l < "$OUT/$_label.poll") samples)"
    return $_rc
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
