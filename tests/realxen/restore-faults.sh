# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14): restores through xsr that must fail, each with an error and no domain
# left (Xen's own helper disabled): a truncated stream; a page table whose entry names a pfn
# beyond the p2m (a rule of the stream: refused by xsr before Xen sees it); an L4 table that maps
# itself writable (within the rules, refused by Xen when it validates the tables: the error names
# the table's pfn, mfn and type); the helper killed with SIGKILL in the middle of the stream, under
# `xl restore` and under `xsr restore --domain`. Then the good file still restores and runs.
. ./common.sh
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

# kill_helper_when PID_OF_PARENT: SIGKILL the xsr helper once it has read 8 MiB of the stream
kill_helper() {
    _i=0; _h=
    while [ $_i -lt 1000 ]; do
        _h=$(pgrep -f -- '--restore-domain' | head -n 1)
        if [ -n "$_h" ] && [ "$(awk '/^rchar/ { print $2 }' /proc/$_h/io 2>/dev/null || echo 0)" -gt 8388608 ]; then break; fi
        sleep 0.01; _i=$((_i+1))
    done
    log "killing helper $_h ($(tr '\0' ' ' < /proc/$_h/cmdline 2>/dev/null)), $(awk '/^rchar/ { print $2 }' /proc/$_h/io 2>/dev/null) bytes read"
    kill -9 "$_h"
}
xsr_xl xl restore -e "$OUT/g.save" < /dev/null > "$OUT/kill-xl.txt" 2>&1 &
xlpid=$!
kill_helper
wait_for $xlpid 120; rc=$?
cat "$OUT/kill-xl.txt"
log "xl restore with its xsr helper killed: exit $rc"
check [ $rc -ne 0 ]
check no_domain "$GUEST"

./xsr restore --domain "$OUT/g.save" > "$OUT/kill-rd.txt" 2> "$OUT/kill-rd.err" &
rdpid=$!
kill_helper
wait_for $rdpid 120; rc=$?
cat "$OUT/kill-rd.err"
log "xsr restore --domain with its helper killed: exit $rc"
check [ $rc -eq 2 ]
check no_domain "$GUEST"

fresh_console "$GUEST"
./xsr restore --domain "$OUT/g.save" > "$OUT/good.txt" 2>&1; rc=$?
cat "$OUT/good.txt"
check [ $rc -eq 0 ]
check runs_on
xl list
rm -f "$OUT/g.save"
exit $fail
