# Helpers of the PVH and HVM jobs (sourced after common.sh, which the harness copies in too).

# qemu_status: the device model's run state (QMP query-status on libxl's socket
# /var/run/xen/qmp-libxl-DOMID, as libxl asks it): running, paused, ...; "none" without one (PVH).
qemu_status() {
    python3 - "$(xl domid "$GUEST")" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect("/var/run/xen/qmp-libxl-%s" % sys.argv[1])
except OSError:
    print("none")
    sys.exit(0)
f = s.makefile("rwb")
f.readline()
def run(c):
    f.write((json.dumps({"execute": c}) + "\r\n").encode())
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            return r
run("qmp_capabilities")
print(run("query-status").get("return", {}).get("status", "?"))
PY
}
# qemu_running: an HVM guest's QEMU runs (PVH: no device model, true)
qemu_running() {
    _q=$(qemu_status)
    [ "$GUEST_TYPE" != hvm ] && return 0
    [ "$_q" = running ] || { log "QEMU of $GUEST: '$_q'"; return 1; }
}
# logdirty_off: Xen's log-dirty mode is off for the guest. Xen refuses to turn it on while it is
# on (paging_log_dirty_enable: EINVAL), so turning it on and straight off again tells.
logdirty_off() {
    python3 - "$(xl domid "$GUEST")" <<'PY'
import ctypes, sys
xc = ctypes.CDLL("libxenctrl.so.4.17", use_errno=True)
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
dom = int(sys.argv[1])
ENABLE_LOGDIRTY, OFF = 2, 0   # XEN_DOMCTL_SHADOW_OP_* (xen/include/public/domctl.h)
if xc.xc_shadow_control(h, dom, ENABLE_LOGDIRTY, None, 0) != 0:
    print("log-dirty mode is on (errno %d)" % ctypes.get_errno())
    sys.exit(1)
sys.exit(0 if xc.xc_shadow_control(h, dom, OFF, None, 0) == 0 else 1)
PY
}
# left_as_found: the guest runs unpaused with a new heartbeat of the pattern's md5, log-dirty
# mode is off and (HVM) QEMU runs
left_as_found() { runs_on && logdirty_off && qemu_running; }
# keepalive LABEL: a log line every 20 s until killed (the harness takes 300 s of console
# silence for a hang; `xl dump-core` of an HVM guest maps each of ~1M gfns on its own)
keepalive() { while :; do sleep 20; log "still running: $1"; done; }
# listening PORT: until something listens on 127.0.0.1:PORT (/proc/net/tcp, state 0A = LISTEN)
listening() {
    _hex=$(printf '%04X' "$1"); _i=0
    while ! grep -q "^ *[0-9]*: 0100007F:$_hex 00000000:0000 0A" /proc/net/tcp; do
        _i=$((_i+1)); [ $_i -gt 200 ] && return 1; sleep 0.05
    done
}
# no_partial DIR: nothing of a killed or failed xsr is left in DIR (no .NAME.partial-PID)
no_partial() { [ -z "$(ls -A "$1" | grep partial)" ] || { log "left in $1: $(ls -lA "$1")"; return 1; }; }
# fresh_guest: the guest destroyed and created again from the harness's config (its console log
# kept aside, so heartbeats and markers count from the new guest), DOMID updated
fresh_guest() {
    xl destroy "$GUEST" 2>/dev/null
    gone || return 1
    _n=$(ls "$(conlog "$GUEST")".before-* 2>/dev/null | wc -l)
    mv "$(conlog "$GUEST")" "$(conlog "$GUEST").before-$_n"
    xl create -e "$OUT/guest.cfg" < /dev/null || { gone || return 1; xl create -e "$OUT/guest.cfg" < /dev/null; }
    wait_marker "$GUEST" REALXEN-DOMU-READY 300 || return 1
    wait_heartbeat_after "$GUEST" 0 120 || return 1
    DOMID=$(xl domid "$GUEST")
    log "guest $GUEST created again: domain $DOMID"
}
# xl_ref CMD...: a reference step of stock xl (`ms xl save -c ...`, `polled LABEL xl ...`), never
# one of xsr's. glibc has aborted xl here now and then ("malloc(): corrupted top size" in the
# middle of `xl save -c`, harness quirk 3), leaving the guest suspended with its save half done;
# then the guest is created afresh and CMD runs once more (logged, and reported as a figure).
xl_ref() {
    "$@"; _xrc=$?
    [ $_xrc -le 128 ] && return $_xrc
    log "XL-ABORTED: exit $_xrc of: $*; the guest is created again and the step runs once more"
    figure xl-aborted-and-rerun "$*"
    fresh_guest || return 1
    "$@"
}
# require CMD...: check CMD, and end the job when it failed (the steps after it need the guest
# running as found; without it they would each wait out their timeouts)
require() { check "$@"; [ "$fail" -eq 0 ] || { log "job stopped: $* failed"; ls -ls "$OUT"; exit 1; }; }
# hvm_param N: the guest's HVM param N (xc_hvm_param_get), for the logs
hvm_param() {
    python3 - "$(xl domid "$GUEST")" "$1" <<'PY'
import ctypes, sys
xc = ctypes.CDLL("libxenctrl.so.4.17", use_errno=True)
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
v = ctypes.c_uint64(0)
rc = xc.xc_hvm_param_get(h, int(sys.argv[1]), int(sys.argv[2]), ctypes.byref(v))
print("%#x" % v.value if rc == 0 else "error %d" % ctypes.get_errno())
PY
}
# watch_guest SECONDS: the guest's state and Xen's last messages about it, every second (logs)
watch_guest() {
    _i=0
    while [ $_i -lt "$1" ]; do
        log "state '$(dom_state "$GUEST")', heartbeat $(last_heartbeat "$GUEST"), xl dmesg: $(xl dmesg | grep -a "d$(xl domid "$GUEST" 2>/dev/null)" | tail -n 1)"
        sleep 1; _i=$((_i+1))
    done
}
