"""Unit tests of contrib/volatility3/xen_save_stream.py (standard library only, no Volatility).

Run: python3 -m unittest discover -s contrib/tests   (cargo xtask test runs it when python3 exists)
"""

import io
import lzma
import os
import random
import re
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "volatility3"))

import xen_save_stream as xss  # noqa: E402

NOTAB, L1TAB, L4TAB_PINNED, BROKEN, XALLOC, XTAB = 0x0, 0x1, 0xC, 0xD, 0xE, 0xF


def page(tag: int) -> bytes:
    return struct.pack("<Q", tag) * (4096 // 8)


def record(rtype: int, body: bytes, length=None) -> bytes:
    length = len(body) if length is None else length
    return struct.pack("<II", rtype, length) + body + bytes(-len(body) % 8)


def page_data(entries, length=None) -> bytes:
    """entries: (pfn, type, data or None)."""
    words = b"".join(struct.pack("<Q", (t << 60) | pfn) for pfn, t, _ in entries)
    bodies = b"".join(d for _, _, d in entries if d is not None)
    return record(0x01, struct.pack("<II", len(entries), 0) + words + bodies, length)


def libxc(records, version=3, dtype=1, page_shift=12, end=True) -> bytes:
    ihdr = b"\xff" * 8 + b"XENF" + struct.pack(">IHHI", version, 0, 0, 0)
    dhdr = struct.pack("<IHHII", dtype, page_shift, 0, 4, 17)
    return ihdr + dhdr + b"".join(records) + (record(0x00, b"") if end else b"")


def libxl(inner: bytes, tail=b"") -> bytes:
    return b"LibxlFmt" + struct.pack(">II", 2, 0) + record(1, b"") + inner + tail + record(0, b"")


def xl(inner: bytes, config=b'{"c_info": {}}\0', mandatory=3, byteorder=b"\x04\x03\x02\x01") -> bytes:
    opt = struct.pack("<I", len(config)) + config
    return xss.XL_MAGIC + byteorder + struct.pack("<III", mandatory, 0, len(opt)) + opt + libxl(inner)


def virsh(inner: bytes, xml=b"<domain type='xen'/>\0", version=2) -> bytes:
    return b"libvirt-xml\n \0 \r" + struct.pack("<II", version, len(xml)) + bytes(40) + xml + libxl(inner)


def parse(data: bytes) -> xss.SaveIndex:
    return xss.parse(lambda off, n: data[off : off + n], len(data))


def body_at(data: bytes, idx: xss.SaveIndex, pfn: int) -> bytes:
    off = idx.pages[pfn]
    return data[off : off + 4096]


class Framing(unittest.TestCase):
    def test_xl_file_maps_each_pfn_to_its_body(self):
        data = xl(libxc([page_data([(5, NOTAB, page(5)), (6, L1TAB, page(6)), (7, XTAB, None)]),
                         page_data([(0x100000, L4TAB_PINNED, page(0x100000))])]))
        idx = parse(data)
        self.assertEqual(idx.layers, ["xl", "libxl", "libxc v3"])
        self.assertEqual(idx.config_json, b'{"c_info": {}}')
        self.assertEqual((idx.domain_type_name, idx.xen_version, idx.ended_by), ("x86 PV", (4, 17), "END"))
        self.assertEqual(sorted(idx.pages), [5, 6, 0x100000])
        for pfn in idx.pages:
            self.assertEqual(body_at(data, idx, pfn), page(pfn))
        self.assertEqual([(p, n) for p, _, n in idx.runs()], [(5, 2), (0x100000, 1)])
        self.assertEqual(idx.type_counts, {"NOTAB": 1, "L1TAB": 1, "XTAB": 1, "L4TAB|PINNED": 1})

    def test_libxl_and_bare_libxc_streams(self):
        inner = libxc([page_data([(1, NOTAB, page(1))])], version=2, dtype=2)
        for data, layers in ((libxl(inner), ["libxl", "libxc v2"]), (inner, ["libxc v2"])):
            idx = parse(data)
            self.assertEqual(idx.layers, layers)
            self.assertEqual(idx.domain_type_name, "x86 HVM")
            self.assertEqual(body_at(data, idx, 1), page(1))

    def test_virsh_save_file(self):
        data = virsh(libxc([page_data([(7, NOTAB, page(7))])], dtype=2))
        idx = parse(data)
        self.assertEqual(idx.layers, ["virsh", "libxl", "libxc v3"])
        self.assertEqual(idx.domain_xml, b"<domain type='xen'/>")
        self.assertEqual(body_at(data, idx, 7), page(7))

    def test_read_physical_crosses_pages_and_reports_holes(self):
        data = xl(libxc([page_data([(1, NOTAB, page(0x11)), (2, NOTAB, page(0x22)), (4, NOTAB, page(0x44))])]))
        idx = parse(data)
        rd = lambda off, n: data[off : off + n]  # noqa: E731
        self.assertEqual(idx.read_physical(rd, 0x1FFC, 8), page(0x11)[-4:] + page(0x22)[:4])
        with self.assertRaises(xss.PhysicalHole) as cm:
            idx.read_physical(rd, 0x2FFF, 2)
        self.assertEqual(cm.exception.offset, 0x3000)
        self.assertEqual(idx.read_physical(rd, 0x2FFF, 0x1002, holes_as_zero=True),
                         page(0x22)[-1:] + bytes(4096) + page(0x44)[:1])

    def test_later_passes_win_and_verify_changes_nothing(self):
        data = libxc([page_data([(3, NOTAB, page(1))]), page_data([(3, NOTAB, page(2))]),
                      record(0x0D, b""), page_data([(3, NOTAB, page(3)), (9, NOTAB, page(9))])])
        idx = parse(data)
        self.assertTrue(idx.verify_seen)
        self.assertEqual(body_at(data, idx, 3), page(2))
        self.assertNotIn(9, idx.pages)

    def test_a_later_pass_splits_an_earlier_run(self):
        data = libxc([page_data([(p, NOTAB, page(p)) for p in range(1, 5)]), page_data([(2, NOTAB, page(0x22))]),
                      page_data([(9, NOTAB, page(9))])])
        idx = parse(data)
        self.assertEqual([body_at(data, idx, p) for p in (1, 2, 3, 4, 9)],
                         [page(1), page(0x22), page(3), page(4), page(9)])
        self.assertEqual([(p, n) for p, _, n in idx.runs()], [(1, 1), (2, 1), (3, 2), (9, 1)])
        self.assertEqual((idx.frames, idx.lookup(5), idx.lookup(0)), (5, None, None))
        self.assertEqual(list(xss.iter_pages(idx)), sorted(idx.pages.items()))

    def test_xalloc_reads_as_zero_unless_data_is_there(self):
        data = libxc([page_data([(1, NOTAB, page(1)), (2, XALLOC, None), (3, BROKEN, None), (4, XALLOC, None)]),
                      page_data([(1, XALLOC, None), (4, NOTAB, page(4))])])
        idx = parse(data)
        self.assertEqual(body_at(data, idx, 1), page(1))
        self.assertEqual(idx.pages[2], xss.ZERO_PAGE)
        self.assertEqual(idx.zero_pfns(), [2])
        self.assertEqual(body_at(data, idx, 4), page(4))  # data after XALLOC wins too
        self.assertNotIn(3, idx.pages)
        self.assertEqual(list(xss.iter_pages(idx)), sorted(idx.pages.items()))
        self.assertEqual(idx.read_physical(lambda o, n: data[o : o + n], 0x2000, 16), bytes(16))
        self.assertEqual([p for p, _, _ in idx.runs()], [1, 4])

    def test_checkpoints_apply_at_the_next_checkpoint(self):
        ckpt = record(0x0E, b"")
        recs = [page_data([(1, NOTAB, page(1))]), ckpt, page_data([(1, NOTAB, page(2))]),
                ckpt, page_data([(1, NOTAB, page(3)), (2, NOTAB, page(3))])]
        # Bare libxc, no END: the stream stops after the second checkpoint (failover).
        data = libxc(recs, end=False)
        idx = parse(data)
        self.assertEqual((idx.checkpoints, idx.ended_by), (2, "end of file after checkpoint 2"))
        self.assertEqual(body_at(data, idx, 1), page(2))
        self.assertNotIn(2, idx.pages)
        # A record cut short after a checkpoint is the same failover.
        self.assertEqual(sorted(parse(data[:-100]).pages), [1])
        # END discards what arrived since the last CHECKPOINT.
        data = libxc(recs)
        self.assertEqual(body_at(data, parse(data), 1), page(2))

    def test_libxl_checkpoint_records_are_skipped(self):
        ckpt_tail = record(2, struct.pack("<II", 2, 0) + b"physmap/1/size\x00" + b"10\x00") + record(4, b"")
        recs = [page_data([(1, NOTAB, page(1))]), record(0x0E, b"") + ckpt_tail,
                page_data([(1, NOTAB, page(2))]), record(0x0E, b"") + ckpt_tail]
        data = libxl(libxc(recs, dtype=2, end=False))[:-8]  # no libxl END either
        idx = parse(data)
        self.assertEqual(idx.checkpoints, 2)
        self.assertEqual(body_at(data, idx, 1), page(2))

    def test_pv_vcpu_context_rip(self):
        for width, size, rip_at in ((8, 5168, 648), (4, 2800, 548)):
            ctx = bytearray(size)
            ctx[rip_at : rip_at + width] = (0x1234_5678_9ABC_DEF0 >> (64 - 8 * width)).to_bytes(width, "little")
            data = libxc([record(0x02, bytes([width, 4 if width == 8 else 3]) + bytes(6)),
                          record(0x04, struct.pack("<II", 1, 0) + bytes(ctx)), page_data([(1, NOTAB, page(1))])])
            idx = parse(data)
            rd = lambda o, n: data[o : o + n]  # noqa: E731
            self.assertEqual(xss.pv_vcpu_rip(rd, idx, 1), 0x1234_5678_9ABC_DEF0 >> (64 - 8 * width))
            self.assertIsNone(xss.pv_vcpu_rip(rd, idx, 0))

    def test_optional_and_known_records_are_skipped(self):
        data = libxc([record(0x02, bytes(8)), record(0x8000_1234, b"opaque"), page_data([(1, NOTAB, page(1))])])
        self.assertEqual(sorted(parse(data).pages), [1])


class Rejections(unittest.TestCase):
    def assertRejected(self, data: bytes, pattern: str, offset=None):
        with self.assertRaises(xss.XenSaveError) as cm:
            parse(data)
        self.assertRegex(str(cm.exception), pattern)
        if offset is not None:
            self.assertEqual(cm.exception.offset, offset)

    def test_non_xen_input_is_rejected_after_48_bytes(self):
        reads = []

        def read(off, n):
            reads.append((off, n))
            return b"\x7fELF" + bytes(n - 4)

        with self.assertRaises(xss.NotXenSave):
            xss.parse(read, 1 << 30)
        self.assertEqual(reads, [(0, 48)])
        for data in (b"", b"Xen", b"\xff" * 8 + b"XENX", b"LibxlFm"):
            with self.assertRaises(xss.NotXenSave):
                parse(data)

    def test_every_truncation_of_a_plain_stream_is_an_error(self):
        inner = libxc([page_data([(1, NOTAB, page(1)), (2, XTAB, None)]), record(0x08, bytes(24))])
        # Memory is complete at the libxc END, so only a cut before it (not in the 8-byte libxl
        # END after it, which the reader does not need) is an error.
        for data in (xl(inner), virsh(inner)):
            for n in range(len(data) - 8):
                with self.subTest(n=n), self.assertRaises(xss.XenSaveError):
                    parse(data[:n])

    def test_byte_flips_parse_or_raise_xen_save_error(self):
        base = xl(libxc([page_data([(1, NOTAB, b"\x00" * 4096), (2, XALLOC, None)]), record(0x0E, b""),
                         page_data([(3, NOTAB, b"\x01" * 4096)])]))
        header_end = len(base) - 2 * 4096  # flip only framing bytes, not page bodies
        rng = random.Random(8)
        for _ in range(3000):
            data = bytearray(base)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(header_end)] ^= 1 << rng.randrange(8)
            try:
                idx = parse(bytes(data))
            except xss.XenSaveError:
                continue
            for pfn, off in idx.pages.items():
                self.assertTrue(off == xss.ZERO_PAGE or 0 <= off <= len(data) - 4096, (pfn, off))

    def test_header_checks(self):
        inner = libxc([page_data([(1, NOTAB, page(1))])])
        self.assertRejected(xl(inner, byteorder=b"\x01\x02\x03\x04"), "byteorder", 32)
        self.assertRejected(xl(inner, mandatory=1), "legacy", 36)
        self.assertRejected(xl(inner, mandatory=7), "mandatory flags", 36)
        self.assertRejected(libxc([], version=4), "version 4")
        self.assertRejected(libxc([], page_shift=44), "page_shift 44", 28)
        bad_libxl = b"LibxlFmt" + struct.pack(">II", 3, 0) + record(1, b"") + inner
        self.assertRejected(bad_libxl, "libxl stream version 3", 8)
        self.assertRejected(b"LibxlFmt" + struct.pack(">II", 2, 0) + record(0, b""), "no guest memory")
        self.assertRejected(virsh(inner, version=1), "legacy", 16)
        self.assertRejected(virsh(inner, version=3), "version 3", 16)
        self.assertRejected(virsh(inner, xml=b""), "XML length 0", 20)
        self.assertRejected(virsh(inner)[:100], "truncated")

    def test_record_checks(self):
        at = 40  # first libxc record header
        self.assertRejected(libxc([struct.pack("<II", 1, (128 << 20) + 1)]), "128 MiB", at + 4)
        self.assertRejected(libxc([record(0x13, b"")]), "unknown mandatory", at)
        self.assertRejected(libxc([record(0x01, b"\0" * 4)]), "shorter than its 8-byte header", at + 8)
        self.assertRejected(libxc([page_data([])]), "count is 0", at + 8)
        self.assertRejected(libxc([record(0x01, struct.pack("<II", 2, 0) + bytes(8))]), "cannot hold 2")
        self.assertRejected(libxc([page_data([(1, 0x5, None)])]), "unknown page type 0x5", at + 16)
        self.assertRejected(libxc([page_data([(1, 0x8, None)])]), "unknown page type 0x8")
        # Data page announced, body missing: length does not add up.
        self.assertRejected(libxc([page_data([(1, NOTAB, None)])]), r"!= 8 \+ 8 \* 1 \+ 4096 \* 1", at + 4)
        # A body for an XTAB entry is one page too many.
        self.assertRejected(libxc([page_data([(1, XTAB, page(1))])]), r"4096 \* 0")
        # The length field claims more than the file holds.
        self.assertRejected(libxc([page_data([(1, NOTAB, page(1))], length=8 + 8 + 8192)], end=False), "truncated")


def find_real_image():
    d = HERE
    while True:
        p = os.path.join(d, "tests", "data", "xen-4.17", "tiny32-1vcpu.save.xz")
        if os.path.isfile(p):
            return p
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


class RealImage(unittest.TestCase):
    def test_real_xl_save_file(self):
        path = os.environ.get("XSR_REAL_SAVE_XZ") or find_real_image()
        if not path:
            self.fail("real test image tests/data/xen-4.17/tiny32-1vcpu.save.xz not found above " + HERE)
        with lzma.open(path) as f, tempfile.TemporaryFile() as tmp:
            while chunk := f.read(1 << 20):
                tmp.write(chunk)
            size = tmp.tell()
            self.assertEqual(size, 33_632_267)

            def read(off, n):
                tmp.seek(off)
                return tmp.read(n)

            idx = xss.parse(read, size)
            self.assertEqual(idx.layers, ["xl", "libxl", "libxc v3"])
            self.assertEqual((idx.domain_type_name, idx.xen_version, idx.ended_by), ("x86 PV", (4, 17), "END"))
            self.assertEqual(sorted(idx.pages), list(range(8192)))
            self.assertEqual(idx.type_counts, {"NOTAB": 8073, "L1TAB": 15, "L1TAB|PINNED": 15, "L2TAB": 10,
                                               "L3TAB": 72, "L4TAB|PINNED": 7})
            self.assertEqual(idx.end_offset + 8, size)  # libxl END follows the libxc END
            self.assertEqual(idx.pv_guest_width, 8)
            self.assertEqual(list(idx.pv_vcpu_basic), [0])
            rip = xss.pv_vcpu_rip(read, idx, 0)
            self.assertEqual(rip >> 32, 0xFFFFFFFF)  # a kernel-text address of the 64-bit guest
            # The guest wrote 1024 tagged pages into a tmpfs file: every tag is in guest memory.
            tags = set()
            for pfn in range(8192):
                m = re.match(rb"REALXEN-PAGE-(\d{6})-", idx.read_physical(read, pfn * 4096, 20))
                if m:
                    tags.add(int(m.group(1)))
            self.assertEqual(tags, set(range(1024)))


if __name__ == "__main__":
    unittest.main()
