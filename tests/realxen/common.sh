# Helpers shared by the xsr realxen jobs (sourced after the harness's job-lib.sh).
PATTERN_MD5=3cc9d3857fb7d6caa6e3f7e60130e57f
fail=0
# check CMD...: log CHECK-OK or CHECK-FAIL (and remember the failure)
check() { if "$@"; then log "CHECK-OK $*"; else log "CHECK-FAIL $*"; fail=1; fi; }
# control CMD...: a check of Xen's own tools in the same boot (the comparison's other side, not
# xsr's work): logs CONTROL-OK or CONTROL-FAIL, which cargo xtask realxen shows without failing
# the job (a stock restore of an HVM guest has stalled here once, harness quirk 6's kind)
control() { if "$@"; then log "CONTROL-OK $*"; else log "CONTROL-FAIL $* (Xen's own helper, not xsr)"; fi; }
# figure NAME VALUE: a measured figure, collected by cargo xtask realxen
figure() { log "FIGURE $1 $2"; }
# tfigure NAME VALUE: a figure of the current guest type (NAME-pv, NAME-pvh, NAME-hvm), for jobs
# that test two types in one boot
tfigure() { figure "$1-$GUEST_TYPE" "$2"; }
# ms CMD...: run CMD, set MS to its wall milliseconds (date's nanoseconds), return its status
ms() { _a=$(date +%s%N); "$@"; _rc=$?; _b=$(date +%s%N); MS=$(( (_b - _a) / 1000000 )); log "TIME ${MS}ms for: $*"; return $_rc; }
# heartbeat_md5_after NAME N: the md5 of the first heartbeat numbered above N
heartbeat_md5_after() {
    wait_heartbeat_after "$1" "$2" 60 >&2 || return 1
    grep -o 'REALXEN-HEARTBEAT [0-9]* md5=[0-9a-f]*' "$(conlog "$1")" | awk -v n="$2" '$2 > n { sub("md5=", "", $3); print $3; exit }'
}
# wait_copying PID: until a file process PID has open holds some data (a dump's raw image, which
# an ELF or LiME file is made from, is an unnamed O_TMPFILE beside the output)
wait_copying() {
    _i=0
    while [ $_i -lt 600 ]; do
        for f in /proc/"$1"/fd/*; do
            [ "$(stat -L -c %b "$f" 2>/dev/null || echo 0)" -gt 128 ] && return 0
        done
        sleep 0.05; _i=$((_i+1))
    done
    return 1
}
# child_of PID: the supervised worker of an xsr process (waiting up to 10 s for the fork)
child_of() { _i=0; while [ $_i -lt 200 ]; do c=$(pgrep -P "$1" | head -n 1); [ -n "$c" ] && { echo "$c"; return 0; }; sleep 0.05; _i=$((_i+1)); done; return 1; }
# xen_logdirty DOMID OP: Xen's log-dirty mode on (OP 2, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY) or
# off (OP 0, _OFF) through dom0's libxenctrl from python, with no xsr: the control jobs' Xen side
xen_logdirty() {
    python3 -c '
import ctypes, sys
xc = ctypes.CDLL("libxenctrl.so.4.17")
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
sys.exit(0 if xc.xc_shadow_control(h, int(sys.argv[1]), int(sys.argv[2]), None, 0) == 0 else 1)' "$1" "$2"
}
# alive: the guest prints a new heartbeat within 40 s
alive() { _hb=$(last_heartbeat "$GUEST"); wait_heartbeat_after "$GUEST" "$_hb" 40; }
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
# beats_md5 NAME: a heartbeat newer than the last one in NAME's console log carries the
# pattern's md5 (the last one read twice if the first reading came back empty: a dom0 tool
# printed nothing once here)
beats_md5() {
    _n=$(last_heartbeat "$1"); [ -n "$_n" ] || _n=$(last_heartbeat "$1")
    [ -n "$_n" ] && [ "$(heartbeat_md5_after "$1" "$_n")" = "$PATTERN_MD5" ]
}
# runs_on: the guest is running and prints a new heartbeat with the pattern's md5
runs_on() { _hb=$(last_heartbeat "$GUEST"); running && [ "$(heartbeat_md5_after "$GUEST" "$_hb")" = "$PATTERN_MD5" ]; }
# json_field FILE KEY: a number from xsr's --json output
json_field() { sed -n "s/^  \"$2\": \([0-9.]*\),*$/\1/p" "$1" | head -n 1; }
# json_str FILE KEY: a string from xsr's --json output (a top-level "  \"key\": \"value\"," line)
json_str() { sed -n "s/^  \"$2\": \"\(.*\)\",*$/\1/p" "$1" | head -n 1; }
# json_str_retry FILE KEY: json_str, asked again once if it printed nothing (processes in the
# nested dom0 have been seen to abort in glibc's malloc now and then: harness quirk)
json_str_retry() { _v=$(json_str "$1" "$2"); [ -n "$_v" ] || _v=$(json_str "$1" "$2"); echo "$_v"; }
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
# --keep-running`) while a sampler asks Xen for the guest's state every millisecond
# (xc_domain_getinfo through python3's ctypes and dom0's libxenctrl, at SCHED_FIFO priority so
# the save's load does not starve it) and writes each change, "PREV_NS NOW_NS STATE" (the last
# sample before it and the first after, CLOCK_MONOTONIC), to $OUT/LABEL.poll. Sets MS (CMD's
# wall ms) and DOWN_LO / DOWN_HI: bounds of how long the guest was shut down (suspended) or
# paused, from its first such sample to the first sample after that saw it run again (a
# millisecond apart unless the sampler was held up). The same sampler around xl save and xsr,
# so both pay the same for it. (Timing xl from its own -vvv log did not work here: a reader in
# dom0 got its lines in bursts; and one `xl list` takes 150-700 ms.)
polled() {
    _label=$1; shift
    rm -f "$OUT/$_label.stop"
    chrt -f 50 python3 -c '
import ctypes, os, sys, time
dom, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
xc = ctypes.CDLL("libxenctrl.so.4.17")
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
info = ctypes.create_string_buffer(1024)  # xc_dominfo_t: domid, ssidref, then the flag bits
def state():
    if xc.xc_domain_getinfo(h, dom, 1, info) != 1 or int.from_bytes(info[0:4], "little") != dom:
        return "gone"
    f = int.from_bytes(info[8:12], "little")  # dying:1 crashed:1 shutdown:1 paused:1 blocked:1 running:1
    return "down" if f & 0b1101 else "up"
with open(out, "w") as o:
    prev_t, prev_s, i = 0, None, 0
    while True:
        t, s = time.monotonic_ns(), state()
        if s != prev_s:
            o.write("%d %d %s\n" % (prev_t, t, s)); o.flush(); prev_s = s
        prev_t, i = t, i + 1
        if i % 20 == 0 and os.path.exists(stop):
            o.write("%d %d end\n" % (t, t)); break
        time.sleep(0.001)
' "$(xl domid "$GUEST")" "$OUT/$_label.poll" "$OUT/$_label.stop" &
    _s=$!
    # CMD starts once the sampler has written its first sample (python starts slowly here)
    _i=0; while [ ! -s "$OUT/$_label.poll" ] && [ $_i -lt 400 ]; do sleep 0.05; _i=$((_i+1)); done
    _a=$(date +%s%N)
    "$@" < /dev/null > "$OUT/$_label.out" 2>&1; _prc=$?
    _b=$(date +%s%N); MS=$(( (_b - _a) / 1000000 ))
    # (the sampler's own status is not the command's: a sampler that had to be killed costs
    # only the downtime figure)
    sleep 1; touch "$OUT/$_label.stop"; wait_for $_s 30 || log "$_label: the sampler did not end by itself"
    set -- $(awk '$3 != "up" && $3 != "end" && !f { f = 1; dp = $1; dn = $2 }
        f && $3 == "up" && !u { u = 1; up = $1; un = $2 }
        END { if (f && u) printf "%d %d\n", (up - dn) / 1000000, (un - dp) / 1000000 }' "$OUT/$_label.poll")
    DOWN_LO=${1:-} DOWN_HI=${2:-}
    log "$_label: exit $_prc, ${MS} ms, guest down between ${DOWN_LO:-?} and ${DOWN_HI:-?} ms: $(tr '\n' ';' < "$OUT/$_label.poll")"
    return $_prc
}
# wait_for PID SECONDS: wait for PID's exit status, killing it after SECONDS (a process that
# never ends would otherwise hold the job until the harness kills the nested machine)
# (its own variable names: dash's variables are global, and `polled` and `migration_downtime`
# keep the measured command's status in _rc across their call of wait_for)
wait_for() {
    ( sleep "$2"; kill "$1" 2>/dev/null && log "killed $1 after $2 s" ) &
    _wf_w=$!
    wait "$1"; _wf_rc=$?
    kill $_wf_w 2>/dev/null
    return $_wf_rc
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
# ---- the nested host itself
# host_fpu: dom0 keeps each thread's SSE registers across context switches (simd-check, built by
# cargo xtask realxen from tests/realxen/tools/simd-check.c: 4 threads spinning with all 16 XMM
# registers loaded, then glibc's memcpy checked byte by byte; 3 s each). On this nested host with
# XSAVE exposed (REALXEN_CPU=max,-smap) both failed within seconds, so every multi-threaded dom0
# program could compute wrong data; cargo xtask realxen boots without XSAVE (docs/xen.md).
host_fpu() {
    [ -x "$IN/simd-check" ] || { log "no simd-check in $IN"; return 1; }
    _ok=0
    for _m in xmm-spin memcpy; do
        _out=$("$IN/simd-check" $_m 4 3 2>&1) || _ok=1
        log "$_out"
    done
    return $_ok
}
# ---- restore through xsr as libxl's save helper (issue 14)
XEN_HELPER=/usr/lib/xen-4.17/bin/libxl-save-helper
# disable_xen_helper: bind-mount a program that fails over Xen's libxl-save-helper (dom0's root is
# read-only), so that only xsr can restore; enable_xen_helper undoes it
disable_xen_helper() {
    printf '#!/bin/sh\necho "Xen'"'"'s libxl-save-helper is disabled by this job ($*)" >&2\nexit 99\n' > /tmp/no-save-helper
    chmod 755 /tmp/no-save-helper
    mount --bind /tmp/no-save-helper "$XEN_HELPER" && log "Xen's save helper disabled: $($XEN_HELPER x 2>&1)"
}
enable_xen_helper() { umount "$XEN_HELPER" 2>/dev/null; log "Xen's save helper back: $(ls -l $XEN_HELPER)"; }
# xsr_xl CMD...: an xl command with xsr as libxl's save helper
xsr_xl() { LIBXL_SAVE_HELPER="$IN/xsr" "$@"; }
# fresh_console NAME: empty the guest's console log (xenconsoled appends), so that the heartbeats
# seen next come from the domain restored next
fresh_console() { : > "$(conlog "$1")"; }
# no_domain NAME: no domain of that name (or of a "NAME--incoming" one) exists
no_domain() {
    _l=$(xl list 2>/dev/null) || return 1
    ! echo "$_l" | awk 'NR > 1 { print $1 }' | grep -q "^$1"
}
# timed_helper NAME: a save helper for LIBXL_SAVE_HELPER that runs $HELPER_REAL and appends its
# wall milliseconds to $OUT/NAME.helper-ms (the helper's own time, without libxl's). With
# libstamp.so (tests/realxen/tools/stamp.c) in $IN, preloaded into either helper alike, it also
# appends the run's clock marks to $OUT/NAME.stamps: t0 (before the exec), ctor (after the
# dynamic loader, before main), dtor (at exit, after the work) and end (after the exit), so
# stamp_breakdown can split each run into start-up, work and exit.
timed_helper() {
    _pre=
    [ -f "$IN/libstamp.so" ] && _pre="LD_PRELOAD=$IN/libstamp.so XSR_STAMP_FILE=$OUT/$1.stamps "
    printf '#!/bin/sh\n_s=$(date +%%s%%N); echo "t0 $_s" >> %s; %sXSR_HELPER_T0=$_s "$HELPER_REAL" "$@"; _rc=$?; _e=$(date +%%s%%N); echo "end $_e" >> %s\necho $(( (_e - _s) / 1000000 )) >> %s\nexit $_rc\n' \
        "$OUT/$1.stamps" "$_pre" "$OUT/$1.stamps" "$OUT/$1.helper-ms" > "/tmp/helper-$1"
    chmod 755 "/tmp/helper-$1"
    echo "/tmp/helper-$1"
}
# stamp_breakdown NAME: each run of $OUT/NAME.stamps as "start-up+work+exit" milliseconds (t0 to
# ctor, ctor to dtor, dtor to end), then the medians of each part
stamp_breakdown() {
    [ -s "$OUT/$1.stamps" ] || { echo "no stamps"; return; }
    awk '$1 == "t0" { t0 = $2; c = d = 0 } $1 == "ctor" && !c { c = $2 } $1 == "dtor" { d = $2 }
        $1 == "end" && t0 && c && d { n++; s[n] = (c - t0) / 1e6; w[n] = (d - c) / 1e6; x[n] = ($2 - d) / 1e6
            printf "%.0f+%.0f+%.0f ", s[n], w[n], x[n] }
        function med(a, n,   i, j, t, b) { for (i = 1; i <= n; i++) b[i] = a[i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
            return (n % 2) ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
        END { if (n) printf "(medians %.0f+%.0f+%.0f ms)", med(s, n), med(w, n), med(x, n) }' "$OUT/$1.stamps"
}
# rusage_breakdown NAME: each run's CPU of $OUT/NAME.stamps (libstamp's getrusage at exit) as
# "user+sys ms/minor faults", then the medians
rusage_breakdown() {
    grep -q '^rusage ' "$OUT/$1.stamps" 2>/dev/null || { echo "no rusage"; return; }
    awk '$1 == "rusage" { n++; u[n] = $2 / 1e3; s[n] = $3 / 1e3; f[n] = $4; printf "%.0f+%.0f/%d ", u[n], s[n], f[n] }
        function med(a, n,   i, j, t, b) { for (i = 1; i <= n; i++) b[i] = a[i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
            return (n % 2) ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
        END { if (n) printf "(medians %.0f+%.0f ms/%d faults)", med(u, n), med(s, n), med(f, n) }' "$OUT/$1.stamps"
}
# vcpus_online NAME: every vcpu of the domain is online (vcpu-list's State has r or b and no p;
# an offline or paused vcpu shows "--p"), as many as xl list's VCPUs column. Asked up to three
# times a second apart, as `running` does: xl itself sometimes fails here (harness quirk 3; seen
# once with vcpu-list showing the one vcpu "-b-"); an offline vcpu stays offline, so a retry
# cannot hide one.
vcpus_online() {
    for _try in 1 2 3; do
        _list=$(xl vcpu-list "$1") && _want=$(xl list "$1" | awk 'NR == 2 { print $4 }') && [ -n "$_want" ] &&
            [ "$(echo "$_list" | awk 'NR > 1 && $5 ~ /[rb]/ && $5 !~ /p/' | wc -l)" = "$_want" ] && { echo "$_list"; return 0; }
        log "vcpus of $1 (try $_try): want '${_want:-}', vcpu-list: $(echo "$_list" | tail -n +2 | tr '\n' ';')"
        sleep 1
    done
    return 1
}
# restore_job: the body of the restore-{pv,pv-2vcpu,pvh,hvm} jobs. A stock `xl save` of the
# standard guest, then with Xen's helper disabled (and a stock `xl restore` shown to fail):
# `xl restore` through xsr (the guest runs on: same pattern md5, heartbeat continues; `xl list -l`
# works); with Xen's helper back, `xl save` + `xl restore` of that guest (its state is sound), and
# the same file through Xen's own helper for the time figures; helper disabled again,
# `xsr restore --domain` of the file, and once more with --name and --paused. Then the time
# figures (Xen's helper and xsr alternately on the same file; see below).
restore_job() {
    ./xsr --version
    hb=$(last_heartbeat "$GUEST")
    ms xl save "$GUEST" "$OUT/g.save" < /dev/null || fail=1
    check gone
    ls -l "$OUT/g.save"
    # a job may look at the file first (restore-pv-balloon: its holes)
    if type saved_hook > /dev/null 2>&1; then saved_hook "$OUT/g.save"; fi

    disable_xen_helper
    xl restore -e "$OUT/g.save" < /dev/null > "$OUT/control.txt" 2>&1; rc=$?
    log "control: stock xl restore with Xen's helper disabled: exit $rc: $(grep -i 'helper\|error' "$OUT/control.txt" | head -n 3 | tr '\n' ' ')"
    check [ $rc -ne 0 ]
    check no_domain "$GUEST"

    fresh_console "$GUEST"
    ms env HELPER_REAL="$IN/xsr" LIBXL_SAVE_HELPER="$(timed_helper xsr)" xl restore -e "$OUT/g.save" < /dev/null > "$OUT/xsr-restore.txt" 2>&1; rc=$?
    xsr_ms=$MS
    cat "$OUT/xsr-restore.txt"
    log "xl restore through xsr: exit $rc"
    check [ $rc -eq 0 ]
    check wait_heartbeat_after "$GUEST" "$hb" 120
    check runs_on
    check vcpus_online "$GUEST"
    xl list -l "$GUEST" > "$OUT/xsr-list.json" 2>&1
    check grep -q '"domid"' "$OUT/xsr-list.json"

    enable_xen_helper
    hb2=$(last_heartbeat "$GUEST")
    ms xl save "$GUEST" "$OUT/after.save" < /dev/null || fail=1
    ms xl restore -e "$OUT/after.save" < /dev/null || log "xl restore exit $?"
    check wait_heartbeat_after "$GUEST" "$hb2" 120
    check runs_on
    xl destroy "$GUEST"
    check gone
    rm -f "$OUT/after.save"

    fresh_console "$GUEST"
    ms env HELPER_REAL="$XEN_HELPER" LIBXL_SAVE_HELPER="$(timed_helper xen)" xl restore -e "$OUT/g.save" < /dev/null || log "xl restore exit $?"
    xen_ms=$MS
    control wait_heartbeat_after "$GUEST" "$hb" 120
    control runs_on
    xl destroy "$GUEST"
    check gone

    disable_xen_helper
    fresh_console "$GUEST"
    ms ./xsr restore --domain "$OUT/g.save" --json > "$OUT/restore-domain.json" 2> "$OUT/restore-domain.err"; rc=$?
    rd_ms=$MS
    cat "$OUT/restore-domain.json" "$OUT/restore-domain.err"
    check [ $rc -eq 0 ]
    check [ "$(json_field "$OUT/restore-domain.json" domid)" = "$(xl domid "$GUEST")" ]
    check [ "$(json_str_retry "$OUT/restore-domain.json" state)" = running ]
    check wait_heartbeat_after "$GUEST" "$hb" 120
    check runs_on
    check vcpus_online "$GUEST"
    copy=xsr-copy
    ./xsr restore --domain "$OUT/g.save" --name "$copy" --paused > "$OUT/restore-copy.txt" 2> "$OUT/restore-copy.err"; rc=$?
    cat "$OUT/restore-copy.txt" "$OUT/restore-copy.err"
    check [ $rc -eq 0 ]
    check [ "$(head -n 1 "$OUT/restore-copy.txt")" = "$(xl domid "$copy")" ]
    case "$(dom_state "$copy")" in *p*) log "$copy is paused"; check true ;; *) log "$copy state '$(dom_state "$copy")'"; check false ;; esac
    xl unpause "$copy"
    check wait_heartbeat_after "$copy" "$hb" 120
    xl destroy "$copy"
    enable_xen_helper
    # the memory size of the domain xsr restore --domain made (restore-pv-balloon checks it)
    restored_mb=$(xl list "$GUEST" | awk 'NR == 2 { print $3 }')
    log "$GUEST restored by xsr restore --domain: $restored_mb MiB"
    xl destroy "$GUEST"
    check gone

    # The time figures: the same file restored paused (`xl restore -p`, then destroyed) through
    # Xen's helper and through xsr, alternately, $TIME_ROUNDS times each (one run of each is
    # too noisy on a nested TCG machine shared with builds); medians.
    rm -f "$OUT/t-xen.helper-ms" "$OUT/t-xsr.helper-ms" "$OUT/t-xen.xl-ms" "$OUT/t-xsr.xl-ms" "$OUT"/t-*.stamps
    for _r in $(seq "${TIME_ROUNDS:-3}"); do
        for _h in xen xsr; do
            if [ $_h = xen ]; then _real=$XEN_HELPER; else _real=$IN/xsr; fi
            ms env HELPER_REAL="$_real" LIBXL_SAVE_HELPER="$(timed_helper t-$_h)" XSR_HELPER_REPORT="$OUT/t-$_h-$_r.json" xl restore -p "$OUT/g.save" \
                < /dev/null > "$OUT/t-$_h.txt" 2>&1 || { log "timed xl restore through $_h: exit $?: $(tail -n 3 "$OUT/t-$_h.txt")"; fail=1; }
            echo "$MS" >> "$OUT/t-$_h.xl-ms"
            xl destroy "$GUEST"
            check gone
        done
    done
    median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    log "helper ms through Xen's helper: $(tr '\n' ' ' < "$OUT/t-xen.helper-ms"); through xsr: $(tr '\n' ' ' < "$OUT/t-xsr.helper-ms")"
    log "xl restore -p ms through Xen's helper: $(tr '\n' ' ' < "$OUT/t-xen.xl-ms"); through xsr: $(tr '\n' ' ' < "$OUT/t-xsr.xl-ms")"
    log "helper start-up+work+exit ms (libstamp), Xen's helper: $(stamp_breakdown t-xen); xsr: $(stamp_breakdown t-xsr)"
    log "helper CPU user+sys ms/minor page faults (libstamp), Xen's helper: $(rusage_breakdown t-xen); xsr: $(rusage_breakdown t-xsr)"
    # xsr's own account of each run: from exec to the restore's start, the restore (of which in
    # the domain); the rest of the helper's time is libxl's reply to `complete` and the exit
    for _r in $(seq "${TIME_ROUNDS:-3}"); do
        log "xsr run $_r: startup $(json_field "$OUT/t-xsr-$_r.json" startup_ms) ms, restore $(json_field "$OUT/t-xsr-$_r.json" restore_ms) ms, in the domain $(json_field "$OUT/t-xsr-$_r.json" domain_ms) ms (setup $(json_field "$OUT/t-xsr-$_r.json" setup_ms) ms), $(json_field "$OUT/t-xsr-$_r.json" read_calls) reads of the stream (timed only with XSR_HELPER_TIMING=1: $(json_field "$OUT/t-xsr-$_r.json" read_ms) ms); from the shim's clock: main at $(json_field "$OUT/t-xsr-$_r.json" at_main_ms) ms, restore from $(json_field "$OUT/t-xsr-$_r.json" at_start_ms) ms, complete at $(json_field "$OUT/t-xsr-$_r.json" at_complete_ms) ms, exit at $(sed -n "${_r}p" "$OUT/t-xsr.helper-ms") ms; peak RSS $(json_field "$OUT/t-xsr-$_r.json" peak_rss_kib) KiB"
    done
    h_xen=$(median "$OUT/t-xen.helper-ms") h_xsr=$(median "$OUT/t-xsr.helper-ms")
    x_xen=$(median "$OUT/t-xen.xl-ms") x_xsr=$(median "$OUT/t-xsr.xl-ms")

    figure guest-pages "$(json_field "$OUT/restore-domain.json" pages)"
    figure helper-xsr-median-ms "$h_xsr"
    figure helper-xen-median-ms "$h_xen"
    figure ratio-helper-xsr-vs-xen "$(ratio "$h_xsr" "$h_xen")"
    figure xl-restore-paused-through-xsr-median-ms "$x_xsr"
    figure xl-restore-paused-through-xen-median-ms "$x_xen"
    figure ratio-xl-restore-xsr-vs-xen-helper "$(ratio "$x_xsr" "$x_xen")"
    figure xl-restore-through-xsr-ms "$xsr_ms"
    figure xl-restore-through-xen-helper-ms "$xen_ms"
    figure xsr-restore-domain-ms "$rd_ms"
    figure xsr-restore-domain-helper-ms "$(json_field "$OUT/restore-domain.json" restore_ms)"
    figure xsr-restore-domain-in-domain-ms "$(json_field "$OUT/restore-domain.json" domain_ms)"
    # KEEP_GUEST=1: the guest restored once more (stock, Xen's helper) and running, for the checks
    # a job runs after this one in the same boot
    if [ -n "${KEEP_GUEST:-}" ]; then
        fresh_console "$GUEST"
        ms xl restore -e "$OUT/g.save" < /dev/null > "$OUT/keep-restore.txt" 2>&1 || log "xl restore exit $? (judged by the domain)"
        check wait_heartbeat_after "$GUEST" "$hb" 120
    fi
    rm -f "$OUT/g.save"
}
# startup_figures: what starting each helper costs in this dom0, before any work: the dynamic
# loader's own account (LD_DEBUG=statistics: relocations, time in ld.so) and the wall time of
# `xsr --version` against Xen's helper with an unknown mode (it aborts at once), 5 runs each
startup_figures() {
    LD_DEBUG=statistics ./xsr --version > /dev/null 2> "$OUT/ld-xsr.txt"
    LD_DEBUG=statistics "$XEN_HELPER" --none > /dev/null 2> "$OUT/ld-xen.txt"
    for _h in xsr xen; do
        log "ld.so for $_h: $(grep -h 'total startup time\|time needed for relocation\|number of relocations:\|relocations from cache\|objects' "$OUT/ld-$_h.txt" | tr -s ' \t' ' ' | tr '\n' ';')"
    done
    rm -f "$OUT"/start-*.ms
    for _i in 1 2 3 4 5; do
        ms ./xsr --version > /dev/null; echo "$MS" >> "$OUT/start-xsr.ms"
        # the helper's path: exec, loader, main, the arguments refused (exit 2)
        ms ./xsr --restore-domain > /dev/null 2>&1; echo "$MS" >> "$OUT/start-xsr-helper.ms"
        ms "$XEN_HELPER" --none > /dev/null 2>&1; echo "$MS" >> "$OUT/start-xen.ms"
        ms /bin/true; echo "$MS" >> "$OUT/start-true.ms"
    done
    log "start-up wall ms, xsr --version: $(tr '\n' ' ' < "$OUT/start-xsr.ms"); xsr --restore-domain (refused at once): $(tr '\n' ' ' < "$OUT/start-xsr-helper.ms"); Xen's helper (aborts at once): $(tr '\n' ' ' < "$OUT/start-xen.ms"); /bin/true: $(tr '\n' ' ' < "$OUT/start-true.ms")"
    log "libraries loaded: xsr $(ldd ./xsr | wc -l), Xen's helper $(ldd "$XEN_HELPER" | wc -l); xsr is $(stat -c %s ./xsr) bytes, Xen's helper $(stat -c %s "$XEN_HELPER")"
}
# new_guest TYPE MEM_MB VCPUS [DIRTY]: the standard guest started afresh in the same boot, as
# job-run.sh starts it (any domain of its name destroyed first; the pattern, READY and a first
# heartbeat): several jobs' checks in one boot. Sets GUEST_TYPE and DOMID.
new_guest() {
    xl destroy "$GUEST" 2>/dev/null
    gone || return 1
    fresh_console "$GUEST"
    guest_cfg "$GUEST" "$1" tiny "$2" "$3" "${4:+realxen.dirty=$4}" > "$OUT/guest-$1-$2-$3.cfg"
    # xl create itself sometimes aborts after making the domain: judged by the domain
    xl create -e "$OUT/guest-$1-$2-$3.cfg" < /dev/null || [ -n "$(dom_state "$GUEST")" ] \
        || xl create -e "$OUT/guest-$1-$2-$3.cfg" < /dev/null || return 1
    wait_marker "$GUEST" REALXEN-DOMU-READY 600 || return 1
    wait_heartbeat_after "$GUEST" 0 300 || return 1
    GUEST_TYPE=$1 DOMID=$(xl domid "$GUEST")
    log "guest $GUEST is domain $DOMID, type $1, $2 MiB, $3 vcpu(s)"
}
# balloon_job: the body of restore-pv-balloon (the guest started with 48 MiB): it gives 16 MiB
# back to Xen (`xl mem-set`: its balloon driver returns the frames, so its p2m has holes and `xl
# save` sends those pfns as XTAB); then `restore_job`: the guest runs on with the pattern's md5
# and the same memory size
balloon_job() {
    _mem_mb() { xl list "$GUEST" | awk 'NR == 2 { print $3 }'; }
    log "before the balloon: $(_mem_mb) MiB"
    xl mem-set "$GUEST" 32m
    _i=0; while [ "$(_mem_mb)" -gt 33 ] && [ $_i -lt 60 ]; do sleep 1; _i=$((_i + 1)); done
    log "after xl mem-set 32m and ${_i}s: $(_mem_mb) MiB"
    check [ "$(_mem_mb)" -le 33 ]
    check runs_on
    # the p2m's holes are in the xl save file as XTAB
    saved_hook() {
        ./xsr inspect "$1" | grep '^pages:' | tee "$OUT/balloon-pages.txt"
        check grep -q 'XTAB [0-9]' "$OUT/balloon-pages.txt"
    }
    restore_job
    unset -f saved_hook
    check [ "$restored_mb" -le 33 ]
}
# runs_on_after_migration HB: the migrated guest runs unpaused with a heartbeat after HB in the
# console log xenconsoled writes for it (GUEST--incoming when it appeared under that name), the
# pattern's md5 and its vcpus online
runs_on_after_migration() {
    _name="$GUEST"
    [ -s "$(conlog "$GUEST--incoming")" ] && _name="$GUEST--incoming"
    check wait_heartbeat_after "$_name" "$1" 120
    check running
    check beats_md5 "$_name"
    check vcpus_online "$GUEST"
}
# helper_save_job: xsr as libxl's save helper in save mode (`xl save`, `xl migrate`) for the
# standard guest of any type, with Xen's own libxl-save-helper disabled (a stock `xl save` is shown
# to fail first, the guest running on). `xl save` through xsr (the domain is gone), `xsr verify
# --strict` of the file, then with Xen's helper back a stock `xl restore` of it: the heartbeat
# continues with the pattern's md5. Figures: `xl save -c` through xsr and through Xen's helper
# alternately (`polled`: wall time and how long the guest was down), medians and spread. Then
# `xl migrate` to localhost: PV: with Xen's helper it fails on this Xen (no log-dirty for PV; the
# guest runs on); HVM/PVH: Xen's helper sending and xsr receiving. Then xsr as the helper on both
# ends: it moves and runs on.
helper_save_job() {
    ./xsr --version
    startup_figures
    disable_xen_helper
    xl save "$GUEST" "$OUT/control.save" < /dev/null > "$OUT/control.txt" 2>&1; rc=$?
    log "control: stock xl save with Xen's helper disabled: exit $rc: $(grep -i 'helper\|error' "$OUT/control.txt" | head -n 3 | tr '\n' ' ')"
    check [ $rc -ne 0 ]
    check runs_on
    rm -f "$OUT/control.save"

    hb=$(last_heartbeat "$GUEST")
    ms env LIBXL_SAVE_HELPER="$IN/xsr" XSR_HELPER_REPORT="$OUT/save-report.json" xl save "$GUEST" "$OUT/x.save" \
        < /dev/null > "$OUT/xsr-save.txt" 2>&1; rc=$?
    save_ms=$MS
    cat "$OUT/xsr-save.txt" "$OUT/save-report.json"
    log "xl save through xsr: exit $rc"
    check [ $rc -eq 0 ]
    check grep -q '"ok": true' "$OUT/save-report.json"
    check grep -q "\"guest_type\": \"$GUEST_TYPE\"" "$OUT/save-report.json"
    check gone
    check ./xsr verify --strict "$OUT/x.save"
    ./xsr inspect "$OUT/x.save" | grep -v PAGE_DATA | tail -n 12

    enable_xen_helper
    fresh_console "$GUEST"
    ms xl restore -e "$OUT/x.save" < /dev/null || log "xl restore exit $? (judged by the domain)"
    check wait_heartbeat_after "$GUEST" "$hb" 120
    check runs_on
    check vcpus_online "$GUEST"
    rm -f "$OUT/x.save"

    # The time figures: `xl save -c` (the guest resumes, so its downtime can be sampled) through
    # Xen's helper and through xsr alternately, $TIME_ROUNDS times each; medians.
    rm -f "$OUT"/s-*.ms "$OUT"/s-*.down "$OUT"/s-*.helper-ms "$OUT"/s-*.stamps
    for r in $(seq "${TIME_ROUNDS:-3}"); do
        for h in xen xsr; do
            if [ $h = xen ]; then real=$XEN_HELPER; else real=$IN/xsr; fi
            polled "s-$h-$r" env HELPER_REAL="$real" XSR_HELPER_REPORT="$OUT/s-$h-$r.json" LIBXL_SAVE_HELPER="$(timed_helper s-$h)" \
                xl save -c "$GUEST" "$OUT/t.save" \
                || { log "xl save -c through $h: failed: $(tail -n 3 "$OUT/s-$h-$r.out")"; fail=1; }
            echo "$MS" >> "$OUT/s-$h.ms"
            echo "${DOWN_HI:-}" >> "$OUT/s-$h.down"
            rm -f "$OUT/t.save"
            check runs_on
        done
    done
    median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    for f in s-xen.ms s-xsr.ms s-xen.down s-xsr.down s-xen.helper-ms s-xsr.helper-ms; do log "$f: $(tr '\n' ' ' < "$OUT/$f")"; done
    log "helper start-up+work+exit ms (libstamp), Xen's helper: $(stamp_breakdown s-xen); xsr: $(stamp_breakdown s-xsr)"
    log "helper CPU user+sys ms/minor page faults (libstamp), Xen's helper: $(rusage_breakdown s-xen); xsr: $(rusage_breakdown s-xsr)"
    for r in $(seq "${TIME_ROUNDS:-3}"); do
        log "xsr save run $r: main at $(json_field "$OUT/s-xsr-$r.json" at_main_ms) ms, domain opened in $(json_field "$OUT/s-xsr-$r.json" open_ms) ms, save from $(json_field "$OUT/s-xsr-$r.json" at_start_ms) ms, complete at $(json_field "$OUT/s-xsr-$r.json" at_complete_ms) ms, exit at $(sed -n "${r}p" "$OUT/s-xsr.helper-ms") ms; peak RSS $(json_field "$OUT/s-xsr-$r.json" peak_rss_kib) KiB; suspend request to end of stream $(json_field "$OUT/s-xsr-$r.json" downtime_ms) ms"
    done

    src=$(xl domid "$GUEST")
    if [ "$GUEST_TYPE" = pv ]; then
        # stock (Xen's helper both ends) fails for PV on this Xen
        xl migrate -s '' "$GUEST" "xl migrate-receive" < /dev/null > "$OUT/migrate-stock.txt" 2>&1; rc=$?
        log "stock xl migrate of the PV guest: exit $rc: $(grep -i 'error\|fail' "$OUT/migrate-stock.txt" | head -n 4 | tr '\n' ' ')"
        check [ $rc -ne 0 ]
        check [ "$(xl domid "$GUEST")" = "$src" ]
        check runs_on
        no_domain "$GUEST--incoming" || log "left behind: $(xl list | grep incoming)"
    else
        # Xen's helper sending, xsr receiving (a live stream in several passes)
        hb=$(last_heartbeat "$GUEST")
        ms xl migrate -s '' "$GUEST" "env LIBXL_SAVE_HELPER=$IN/xsr XSR_HELPER_REPORT=$OUT/migrate-xen-to-xsr.json xl migrate-receive" \
            < /dev/null > "$OUT/migrate-xen-to-xsr.txt" 2>&1; rc=$?
        mig_in_ms=$MS
        cat "$OUT/migrate-xen-to-xsr.txt" "$OUT/migrate-xen-to-xsr.json"
        log "xl migrate, Xen's helper sending, xsr receiving: exit $rc"
        check [ $rc -eq 0 ]
        check grep -q '"ok": true' "$OUT/migrate-xen-to-xsr.json"
        check [ -n "$(xl domid "$GUEST")" ]
        check [ "$(xl domid "$GUEST")" != "$src" ]
        runs_on_after_migration "$hb"
        figure xl-migrate-xen-to-xsr-ms "$mig_in_ms"
        figure migrate-xen-to-xsr-pages "$(json_field "$OUT/migrate-xen-to-xsr.json" pages)"
        src=$(xl domid "$GUEST")
    fi

    disable_xen_helper
    name="$GUEST"
    [ -s "$(conlog "$GUEST--incoming")" ] && name="$GUEST--incoming"
    # the guest's heartbeat counter goes on in its memory, so a later beat in whichever log
    # xenconsoled writes for the received domain proves it runs
    hb=$(last_heartbeat "$name")
    ms env LIBXL_SAVE_HELPER="$IN/xsr" XSR_HELPER_REPORT="$OUT/migrate-send.json" xl migrate -s '' "$GUEST" \
        "env LIBXL_SAVE_HELPER=$IN/xsr XSR_HELPER_REPORT=$OUT/migrate-receive.json xl migrate-receive" \
        < /dev/null > "$OUT/migrate.txt" 2>&1; rc=$?
    mig_ms=$MS
    cat "$OUT/migrate.txt" "$OUT/migrate-send.json" "$OUT/migrate-receive.json"
    log "xl migrate with xsr on both ends: exit $rc"
    check [ $rc -eq 0 ]
    check grep -q '"ok": true' "$OUT/migrate-send.json"
    check grep -q '"ok": true' "$OUT/migrate-receive.json"
    check [ -n "$(xl domid "$GUEST")" ]
    check [ "$(xl domid "$GUEST")" != "$src" ]
    runs_on_after_migration "$hb"
    enable_xen_helper

    figure xl-save-through-xsr-ms "$save_ms"
    figure xl-save-c-through-xsr-median-ms "$(median "$OUT/s-xsr.ms")"
    figure xl-save-c-through-xen-median-ms "$(median "$OUT/s-xen.ms")"
    figure ratio-xl-save-c-xsr-vs-xen "$(ratio "$(median "$OUT/s-xsr.ms")" "$(median "$OUT/s-xen.ms")")"
    figure helper-save-xsr-median-ms "$(median "$OUT/s-xsr.helper-ms")"
    figure helper-save-xen-median-ms "$(median "$OUT/s-xen.helper-ms")"
    figure ratio-helper-save-xsr-vs-xen "$(ratio "$(median "$OUT/s-xsr.helper-ms")" "$(median "$OUT/s-xen.helper-ms")")"
    figure downtime-xsr-median-ms "$(median "$OUT/s-xsr.down")"
    figure downtime-xen-median-ms "$(median "$OUT/s-xen.down")"
    figure ratio-downtime-xsr-vs-xen "$(ratio "$(median "$OUT/s-xsr.down")" "$(median "$OUT/s-xen.down")")"
    figure xl-migrate-xsr-both-ends-ms "$mig_ms"
    figure migrate-sent-pages "$(json_field "$OUT/migrate-send.json" pages)"
}
# ---- live migration into a new domain (issue 16)
# listening PORT: until something listens on 127.0.0.1:PORT (/proc/net/tcp, state 0A = LISTEN)
listening() {
    _hex=$(printf '%04X' "$1"); _i=0
    while ! grep -q "^ *[0-9]*: 0100007F:$_hex 00000000:0000 0A" /proc/net/tcp; do
        _i=$((_i+1)); [ $_i -gt 400 ] && return 1; sleep 0.05
    done
}
# domains: the domains whose names start with the guest's, "name(id,state)" each
domains() { xl list 2>/dev/null | awk -v g="$GUEST" 'NR > 1 && index($1, g) == 1 { printf "%s(%s,%s) ", $1, $2, $5 }'; }
# one_copy: exactly one domain of the guest's name family exists, named GUEST and running (no
# GUEST--incoming, no GUEST--migratedaway). Asked up to three times a second apart (xl quirk).
one_copy() {
    for _try in 1 2 3; do
        _d=$(domains)
        if [ "$(echo $_d | wc -w)" = 1 ] && echo "$_d" | grep -q "^$GUEST(" && ! echo "$_d" | grep -q ',[^)]*[ps][^)]*)'; then
            return 0
        fi
        log "not one running copy (try $_try): $_d"; sleep 1
    done
    return 1
}
# beats_on LOGNAME HB: a heartbeat numbered above HB on that console log (the name the domain had
# when its console appeared: GUEST, or GUEST--incoming for a migrated copy), with the pattern md5
beats_on() {
    wait_heartbeat_after "$1" "$2" 90 || return 1
    _now=$(last_heartbeat "$1")
    [ "$(heartbeat_md5_after "$1" "$_now")" = "$PATTERN_MD5" ]
}
# console_of: the console log name of the running copy (its name when its console appeared)
console_of() { if [ "$(xl domid "$GUEST" 2>/dev/null)" = "$(cat /tmp/migrated-domid 2>/dev/null)" ]; then echo "$GUEST--incoming"; else echo "$GUEST"; fi; }
# migrated_to SRC: after a migration attempt from domain SRC, note the domain id the guest now
# runs as when it is another one (a migrated copy, whose console log is GUEST--incoming)
migrated_to() { _now=$(xl domid "$GUEST" 2>/dev/null); [ -n "$_now" ] && [ "$_now" != "$1" ] && echo "$_now" > /tmp/migrated-domid; true; }
# migration_downtime LABEL CMD...: run CMD (a migration within this host) while a sampler asks Xen
# every millisecond for the state of the source domain and of the next 16 domain ids (where the
# destination's copy appears), as `polled` does for one domain. Sets MS and DOWNTIME_MS: from the
# first sample that saw the source down (suspended or paused) to the first sample after it that
# saw another of those domains running (not paused, not shut down).
migration_downtime() {
    _label=$1; shift
    rm -f "$OUT/$_label.stop"
    chrt -f 50 python3 -c '
import ctypes, os, sys, time
src, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
xc = ctypes.CDLL("libxenctrl.so.4.17")
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
info = ctypes.create_string_buffer(1024)
def state(dom):
    if xc.xc_domain_getinfo(h, dom, 1, info) != 1 or int.from_bytes(info[0:4], "little") != dom:
        return None
    f = int.from_bytes(info[8:12], "little")  # dying:1 crashed:1 shutdown:1 paused:1 blocked:1 running:1
    return "down" if f & 0b1111 else "up"
with open(out, "w") as o:
    down_at, i = None, 0
    while True:
        t = time.monotonic_ns()
        s = state(src)
        if down_at is None and s != "up":
            down_at = t; o.write("down %d\n" % t); o.flush()
        if down_at is not None:
            for d in range(src + 1, src + 17):
                if state(d) == "up":
                    o.write("up %d %d\n" % (t, d)); o.flush(); down_at = -1; break
        if down_at == -1:
            break
        i += 1
        if i % 20 == 0 and os.path.exists(stop):
            break
        time.sleep(0.001)
' "$(xl domid "$GUEST")" "$OUT/$_label.down" "$OUT/$_label.stop" &
    _s=$!
    sleep 2
    _a=$(date +%s%N)
    "$@" < /dev/null > "$OUT/$_label.out" 2>&1; _rc=$?
    _b=$(date +%s%N); MS=$(( (_b - _a) / 1000000 ))
    sleep 1; touch "$OUT/$_label.stop"; wait_for $_s 30
    DOWNTIME_MS=$(awk '$1 == "down" { d = $2 } $1 == "up" { u = $2 } END { if (d && u) printf "%d", (u - d) / 1000000 }' "$OUT/$_label.down")
    log "$_label: exit $_rc, ${MS} ms, guest down for ${DOWNTIME_MS:-?} ms: $(tr '\n' ';' < "$OUT/$_label.down")"
    cat "$OUT/$_label.out"
    return $_rc
}
# one_running: exactly one running domain of the guest's family, named GUEST (a suspended
# GUEST--migratedaway may be there too: it does not run)
one_running() {
    for _try in 1 2 3; do
        _d=$(domains)
        _run=$(for _x in $_d; do case "$_x" in *,*[ps]*")") ;; *) echo "$_x" ;; esac; done)
        if [ "$(echo $_run | wc -w)" = 1 ] && echo "$_run" | grep -q "^$GUEST("; then return 0; fi
        log "not one running copy (try $_try): $_d"; sleep 1
    done
    return 1
}
# relay PORT TARGET: a TCP relay on 127.0.0.1:PORT to 127.0.0.1:TARGET for one connection, in
# python; `touch $OUT/cut` cuts the network: both connections are reset (SO_LINGER 0) at once
relay() {
    rm -f "$OUT/cut"
    python3 -c '
import os, socket, struct, sys, threading, time
port, target, cut = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(1)
a, _ = ls.accept(); b = socket.create_connection(("127.0.0.1", target))
done = []
def pump(x, y):
    try:
        while True:
            d = x.recv(1 << 16)
            if not d:
                y.shutdown(socket.SHUT_WR); break
            y.sendall(d)
    except OSError:
        pass
    done.append(1)
for x, y in ((a, b), (b, a)):
    threading.Thread(target=pump, args=(x, y), daemon=True).start()
while len(done) < 2:
    if os.path.exists(cut):
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
        print("cut", flush=True); break
    time.sleep(0.01)
' "$1" "$2" "$OUT/cut" &
    RELAY=$!
}
# wait_text FILE TEXT: until FILE contains TEXT, for at most 60 s
wait_text() {
    _i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do _i=$((_i+1)); [ $_i -gt 1200 ] && { log "no '$2' in $1"; return 1; }; sleep 0.05; done
}
# wait_incoming: until a GUEST--incoming domain exists (a receiver is restoring), for at most 60 s
wait_incoming() {
    _i=0
    while ! xl list 2>/dev/null | awk '{ print $1 }' | grep -qx "$GUEST--incoming"; do
        _i=$((_i+1)); [ $_i -gt 600 ] && { log "no $GUEST--incoming"; return 1; }; sleep 0.1
    done
}
# xl_into_xsr_job: stock `xl migrate` (Xen's helper saving) into `xsr migrate-receive` (Xen's
# helper disabled in the receiver's mount namespace), twice; each time exactly one copy runs with
# the heartbeat continuing and the pattern md5 (the body of the migrate-receive-{pvh,hvm} jobs)
xl_into_xsr_job() {
    ./xsr --version
    printf '#!/bin/sh\necho "Xen'"'"'s libxl-save-helper is disabled by this job ($*)" >&2\nexit 99\n' > /tmp/no-save-helper
    chmod 755 /tmp/no-save-helper
    for round in 1 2; do
        hb=$(last_heartbeat "$(console_of)")
        src=$(xl domid "$GUEST")
        ms xl migrate -s '' "$GUEST" "exec unshare -m sh -c 'mount --bind /tmp/no-save-helper $XEN_HELPER && exec $IN/xsr migrate-receive'" \
            > "$OUT/$GUEST_TYPE-from-xl-$round.txt" 2>&1; rc=$?
        cat "$OUT/$GUEST_TYPE-from-xl-$round.txt"
        log "xl migrate into xsr migrate-receive ($GUEST_TYPE, round $round): exit $rc"
        check [ $rc -eq 0 ]
        check grep -q "Migration successful" "$OUT/$GUEST_TYPE-from-xl-$round.txt"
        check grep -q "received domain" "$OUT/$GUEST_TYPE-from-xl-$round.txt"
        check [ "$(xl domid "$GUEST")" != "$src" ]
        migrated_to "$src"
        check one_copy
        check beats_on "$(console_of)" "$hb"
        check vcpus_online "$GUEST"
        tfigure "xl-migrate-to-xsr-ms-$round" "$MS"
    done
}
# ---- xsr -> xsr rounds, downtime pairs and faults, for every guest type (issue 16)
TLS_DST="--tls-cert dst.example.crt --tls-key dst.example.key --tls-ca ca.crt --tls-allow src.example"
TLS_SRC="--tls-name dst.example --tls-cert src.example.crt --tls-key src.example.key --tls-ca ca.crt"
# xsr_round LABEL PORT tls|plain [text]: one `xsr send --domain --live` into `xsr receive --domain`
# on 127.0.0.1:PORT (TLS 1.3 with the job's certificates, or plaintext), checked: both exit 0, the
# guest runs as a new domain (the receiver's), exactly one copy, its heartbeat continuing with
# the pattern md5, every vcpu online. Whatever the outcome, exactly one copy must run afterwards.
# Both sides report in JSON, or with `text` as a person sees them (for the docs). Sets ROUND_OK
# (1 when every check passed), ROUND_MS (send's wall ms), ROUND_DOWN (send's own downtime).
xsr_round() {
    _xr_l=$1 _xr_p=$2 _xr_d= _xr_s= _xr_j=--json
    [ "$3" = tls ] && { _xr_d=$TLS_DST; _xr_s=$TLS_SRC; }
    [ "${4:-}" = text ] && _xr_j=
    _xr_f0=$fail; fail=0
    hb=$(last_heartbeat "$(console_of)")
    src=$(xl domid "$GUEST")
    ./xsr receive --domain --listen 127.0.0.1:$_xr_p $_xr_d $_xr_j > "$OUT/$_xr_l-recv.json" 2> "$OUT/$_xr_l-recv.err" &
    _xr_r=$!
    check listening $_xr_p
    ms ./xsr send --domain "$GUEST" --live --to 127.0.0.1:$_xr_p $_xr_s $_xr_j > "$OUT/$_xr_l-send.json" 2> "$OUT/$_xr_l-send.err"; _xr_rc=$?
    ROUND_MS=$MS
    wait_for $_xr_r 120; _xr_rrc=$?
    log "$_xr_l: send exit $_xr_rc: $(tr '\n' ' ' < "$OUT/$_xr_l-send.err")"
    log "$_xr_l: receive exit $_xr_rrc: $(tr '\n' ' ' < "$OUT/$_xr_l-recv.err")"
    cat "$OUT/$_xr_l-send.json" "$OUT/$_xr_l-recv.json"
    log "$_xr_l: domains after: $(domains)"
    check [ $_xr_rc -eq 0 ]
    check [ $_xr_rrc -eq 0 ]
    if [ -n "$_xr_j" ]; then
        _xr_out=$(json_str_retry "$OUT/$_xr_l-send.json" outcome)
        _xr_dom=$(json_field "$OUT/$_xr_l-recv.json" domid)
        ROUND_DOWN=$(json_field "$OUT/$_xr_l-send.json" downtime_ms)
    else
        # text summaries go to standard error
        _xr_out=$(sed -n 's/^saved domain .*; domain \([a-z]*\)$/\1/p' "$OUT/$_xr_l-send.err")
        _xr_dom=$(sed -n 's/^received domain \([0-9]*\) .*/\1/p' "$OUT/$_xr_l-recv.err")
        ROUND_DOWN=$(sed -n 's/^saved domain .*guest stopped for \([0-9]*\) ms.*/\1/p' "$OUT/$_xr_l-send.err")
    fi
    check [ "$_xr_out" = destroyed ]
    check [ "$(xl domid "$GUEST")" != "$src" ]
    check [ "$_xr_dom" = "$(xl domid "$GUEST")" ]
    [ "$3" = tls ] && check grep -q "TLS 1.3" "$OUT/$_xr_l-recv.err"
    migrated_to "$src"
    check one_copy
    check beats_on "$(console_of)" "$hb"
    check vcpus_online "$GUEST"
    ROUND_OK=0; [ $fail -eq 0 ] && ROUND_OK=1
    fail=$((_xr_f0 | fail))
}
# xsr_into_xsr_job: `xsr send --domain --live` into `xsr receive --domain` over TLS 1.3, twice
# (Xen's helper disabled: only xsr restores); when a TLS round fails, two plaintext rounds on
# loopback as well, to tell the transport from the rest. Figures: wall and downtime (xsr's own).
xsr_into_xsr_job() {
    disable_xen_helper
    _tls_failed=0
    for round in 1 2; do
        # the second round as a person sees it (text), for the docs
        if [ $round -eq 2 ]; then xsr_round "$GUEST_TYPE-tls-$round" $((7940 + round)) tls text; else xsr_round "$GUEST_TYPE-tls-$round" $((7940 + round)) tls; fi
        tfigure "xsr-to-xsr-tls-ms-$round" "$ROUND_MS"
        tfigure "xsr-to-xsr-tls-downtime-ms-$round" "$ROUND_DOWN"
        [ $ROUND_OK -eq 1 ] || _tls_failed=1
    done
    if [ $_tls_failed -eq 1 ]; then
        log "a TLS round failed: two plaintext rounds, to tell the transport from the rest"
        for round in 1 2; do
            xsr_round "$GUEST_TYPE-plain-$round" $((7944 + round)) plain
            tfigure "xsr-to-xsr-plain-ms-$round" "$ROUND_MS"
            tfigure "xsr-to-xsr-plain-downtime-ms-$round" "$ROUND_DOWN"
        done
    fi
    enable_xen_helper
}
# stats FILE: "median min max n" of the numbers in FILE (one a line)
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR) printf "%s %s %s %d", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR], NR }'; }
# downtime_pairs N: the guest's downtime, `xsr send --domain --live` into `xsr receive --domain`
# (plaintext on loopback) against `xl migrate` into `xl migrate-receive` with xsr as libxl's save
# helper (for PV on both ends: Xen's own helper cannot migrate a PV guest on this host, no
# log-dirty; for PVH/HVM on the receiving end, as xsr's helper saves only PV so far), N times
# each, alternately, both measured by the same sampler (migration_downtime). Each migration is
# checked (a new domain, exactly one copy, heartbeat with the pattern md5). Figures: each run,
# then median, min and max.
downtime_pairs() {
    rm -f "$OUT/$GUEST_TYPE-down-xsr.ms" "$OUT/$GUEST_TYPE-down-xl.ms" "$OUT/$GUEST_TYPE-wall-xsr.ms" "$OUT/$GUEST_TYPE-wall-xl.ms"
    if [ "$GUEST_TYPE" = pv ]; then _dp_sh="env LIBXL_SAVE_HELPER=$IN/xsr"; else _dp_sh=env; fi
    for _dp_i in $(seq "$1"); do
        ./xsr receive --domain --listen 127.0.0.1:$((7900 + _dp_i)) > "$OUT/$GUEST_TYPE-down-xsr-$_dp_i.recv" 2>&1 &
        _dp_r=$!
        check listening $((7900 + _dp_i))
        hb=$(last_heartbeat "$(console_of)"); src=$(xl domid "$GUEST")
        migration_downtime "$GUEST_TYPE-down-xsr-$_dp_i" ./xsr send --domain "$GUEST" --live --to 127.0.0.1:$((7900 + _dp_i)); _dp_rc=$?
        wait_for $_dp_r 60
        check [ $_dp_rc -eq 0 ]
        check [ "$(xl domid "$GUEST")" != "$src" ]
        migrated_to "$src"
        check one_copy
        check beats_on "$(console_of)" "$hb"
        [ $_dp_rc -eq 0 ] && [ -n "$DOWNTIME_MS" ] && { echo "$DOWNTIME_MS" >> "$OUT/$GUEST_TYPE-down-xsr.ms"; echo "$MS" >> "$OUT/$GUEST_TYPE-wall-xsr.ms"; }
        tfigure "downtime-xsr-send-receive-ms-$_dp_i" "$DOWNTIME_MS"

        hb=$(last_heartbeat "$(console_of)"); src=$(xl domid "$GUEST")
        migration_downtime "$GUEST_TYPE-down-xl-$_dp_i" $_dp_sh xl migrate -s '' "$GUEST" "env LIBXL_SAVE_HELPER=$IN/xsr xl migrate-receive -e"; _dp_rc=$?
        # xl migrate has been seen to exit 0 after "Migration failed, failed to suspend at sender":
        # the new domain id is what tells
        check [ $_dp_rc -eq 0 ]
        check [ "$(xl domid "$GUEST")" != "$src" ]
        _dp_moved=0; [ "$(xl domid "$GUEST")" != "$src" ] && _dp_moved=1
        migrated_to "$src"
        check one_copy
        check beats_on "$(console_of)" "$hb"
        [ $_dp_rc -eq 0 ] && [ $_dp_moved -eq 1 ] && [ -n "$DOWNTIME_MS" ] && { echo "$DOWNTIME_MS" >> "$OUT/$GUEST_TYPE-down-xl.ms"; echo "$MS" >> "$OUT/$GUEST_TYPE-wall-xl.ms"; }
        tfigure "downtime-xl-migrate-xsr-helper-ms-$_dp_i" "$DOWNTIME_MS"
    done
    set -- $(stats "$OUT/$GUEST_TYPE-down-xsr.ms"); _dp_xm=${1:-}
    tfigure downtime-xsr-median-min-max-n "$*"
    set -- $(stats "$OUT/$GUEST_TYPE-down-xl.ms"); _dp_lm=${1:-}
    tfigure downtime-xl-median-min-max-n "$*"
    tfigure migrate-wall-xsr-median-min-max-n "$(stats "$OUT/$GUEST_TYPE-wall-xsr.ms")"
    tfigure migrate-wall-xl-median-min-max-n "$(stats "$OUT/$GUEST_TYPE-wall-xl.ms")"
    tfigure ratio-downtime-xsr-vs-xl "$(ratio "$_dp_xm" "$_dp_lm")"
}
# ---- faults at every step of a migration into a new domain (issue 16; migrate-faults*.sh)
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
    cp "$OUT/send.txt" "$OUT/fault-$1-send.txt"; cp "$OUT/recv.txt" "$OUT/fault-$1-recv.txt"
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
# nomem_fault: a receiver that cannot create the domain. A paused PV domain (not of the guest's
# name family) takes all but 16 MiB of the host's free memory, so the guest (32 MiB) is larger
# than what is free: `xsr receive --domain` fails in libxl and says so to the sender, which
# resumes its guest (exit 2 on both sides); no GUEST--incoming is left, the guest runs on.
nomem_fault() {
    _free=$(xl info | awk '$1 == "free_memory" { print $3 }')
    guest_cfg realxen-hog pv tiny $((_free - 16)) 1 > /tmp/hog.cfg
    xl create -p /tmp/hog.cfg < /dev/null > "$OUT/hog.txt" 2>&1 || log "xl create of the hog: exit $?: $(tail -n 2 "$OUT/hog.txt")"
    log "free memory: $_free MiB before the hog, $(xl info | awk '$1 == "free_memory" { print $3 }') MiB after; $(xl list | tr '\n' ';')"
    start_pair "" ""
    end_pair nomem
    source_kept
    check grep -q "the receiver failed" "$OUT/send.txt"
    xl destroy realxen-hog
}
# migrate_faults_job: the faults of migrate-faults.sh for the boot's guest type, then nomem_fault.
migrate_faults_job() {
    ./xsr --version
    ip link set lo up
    check host_fpu
    disable_xen_helper
    # Network cut during the stream (the sender held after its first pass: a guest whose
    # pre-copy converges in under a second, as the PVH one does, would otherwise be past GO).
    start_pair precopy:10 "" relay
    check wait_text "$OUT/send.txt" "holding at precopy"
    touch "$OUT/cut"
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
    start_pair precopy:10 ""
    check wait_text "$OUT/send.txt" "holding at precopy"
    kill -KILL "$(worker $rpid)"
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
    start_pair precopy:30 ""
    check wait_text "$OUT/send.txt" "holding at precopy"
    kill -KILL "$(worker $spid)"
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
    nomem_fault
    enable_xen_helper
}
# switch_guest TYPE: destroy every domain of the guest's name family and start the standard guest
# again as TYPE (pv, pvh, hvm; 32 MiB, 1 vcpu, rewriting 100 pages a second), with fresh console
# logs, so that one boot can test two guest types (the real Xen is shared: fewer boots)
switch_guest() {
    for _d in $(xl list 2>/dev/null | awk -v g="$GUEST" 'NR > 1 && index($1, g) == 1 { print $1 }'); do xl destroy "$_d"; done
    rm -f /tmp/migrated-domid
    for _c in "$(conlog "$GUEST")" "$(conlog "$GUEST--incoming")"; do [ -f "$_c" ] && : > "$_c"; done
    guest_cfg "$GUEST" "$1" tiny 32 1 realxen.dirty=100 > "$OUT/guest-$1.cfg"
    xl create -e "$OUT/guest-$1.cfg" < /dev/null || [ -n "$(dom_state "$GUEST")" ] || return 1
    wait_marker "$GUEST" REALXEN-DOMU-READY 600 || return 1
    wait_heartbeat_after "$GUEST" 0 300 || return 1
    GUEST_TYPE=$1 DOMID=$(xl domid "$GUEST")
    log "guest $GUEST is now domain $DOMID, type $1: $(grep -o 'REALXEN-DOMU-READY.*' "$(conlog "$GUEST")" | tail -n 1)"
}
