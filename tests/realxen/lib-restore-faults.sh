# faults_job: the body of the restore-faults job (sourced by it and by restore-pv-all; needs
# common.sh and the running standard 32 MiB PV guest): restores through xsr that must fail, each
# with an error and no domain left (Xen's own helper disabled), then the good file restores and
# runs (the guest is left running, Xen's helper back).
faults_job() {
    ./xsr --version
    cat > /tmp/corrupt.py <<'PY'
# corrupt.py IN OUT MODE: a copy of an xl save file of a 64-bit PV guest with one page table
# changed. MODE beyond: entry 0 of the first L1 table names pfn 0x7ffff (beyond max_pfn);
# self-rw: the first non-present guest entry of the first pinned L4 table maps that table itself,
# writable (Xen refuses writable linear page tables).
import struct, sys
src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
data = bytearray(open(src, 'rb').read())
off = data.find(b'\xff' * 8 + b'XENF') + 24 + 16
while True:
    t, l = struct.unpack_from('<II', data, off)
    body = off + 8
    if t == 0:
        sys.exit('no page table found')
    if t == 1:
        n, = struct.unpack_from('<I', data, body)
        d = body + 8 + 8 * n
        for i in range(n):
            w, = struct.unpack_from('<Q', data, body + 8 + 8 * i)
            pfn, ty = w & ((1 << 52) - 1), w >> 60
            if ty in (0, 1, 2, 3, 4, 9, 10, 11, 12):
                if mode == 'beyond' and ty in (1, 9):
                    struct.pack_into('<Q', data, d, (0x7ffff << 12) | 0x67)
                    print('L1 table at pfn %#x: entry 0 -> pfn 0x7ffff at file byte %d' % (pfn, d))
                    open(dst, 'wb').write(data); sys.exit(0)
                if mode == 'self-rw' and ty == 12:
                    for e in range(1, 256):
                        v, = struct.unpack_from('<Q', data, d + 8 * e)
                        if not v & 1:
                            struct.pack_into('<Q', data, d + 8 * e, (pfn << 12) | 0x67)
                            print('L4 table at pfn %#x: entry %d -> itself, writable, at file byte %d' % (pfn, e, d + 8 * e))
                            open(dst, 'wb').write(data); sys.exit(0)
                d += 4096
    off += 8 + ((l + 7) // 8) * 8
PY

    xl save "$GUEST" "$OUT/g.save" < /dev/null || fail=1
    check gone
    disable_xen_helper
    size=$(stat -c %s "$OUT/g.save")

    # xsr_fails NAME FILE WANT...: `xl restore` through xsr of FILE fails, its output has every WANT
    # (grep -E), no domain is left; then `xsr restore --domain` of FILE exits $XSR_EXIT, its stderr has
    # every WANT, no domain is left.
    xsr_fails() {
        _n=$1 _f=$2; shift 2
        xsr_xl xl restore -e "$_f" < /dev/null > "$OUT/$_n-xl.txt" 2>&1; _rc=$?
        log "$_n: xl restore through xsr: exit $_rc: $(grep -i 'xsr' "$OUT/$_n-xl.txt" | head -n 3 | tr '\n' ' ')"
        check [ $_rc -ne 0 ]
        for _w in "$@"; do check grep -qE "$_w" "$OUT/$_n-xl.txt"; done
        check no_domain "$GUEST"
        ./xsr restore --domain "$_f" > "$OUT/$_n-rd.txt" 2> "$OUT/$_n-rd.err"; _rc=$?
        log "$_n: xsr restore --domain: exit $_rc: $(tail -n 2 "$OUT/$_n-rd.err" | tr '\n' ' ')"
        check [ $_rc -eq "$XSR_EXIT" ]
        for _w in "$@"; do check grep -qE "$_w" "$OUT/$_n-rd.err"; done
        check no_domain "$GUEST"
    }

    head -c $((size * 2 / 3)) "$OUT/g.save" > "$OUT/trunc.save"
    XSR_EXIT=1 xsr_fails truncated "$OUT/trunc.save" 'at byte [0-9]+' 'truncated|end'
    rm -f "$OUT/trunc.save"

    python3 /tmp/corrupt.py "$OUT/g.save" "$OUT/beyond.save" beyond
    XSR_EXIT=1 xsr_fails pte-beyond-max-pfn "$OUT/beyond.save" 'PAGE_DATA\) at byte [0-9]+' 'pfn 0x7ffff, beyond max_pfn'
    rm -f "$OUT/beyond.save"

    python3 /tmp/corrupt.py "$OUT/g.save" "$OUT/self.save" self-rw
    XSR_EXIT=2 xsr_fails l4-maps-itself "$OUT/self.save" 'L4 table at pfn 0x[0-9a-f]+ \(mfn 0x[0-9a-f]+|cr3 mfn 0x[0-9a-f]+' 'Invalid argument|Operation not permitted'
    rm -f "$OUT/self.save"

    # killer.py READY_FILE: waits (polling /proc every 2 ms, one process for the whole wait, as
    # forking a pgrep per poll is too slow under TCG) for a process whose command line has
    # --restore-domain (the helper libxl runs) and which has read 8 MiB, SIGKILLs it and prints what
    # it killed; exit 1 after 120 s without one.
    cat > /tmp/killer.py <<'PY'
import os, signal, sys, time
open(sys.argv[1], 'w').close()
end = time.time() + 120
while time.time() < end:
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            if b'--restore-domain' not in open('/proc/%s/cmdline' % p, 'rb').read():
                continue
            rchar = int(open('/proc/%s/io' % p).read().split('rchar: ')[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        if rchar > 8 << 20:
            os.kill(int(p), signal.SIGKILL)
            print('killed helper %s after it read %d bytes' % (p, rchar))
            sys.exit(0)
    time.sleep(0.002)
sys.exit(1)
PY
    # killed NAME CMD...: runs CMD in the background with the killer watching; sets RC to CMD's exit
    # status and checks that the killer found the helper
    killed() {
        _n=$1; shift
        rm -f /tmp/killer.ready
        python3 /tmp/killer.py /tmp/killer.ready > "$OUT/$_n-killer.txt" 2>&1 &
        _k=$!
        _i=0; while [ ! -e /tmp/killer.ready ] && [ $_i -lt 300 ]; do sleep 0.1; _i=$((_i+1)); done
        "$@" < /dev/null > "$OUT/$_n.txt" 2>&1 &
        _c=$!
        wait_for $_k 150; _krc=$?
        wait_for $_c 150; RC=$?
        cat "$OUT/$_n-killer.txt" "$OUT/$_n.txt"
        check [ $_krc -eq 0 ]
    }
    killed kill-xl xsr_xl xl restore -e "$OUT/g.save"
    log "xl restore with its xsr helper killed: exit $RC"
    check [ $RC -ne 0 ]
    check no_domain "$GUEST"

    killed kill-rd ./xsr restore --domain "$OUT/g.save"
    log "xsr restore --domain with its helper killed: exit $RC"
    check [ $RC -eq 2 ]
    check no_domain "$GUEST"

    fresh_console "$GUEST"
    ./xsr restore --domain "$OUT/g.save" > "$OUT/good.txt" 2>&1; rc=$?
    cat "$OUT/good.txt"
    check [ $rc -eq 0 ]
    check runs_on
    xl list
    rm -f "$OUT/g.save"
    enable_xen_helper
}
