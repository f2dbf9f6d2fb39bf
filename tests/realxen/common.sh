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
