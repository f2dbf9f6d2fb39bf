# realxen-guest: none
# realxen-guest-type: pvh
# realxen job: does a PVH guest survive the resume after a save that failed or was interrupted
# while it was suspended, on this host? (interrupt-pvh's case 5 once ended in a triple fault
# with Xen's own rip/rsp in the guest's registers: docs/xen.md). The same cancelled suspend
# five ways, each followed by six seconds of watching and a new heartbeat of the pattern's md5
# (a guest that died is logged DEAD with Xen's last lines and created afresh):
#   E1 `xl save` into a full 6 MiB tmpfs: libxl's own failure path (libxl_domain_resume with
#      suspend_cancel = 1, i.e. xc_domain_resume fast + xs_resume_domain);
#   E2 the same calls from python (xenstore `suspend`, 0.4 s suspended, xc_domain_resume fast),
#      vcpu 0's rax/rip/rsp logged while suspended;
#   E3 `xsr save` into the full tmpfs; E4 and E6 `xsr save` stopped by SIGTERM while the guest is
#      suspended (interrupt-pvh's case 5); E5 `xsr save --keep-running`.
# The guest is created here (not by the harness, which waits 600 polls for a guest that died
# while booting: a PVH guest triple-faulted once in its early TSC calibration on this host), up
# to three times. 128 MiB, 2 vcpus, 256 pages a second rewritten.
GUEST=realxen-guest GUEST_TYPE=pvh
guest_cfg "$GUEST" pvh tiny 128 2 realxen.dirty=256 > $OUT/guest.cfg
boot_guest() {
    xl create -e $OUT/guest.cfg < /dev/null
    _i=0
    while ! grep -q REALXEN-DOMU-READY "$(conlog "$GUEST")" 2>/dev/null; do
        _i=$((_i+1)); sleep 1
        case "$(dom_state "$GUEST")" in *s*|*c*|*d*) log "BOOT-FAILED: state '$(dom_state "$GUEST")' after ${_i}s: $(xl dmesg | grep -a 'Triple\|RIP' | tail -n 2 | tr '\n' '|')"; xl destroy "$GUEST"; sleep 2; return 1 ;; esac
        [ $_i -gt 240 ] && { log "BOOT-FAILED: no READY after 240 s"; xl destroy "$GUEST"; return 1; }
    done
    wait_heartbeat_after "$GUEST" 0 120
}
n=0
until boot_guest; do n=$((n+1)); [ $n -ge 3 ] && { log "the PVH guest did not boot in 3 tries"; exit 98; }; c=$(conlog "$GUEST"); mv "$c" "$c.boot-$n"; done
DOMID=$(xl domid "$GUEST"); export GUEST DOMID GUEST_TYPE
log "guest booted after $n failed boots: domain $DOMID"
. ./common.sh
. ./lib-hvm.sh
./xsr --version
mkdir -p /tmp/small && mount -t tmpfs -o size=6m tmpfs /tmp/small
# vcpu0's rax and rip (xc_vcpu_getcontext, x86_64 layout: fpu 512, flags 8, then r15..r8, rax; rip after rdi+error/entry)
ctx() {
    python3 - "$(xl domid "$GUEST")" <<'PY'
import ctypes, sys
xc = ctypes.CDLL("libxenctrl.so.4.17", use_errno=True)
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
b = ctypes.create_string_buffer(8192)
rc = xc.xc_vcpu_getcontext(h, int(sys.argv[1]), 0, b)
q = lambda o: int.from_bytes(b.raw[o:o+8], "little")
print("rc %d rax %#x rip %#x rsp %#x flags %#x" % (rc, q(600), q(648), q(672), q(512)))
PY
}
survives() {
    _hb=$(last_heartbeat "$GUEST")
    watch_guest 6
    if wait_heartbeat_after "$GUEST" "$_hb" 20 && running; then log "ALIVE after $1"; return 0; fi
    log "DEAD after $1: state '$(dom_state "$GUEST")'; xl dmesg: $(xl dmesg | tail -n 30 | tr '\n' '|')"
    tail -n 30 "$(conlog "$GUEST")"
    fresh_guest
    return 1
}
log "HVM_PARAM_CALLBACK_IRQ: $(hvm_param 0)"

# E1: xl save into a full tmpfs: libxl's own failure path (libxl_domain_resume suspend_cancel=1)
rm -f /tmp/small/*
xl save "$GUEST" /tmp/small/xl.save < /dev/null > "$OUT/e1.txt" 2>&1; log "E1 xl save ENOSPC: exit $?: $(tail -n 5 "$OUT/e1.txt" | tr '\n' '|')"
check survives "E1 xl save ENOSPC"
log "HVM_PARAM_CALLBACK_IRQ: $(hvm_param 0)"

# E2: a cooperative suspend, 0.4 s, xc_domain_resume(fast) + xs_resume_domain (no xsr, no xl)
d=$(xl domid "$GUEST")
xenstore-write /local/domain/$d/control/shutdown suspend
i=0; while [ $i -lt 200 ]; do case "$(dom_state "$GUEST")" in *s*) break ;; esac; sleep 0.05; i=$((i+1)); done
log "E2 state '$(dom_state "$GUEST")', ctx while suspended: $(ctx), callback irq $(hvm_param 0)"
sleep 0.4
python3 - $d <<'PY'
import ctypes, sys
d = int(sys.argv[1])
xc = ctypes.CDLL("libxenctrl.so.4.17", use_errno=True)
xc.xc_interface_open.restype = ctypes.c_void_p
h = ctypes.c_void_p(xc.xc_interface_open(None, None, 0))
xg = ctypes.CDLL("libxenguest.so.4.17", use_errno=True)  # xc_domain_resume is libxenguest's
rc = xg.xc_domain_resume(h, d, 1)
xs = ctypes.CDLL("libxenstore.so.4", use_errno=True)
xs.xs_open.restype = ctypes.c_void_p
x = ctypes.c_void_p(xs.xs_open(0))
ok = xs.xs_resume_domain(x, d)
print("xc_domain_resume(fast) rc", rc, "errno", ctypes.get_errno(), "xs_resume_domain", ok)
PY
check survives "E2 python suspend+fast resume"

# E3: xsr save into a full tmpfs (no signal)
rm -f /tmp/small/* /tmp/small/.[!.]*
./xsr save --domain "$GUEST" --out /tmp/small/xsr.save > "$OUT/e3.txt" 2>&1; log "E3 xsr save ENOSPC: exit $?: $(cat "$OUT/e3.txt" | tr '\n' '|')"
check survives "E3 xsr save ENOSPC"

# term_while_suspended CASE FILE WHAT: `xsr save` stopped by SIGTERM once the guest is suspended
# and the file is being written (interrupt-pvh's step 5), vcpu 0's context logged meanwhile
term_while_suspended() {
    ./xsr save --domain "$GUEST" --out "$OUT/d/$2" --batch 1 > "$OUT/$1.txt" 2>&1 &
    _pid=$!
    _i=0; while [ $_i -lt 600 ]; do case "$(dom_state "$GUEST")" in *s*) break ;; esac; sleep 0.05; _i=$((_i+1)); done
    wait_writing "$OUT/d"
    log "$1 ctx while suspended: $(ctx), callback irq $(hvm_param 0)"
    kill -TERM $_pid; wait_for $_pid 120; log "$1 xsr save SIGTERM: exit $?: $(cat "$OUT/$1.txt" | tr '\n' '|')"
    check survives "$1 $3"
}

# E4: xsr save SIGTERM while suspended (interrupt-pvh's step 5)
mkdir -p "$OUT/d"
term_while_suspended E4 term.save "xsr save SIGTERM"

# E5: xsr save --keep-running (the normal resume)
./xsr save --domain "$GUEST" --out "$OUT/d/keep.save" --keep-running > "$OUT/e5.txt" 2>&1; log "E5 keep-running: exit $?: $(cat "$OUT/e5.txt" | tr '\n' '|')"
check survives "E5 xsr save --keep-running"
rm -f "$OUT/d/keep.save"

# E6: E4 again (a second time, after the guest has been through suspends)
term_while_suspended E6 term2.save "xsr save SIGTERM again"
exit $fail
