#!/usr/bin/env python3
"""Variants of the real PVH file (tests/data/xen-4.17/tiny32-pvh.save.xz) with one field broken
(or one accepted older form), to check xsr's hypervisor load rules (sr_rules::check_record)
against a real Xen 4.17: each variant's `xsr verify` verdict must be what `xl restore` does.

    xz -dk tests/data/xen-4.17/tiny32-pvh.save.xz
    XSR=target/release/xsr python3 tests/realxen/rule-variants.py tiny32-pvh.save OUTDIR
    for f in OUTDIR/*.save; do xz -1 -k "$f"; done
    flock /tmp/realxen.lock ../shared/realxen/realxen.sh restore-check OUTDIR/*.save.xz

Expected on Xen 4.17.7 (run of 2026-12-06, docs/commands.md "verify"): good, lapic-16-bytes
and end-then-8-bytes restore and run; the six others fail in the hypercall the rule names.
"""
import struct, json, subprocess, sys, lzma
import os
src = sys.argv[1]
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
xsr = os.environ.get('XSR', 'xsr')
d = open(src,'rb').read()
j = json.loads(subprocess.run([xsr, 'inspect', '--json', src],capture_output=True).stdout)
off = {it['kind']: it['offset'] for it in j['items'] if it['layer']=='libxc' and it['index'] is not None}
def body(kind):
    o = off[kind]; t,l = struct.unpack_from('<II', d, o); return o, l, bytearray(d[o+8:o+8+l])
def splice(data, kind, newbody):
    o = off[kind]; t,l = struct.unpack_from('<II', data, o)
    pad = lambda n: (n + 7) // 8 * 8
    rec = struct.pack('<II', t, len(newbody)) + bytes(newbody) + b'\0' * (pad(len(newbody)) - len(newbody))
    return data[:o] + rec + data[o + 8 + pad(l):]
variants = {}
variants['good'] = d
o,l,b = body('HVM_CONTEXT')
c = bytearray(b); cr0 = struct.unpack_from('<Q', c, 0x28+656)[0]; struct.pack_into('<Q', c, 0x28+656, cr0 & ~0x10)
variants['cr0-et-clear'] = splice(d, 'HVM_CONTEXT', c)
c = bytearray(b); struct.pack_into('<I', c, 0x28+1024, 3)
variants['cpu-flags-3'] = splice(d, 'HVM_CONTEXT', c)
# LAPIC at 0x430: descriptor (type 5, inst 0, len 24), payload 24 bytes
assert struct.unpack_from('<HHI', b, 0x430) == (5, 0, 24)
c = bytearray(b[:0x430]) + struct.pack('<HHI', 5, 0, 16) + b[0x438:0x438+16] + b[0x450:]
variants['lapic-16-bytes'] = splice(d, 'HVM_CONTEXT', c)
c = bytearray(b[:0x430]) + struct.pack('<HHI', 5, 0, 25) + b[0x438:0x450] + b'\0' + b[0x450:]
variants['lapic-25-bytes'] = splice(d, 'HVM_CONTEXT', c)
assert struct.unpack_from('<HHI', b, len(b)-8) == (0, 0, 0)
c = bytearray(b) + b'TRAILING'
variants['end-then-8-bytes'] = splice(d, 'HVM_CONTEXT', c)
o,l,t = body('X86_TSC_INFO'); struct.pack_into('<I', t, 0, 3)
variants['tsc-mode-3'] = splice(d, 'X86_TSC_INFO', t)
o,l,m = body('X86_MSR_POLICY'); struct.pack_into('<I', m, 4, 1)
variants['msr-policy-flags-1'] = splice(d, 'X86_MSR_POLICY', m)
o,l,p = body('HVM_PARAMS'); n = struct.unpack_from('<I', p, 0)[0]; struct.pack_into('<I', p, 0, n + 1); p += struct.pack('<QQ', 10, 7)
variants['param-timer-mode-7'] = splice(d, 'HVM_PARAMS', p)
for name, data in variants.items():
    fn = os.path.join(out, f'pvh-{name}.save')
    open(fn, 'wb').write(data)
    r = subprocess.run([xsr, 'verify', fn], capture_output=True, text=True)
    print(f'{name:22} xsr verify exit {r.returncode}: {(r.stdout+r.stderr).splitlines()[0][:200]}')
