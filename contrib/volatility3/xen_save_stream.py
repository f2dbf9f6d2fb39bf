"""Index of guest memory in a Xen save image: `xl save` file, `virsh save` file of a libxl domain,
libxl v2 stream or libxc v2/v3 stream.

One pass over the framing (``xl`` or libvirt header -> libxl records -> libxc records -> PAGE_DATA
pfn arrays)
that seeks past page bodies and builds ``pfn -> file offset`` of the page body a restore would leave
in that frame. Standard library only: the Volatility 3 layer next to this file
(``xen_save_layer.py``) uses it, and so can any other tool (``python3 xen_save_stream.py FILE``).

Semantics are those of Xen's restore (``tools/libs/guest/xg_sr_restore.c``), summarised in
xsr's ``xen-stream.md`` reference:

* later PAGE_DATA for a pfn overwrites earlier data (live-migration passes);
* after a VERIFY record pages are only compared, so they change nothing;
* XALLOC populates a frame without data: it reads as a zero page unless the frame already has data;
* XTAB and BROKEN entries carry no data and populate nothing;
* checkpointed (Remus/COLO) streams: records after the first CHECKPOINT take effect at the next
  CHECKPOINT; END discards records since the last one; a stream that stops after a CHECKPOINT
  without END keeps the last complete checkpoint (the failover case);
* a plain stream without END is truncated and rejected.

Every length, count and offset is checked against the file size before use; anything that does
not start with one of the three magics is rejected after reading at most 48 bytes (so a
Volatility stacker that tries this reader on every input costs almost nothing).

Layout references: libvirt ``src/libxl/libxl_conf.h`` (``libxlSavefileHeader``, the `virsh save`
header); Xen sources ``tools/xl/xl.h`` (xl header),
``tools/libs/light/libxl_sr_stream_format.h`` (libxl records),
``tools/libs/guest/xg_sr_stream_format.h`` (libxc records), ``xen/include/public/domctl.h``
(page types).
"""

import bisect
import struct
import sys
from array import array
from typing import Callable, Dict, Iterator, List, Optional, Tuple

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

XL_MAGIC = b"Xen saved domain, xl format\n \0 \r"
XL_HEADER_SIZE = 48
XL_BYTEORDER_LE = b"\x04\x03\x02\x01"
XL_MANDATORY_JSON = 1 << 0
XL_MANDATORY_STREAMV2 = 1 << 1

VIRSH_MAGIC = b"libvirt-xml\n \0 \r"
VIRSH_HEADER_SIZE = 64
VIRSH_VERSION_LIBXL_V2 = 2
VIRSH_XML_MAX = 16 << 20

LIBXL_IDENT = b"LibxlFmt"
LIBXL_HEADER_SIZE = 16
LIBXL_END = 0
LIBXL_LIBXC_CONTEXT = 1
LIBXL_CHECKPOINT_END = 4

LIBXC_MARKER = b"\xff" * 8
LIBXC_ID = b"XENF"
LIBXC_IHDR_SIZE = 24
LIBXC_DHDR_SIZE = 16
REC_HEADER_SIZE = 8
REC_LENGTH_MAX = 128 << 20

REC_END = 0x00
REC_PAGE_DATA = 0x01
REC_X86_PV_INFO = 0x02
REC_X86_PV_VCPU_BASIC = 0x04
REC_VERIFY = 0x0D
REC_CHECKPOINT = 0x0E
REC_LAST_KNOWN = 0x12
REC_OPTIONAL = 1 << 31

PFN_MASK = (1 << 52) - 1
TYPE_SHIFT = 60
TYPE_BROKEN = 0xD
TYPE_XALLOC = 0xE
TYPE_XTAB = 0xF
TYPE_NAMES = {
    0x0: "NOTAB",
    0x1: "L1TAB",
    0x2: "L2TAB",
    0x3: "L3TAB",
    0x4: "L4TAB",
    0x9: "L1TAB|PINNED",
    0xA: "L2TAB|PINNED",
    0xB: "L3TAB|PINNED",
    0xC: "L4TAB|PINNED",
    0xD: "BROKEN",
    0xE: "XALLOC",
    0xF: "XTAB",
}
DOMAIN_TYPES = {1: "x86 PV", 2: "x86 HVM", 3: "ARM"}

ZERO_PAGE = -1
"""File offset recorded for an XALLOC frame: populated, no data, reads as zeros."""

ReadFn = Callable[[int, int], bytes]


class XenSaveError(Exception):
    """The input is not a readable Xen save image; ``offset`` is the byte offset of the problem."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"at byte offset {offset:#x}: {message}")
        self.offset = offset
        self.message = message


class NotXenSave(XenSaveError):
    """The first bytes match none of the xl, libxl or libxc magics."""


class PhysicalHole(XenSaveError):
    """A guest-physical read touched a frame the image does not populate (``offset`` is the address)."""


def sniff(head: bytes) -> Optional[str]:
    """Which layer the bytes at offset 0 start: ``"xl"``, ``"virsh"``, ``"libxl"``, ``"libxc"`` or None."""
    if head.startswith(XL_MAGIC):
        return "xl"
    if head.startswith(VIRSH_MAGIC):
        return "virsh"
    if head.startswith(LIBXL_IDENT):
        return "libxl"
    if head.startswith(LIBXC_MARKER) and head[8:12] == LIBXC_ID:
        return "libxc"
    return None


class SaveIndex:
    """Where each guest frame's contents live in a save image.

    Physical address = pfn * 4096 (for PV guests the pfn is the guest's pseudo-physical frame,
    which is what its kernel calls physical memory). The index keeps runs, not pages: each
    PAGE_DATA record adds its runs of consecutive pfns with consecutive bodies (an ``xl save``
    record of 1024 pages is usually one run), so memory grows with records, not guest size.
    Only a stream that sends a pfn twice (live migration) makes ``runs()`` resolve per page.
    """

    def __init__(self) -> None:
        self.layers: List[str] = []
        self.config_json: Optional[bytes] = None
        self.domain_xml: Optional[bytes] = None
        self.stream_version = 0
        self.domain_type = 0
        self.xen_version = (0, 0)
        self._log: List[Tuple[int, int, int]] = []  # data runs (pfn, offset, n) in stream order
        self._xalloc: set = set()
        self._runs: Optional[List[Tuple[int, int, int]]] = None
        self._run_starts: List[int] = []
        self.type_counts: Dict[str, int] = {}
        self.page_data_records = 0
        self.checkpoints = 0
        self.verify_seen = False
        self.ended_by = ""
        self.end_offset = 0
        self.pv_guest_width = 0
        self.pv_vcpu_basic: Dict[int, Tuple[int, int]] = {}
        """x86 PV: vcpu_id -> (file offset, length) of its ``vcpu_guest_context`` (latest record)."""

    @property
    def domain_type_name(self) -> str:
        return DOMAIN_TYPES.get(self.domain_type, f"unknown ({self.domain_type:#x})")

    def _add_data(self, pfn: int, offset: int) -> None:
        log = self._log
        if log:
            first, start, n = log[-1]
            if first + n == pfn and start + n * PAGE_SIZE == offset:
                log[-1] = (first, start, n + 1)
                return
        log.append((pfn, offset, 1))

    def runs(self) -> List[Tuple[int, int, int]]:
        """Maximal runs ``(first_pfn, file_offset, page_count)`` of frames with data whose pfns and
        file offsets are both consecutive, sorted by pfn. XALLOC frames are not included."""
        if self._runs is None:
            ordered = sorted(self._log)
            if any(a[0] + a[2] > b[0] for a, b in zip(ordered, ordered[1:])):
                # Some pfn was sent more than once: the last body wins, page by page.
                latest: Dict[int, int] = {}
                for first, start, n in self._log:
                    for i in range(n):
                        latest[first + i] = start + i * PAGE_SIZE
                ordered = [(pfn, latest[pfn], 1) for pfn in sorted(latest)]
            merged: List[Tuple[int, int, int]] = []
            for first, start, n in ordered:
                if merged:
                    mf, ms, mn = merged[-1]
                    if mf + mn == first and ms + mn * PAGE_SIZE == start:
                        merged[-1] = (mf, ms, mn + n)
                        continue
                merged.append((first, start, n))
            self._runs = merged
            self._run_starts = [r[0] for r in merged]
        return self._runs

    def lookup(self, pfn: int) -> Optional[int]:
        """File offset of ``pfn``'s body, ``ZERO_PAGE`` for an XALLOC frame, None if absent."""
        runs = self.runs()
        i = bisect.bisect_right(self._run_starts, pfn) - 1
        if i >= 0 and pfn < runs[i][0] + runs[i][2]:
            return runs[i][1] + (pfn - runs[i][0]) * PAGE_SIZE
        return ZERO_PAGE if pfn in self._xalloc else None

    def zero_pfns(self) -> List[int]:
        """Frames populated by XALLOC without data (data for a frame, before or after, wins), sorted."""
        return sorted(p for p in self._xalloc if self.lookup(p) == ZERO_PAGE)

    @property
    def frames(self) -> int:
        """Populated frames: with data, or XALLOC."""
        return sum(n for _, _, n in self.runs()) + len(self.zero_pfns())

    @property
    def pages(self) -> Dict[int, int]:
        """Every populated frame as ``{pfn: file offset or ZERO_PAGE}`` (about 100 bytes of
        Python objects per frame: for tests and small guests; ``runs()`` scales)."""
        out = {pfn: ZERO_PAGE for pfn in self.zero_pfns()}
        for first, start, n in self.runs():
            for i in range(n):
                out[first + i] = start + i * PAGE_SIZE
        return out

    def read_physical(self, read: ReadFn, address: int, length: int, holes_as_zero: bool = False) -> bytes:
        """``length`` bytes of guest-physical memory at ``address``; a frame with no data is an
        error naming its address (``PhysicalHole``) or zeros when ``holes_as_zero``."""
        if address < 0 or length < 0:
            raise ValueError("negative address or length")
        out = bytearray()
        while length > 0:
            pfn, within = divmod(address, PAGE_SIZE)
            n = min(length, PAGE_SIZE - within)
            off = self.lookup(pfn)
            if off is None and not holes_as_zero:
                raise PhysicalHole(address, f"guest-physical address {address:#x} (pfn {pfn:#x}) is not in the image")
            if off is None or off == ZERO_PAGE:
                out += bytes(n)
            else:
                chunk = read(off + within, n)
                if len(chunk) != n:
                    raise XenSaveError(off + within, "short read of a page body")
                out += chunk
            address += n
            length -= n
        return bytes(out)


class _Reader:
    """Bounds-checked reads of a file of known size through ``read(offset, length)``."""

    def __init__(self, read: ReadFn, size: int) -> None:
        self.read_fn = read
        self.size = size

    def need(self, offset: int, length: int, what: str) -> None:
        if length < 0 or offset + length > self.size:
            raise XenSaveError(
                offset, f"truncated: {what} needs {length} bytes, the file has {max(self.size - offset, 0)} left"
            )

    def read(self, offset: int, length: int, what: str) -> bytes:
        self.need(offset, length, what)
        data = self.read_fn(offset, length)
        if len(data) != length:
            raise XenSaveError(offset, f"short read of {what}: {len(data)} of {length} bytes")
        return data


class _Truncated(Exception):
    """EOF at a record boundary of a libxc stream; the caller decides whether that is an error."""

    def __init__(self, offset: int) -> None:
        self.offset = offset


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def parse(read: ReadFn, size: int) -> SaveIndex:
    """Index the save image of ``size`` bytes that ``read(offset, length)`` returns.

    Raises ``NotXenSave`` when the first bytes match no known magic (after reading at most 48
    bytes), ``XenSaveError`` with the byte offset for any malformed or truncated structure.
    """
    r = _Reader(read, size)
    head = read(0, min(XL_HEADER_SIZE, size))
    kind = sniff(head)
    if kind is None:
        raise NotXenSave(0, "not a Xen save image (no xl, virsh, libxl or libxc magic)")
    idx = SaveIndex()
    pos = 0
    if kind == "xl":
        pos = _parse_xl(r, idx)
        kind = "libxl"
    elif kind == "virsh":
        pos = _parse_virsh(r, idx)
        kind = "libxl"
    if kind == "libxl":
        _parse_libxl(r, idx, pos)
    else:
        _parse_libxc(r, idx, 0, in_libxl=False)
    return idx


def open_path(path: str) -> SaveIndex:
    """``parse`` of a file by path."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        return parse(_file_reader(f), size)


def _file_reader(f) -> ReadFn:
    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)

    return read


def _parse_xl(r: _Reader, idx: SaveIndex) -> int:
    hdr = r.read(0, XL_HEADER_SIZE, "xl header")
    if hdr[32:36] != XL_BYTEORDER_LE:
        raise XenSaveError(32, f"xl byteorder {hdr[32:36].hex()} is not little-endian 04030201")
    mandatory, _optional, optional_len = struct.unpack_from("<III", hdr, 36)
    if mandatory & ~(XL_MANDATORY_JSON | XL_MANDATORY_STREAMV2):
        raise XenSaveError(36, f"unknown xl mandatory flags {mandatory:#x}")
    if not mandatory & XL_MANDATORY_STREAMV2:
        raise XenSaveError(36, "legacy (pre-Xen 4.6) xl image without STREAMv2; convert it first")
    r.need(XL_HEADER_SIZE, optional_len, "xl optional data")
    if optional_len >= 4:
        (config_len,) = struct.unpack("<I", r.read(XL_HEADER_SIZE, 4, "xl config length"))
        if config_len <= optional_len - 4:
            idx.config_json = r.read(XL_HEADER_SIZE + 4, config_len, "xl config").rstrip(b"\0")
    idx.layers.append("xl")
    return XL_HEADER_SIZE + optional_len


def _parse_virsh(r: _Reader, idx: SaveIndex) -> int:
    """libvirt's libxl save header: 16-byte magic, u32 version, u32 xmlLen (with its NUL), 40
    unused bytes, then the domain XML and, for version 2, a libxl v2 stream."""
    hdr = r.read(0, VIRSH_HEADER_SIZE, "virsh save header")
    version, xml_len = struct.unpack_from("<II", hdr, 16)
    if version == 1:
        raise XenSaveError(16, "virsh save file of a legacy (pre-libxl-v2) stream")
    if version != VIRSH_VERSION_LIBXL_V2:
        raise XenSaveError(16, f"virsh save header version {version} (2 is the libxl v2 stream)")
    if not 0 < xml_len <= VIRSH_XML_MAX:
        raise XenSaveError(20, f"virsh save XML length {xml_len} (expected 1..={VIRSH_XML_MAX})")
    idx.config_json = None
    idx.domain_xml = r.read(VIRSH_HEADER_SIZE, xml_len, "virsh domain XML").split(b"\0", 1)[0]
    idx.layers.append("virsh")
    return VIRSH_HEADER_SIZE + xml_len


def _parse_libxl(r: _Reader, idx: SaveIndex, pos: int) -> None:
    ident, version, options = struct.unpack(">8sII", r.read(pos, LIBXL_HEADER_SIZE, "libxl header"))
    if ident != LIBXL_IDENT:
        raise XenSaveError(pos, f"libxl ident {ident!r} is not 'LibxlFmt'")
    if version != 2:
        raise XenSaveError(pos + 8, f"libxl stream version {version} (only 2 exists)")
    if options & 1:
        raise XenSaveError(pos + 12, "big-endian libxl stream")
    idx.layers.append("libxl")
    pos += LIBXL_HEADER_SIZE
    while True:
        rtype, length = struct.unpack("<II", r.read(pos, REC_HEADER_SIZE, "libxl record header"))
        body = pos + REC_HEADER_SIZE
        if rtype == LIBXL_LIBXC_CONTEXT:
            # A non-empty body is read and ignored by libxl; the libxc stream follows it.
            r.need(body, _pad8(length), "LIBXC_CONTEXT body")
            _parse_libxc(r, idx, body + _pad8(length), in_libxl=True)
            return
        if rtype == LIBXL_END:
            raise XenSaveError(pos, "libxl END before any LIBXC_CONTEXT: no guest memory in this stream")
        r.need(body, _pad8(length), f"libxl record type {rtype:#x} body")
        pos = body + _pad8(length)


def _parse_libxc(r: _Reader, idx: SaveIndex, pos: int, in_libxl: bool) -> None:
    marker, ident, version, options = struct.unpack(">8s4sIH", r.read(pos, 18, "libxc image header"))
    r.need(pos, LIBXC_IHDR_SIZE + LIBXC_DHDR_SIZE, "libxc image and domain headers")
    if marker != LIBXC_MARKER or ident != LIBXC_ID:
        raise XenSaveError(pos, "no libxc image header (marker and 'XENF')")
    if version not in (2, 3):
        raise XenSaveError(pos + 12, f"libxc stream version {version} (2 and 3 exist)")
    if options & 1:
        raise XenSaveError(pos + 16, "big-endian libxc stream")
    dpos = pos + LIBXC_IHDR_SIZE
    dtype, page_shift, _res, major, minor = struct.unpack(
        "<IHHII", r.read(dpos, LIBXC_DHDR_SIZE, "libxc domain header")
    )
    if page_shift != PAGE_SHIFT:
        raise XenSaveError(dpos + 4, f"page_shift {page_shift} (only 12 is used)")
    idx.layers.append(f"libxc v{version}")
    idx.stream_version, idx.domain_type, idx.xen_version = version, dtype, (major, minor)

    pos = dpos + LIBXC_DHDR_SIZE
    buffering = False  # after the first CHECKPOINT, records wait for the next one
    pending: List[Tuple[str, object]] = []
    verify = [False]

    def apply(event: Tuple[str, object]) -> None:
        kind, data = event
        if kind == "verify":
            verify[0] = True
            idx.verify_seen = True
        elif not verify[0]:
            idx._runs = None
            for pfn, off in data:  # type: ignore[union-attr]
                if off == ZERO_PAGE:
                    idx._xalloc.add(pfn)
                else:
                    idx._add_data(pfn, off)

    while True:
        try:
            rtype, length = struct.unpack("<II", r.read(pos, REC_HEADER_SIZE, "libxc record header"))
            if length > REC_LENGTH_MAX:
                raise XenSaveError(pos + 4, f"record length {length:#x} exceeds the 128 MiB limit")
            body = pos + REC_HEADER_SIZE
            r.need(body, _pad8(length), f"libxc record type {rtype:#x} body")
        except XenSaveError:
            if buffering:  # failover: the last complete checkpoint stands
                idx.ended_by = f"end of file after checkpoint {idx.checkpoints}"
                idx.end_offset = pos
                return
            raise
        nxt = body + _pad8(length)
        if rtype == REC_END:
            idx.ended_by = "END"
            idx.end_offset = nxt
            return
        if rtype == REC_PAGE_DATA:
            event = ("pages", _page_data(r, idx, body, length))
            idx.page_data_records += 1
            pending.append(event) if buffering else apply(event)
        elif rtype == REC_VERIFY:
            pending.append(("verify", None)) if buffering else apply(("verify", None))
        elif rtype == REC_CHECKPOINT:
            if in_libxl:
                try:
                    nxt = _skip_libxl_checkpoint_records(r, nxt)
                except XenSaveError:
                    if buffering:
                        idx.ended_by = f"end of file after checkpoint {idx.checkpoints}"
                        idx.end_offset = pos
                        return
                    raise
            for event in pending:
                apply(event)
            pending.clear()
            buffering = True
            idx.checkpoints += 1
        elif rtype == REC_X86_PV_INFO and length >= 8:
            idx.pv_guest_width = r.read(body, 1, "X86_PV_INFO guest_width")[0]
        elif rtype == REC_X86_PV_VCPU_BASIC and length > 8:
            (vcpu_id,) = struct.unpack("<I", r.read(body, 4, "X86_PV_VCPU_BASIC vcpu_id"))
            idx.pv_vcpu_basic[vcpu_id] = (body + 8, length - 8)
        elif REC_LAST_KNOWN < rtype < REC_OPTIONAL:
            raise XenSaveError(pos, f"unknown mandatory libxc record type {rtype:#x}")
        pos = nxt


def _skip_libxl_checkpoint_records(r: _Reader, pos: int) -> int:
    """After a libxc CHECKPOINT inside a libxl stream: libxl records up to CHECKPOINT_END."""
    while True:
        rtype, length = struct.unpack("<II", r.read(pos, REC_HEADER_SIZE, "libxl checkpoint record header"))
        r.need(pos + REC_HEADER_SIZE, _pad8(length), f"libxl record type {rtype:#x} body")
        pos += REC_HEADER_SIZE + _pad8(length)
        if rtype == LIBXL_CHECKPOINT_END:
            return pos
        if rtype == LIBXL_END:
            raise XenSaveError(pos, "libxl END inside a checkpoint")


def _page_data(r: _Reader, idx: SaveIndex, body: int, length: int) -> List[Tuple[int, int]]:
    """Checks one PAGE_DATA body as restore does; returns ``(pfn, body offset or ZERO_PAGE)``
    for each entry that populates a frame."""
    if length < 8:
        raise XenSaveError(body, f"PAGE_DATA length {length} is shorter than its 8-byte header")
    (count,) = struct.unpack("<I", r.read(body, 4, "PAGE_DATA count"))
    if count == 0:
        raise XenSaveError(body, "PAGE_DATA count is 0")
    if length < 8 + 8 * count:
        raise XenSaveError(body, f"PAGE_DATA length {length} cannot hold {count} pfn words")
    words = array("Q")
    words.frombytes(r.read(body + 8, 8 * count, "PAGE_DATA pfn array"))
    if sys.byteorder != "little":
        words.byteswap()
    data_at = body + 8 + 8 * count
    out: List[Tuple[int, int]] = []
    n_data = 0
    for i, word in enumerate(words):
        ptype = word >> TYPE_SHIFT
        name = TYPE_NAMES.get(ptype)
        if name is None:
            raise XenSaveError(body + 8 + 8 * i, f"PAGE_DATA entry {i}: unknown page type {ptype:#x}")
        idx.type_counts[name] = idx.type_counts.get(name, 0) + 1
        pfn = word & PFN_MASK
        if ptype == TYPE_XALLOC:
            out.append((pfn, ZERO_PAGE))
        elif ptype not in (TYPE_XTAB, TYPE_BROKEN):
            out.append((pfn, data_at + n_data * PAGE_SIZE))
            n_data += 1
    if length != 8 + 8 * count + PAGE_SIZE * n_data:
        raise XenSaveError(
            body - 4,
            f"PAGE_DATA length {length} != 8 + 8 * {count} + 4096 * {n_data} data pages",
        )
    return out


# Offset of user_regs.rip (eip) in ``vcpu_guest_context``: 512-byte fpu_ctxt, ``unsigned long``
# flags, then cpu_user_regs with 15 (64-bit) or 7 (32-bit) registers and error_code/entry_vector
# before rip (xen/include/public/arch-x86/xen.h, xen-x86_64.h, xen-x86_32.h).
_PV_RIP_OFFSET = {8: 512 + 8 + 15 * 8 + 8, 4: 512 + 4 + 7 * 4 + 4}
_PV_CONTEXT_SIZE = {8: 5168, 4: 2800}


def pv_vcpu_rip(read: ReadFn, idx: SaveIndex, vcpu_id: int) -> Optional[int]:
    """RIP (EIP for 32-bit guests) of an x86 PV vcpu from its X86_PV_VCPU_BASIC record, or None
    when the stream has no such context of the expected size."""
    where = idx.pv_vcpu_basic.get(vcpu_id)
    width = idx.pv_guest_width
    if where is None or width not in _PV_RIP_OFFSET or where[1] != _PV_CONTEXT_SIZE[width]:
        return None
    raw = read(where[0] + _PV_RIP_OFFSET[width], width)
    return int.from_bytes(raw, "little") if len(raw) == width else None


def iter_pages(idx: SaveIndex) -> Iterator[Tuple[int, int]]:
    """``(pfn, file offset or ZERO_PAGE)`` of every populated frame in pfn order."""
    zeros = idx.zero_pfns()
    data = ((first + i, start + i * PAGE_SIZE) for first, start, n in idx.runs() for i in range(n))
    yield from sorted(list(data) + [(p, ZERO_PAGE) for p in zeros]) if zeros else data


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} SAVE_FILE", file=sys.stderr)
        return 2
    try:
        idx = open_path(argv[1])
    except OSError as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 2
    except XenSaveError as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    runs = idx.runs()
    print(f"layers: {' -> '.join(idx.layers)}")
    print(f"domain: {idx.domain_type_name}, Xen {idx.xen_version[0]}.{idx.xen_version[1]}")
    print(f"PAGE_DATA records: {idx.page_data_records}, checkpoints: {idx.checkpoints}, ended by: {idx.ended_by}")
    zeros = len(idx.zero_pfns())
    print(f"frames with data: {idx.frames - zeros}, XALLOC frames: {zeros}")
    print(f"runs (consecutive pfns and file offsets): {len(runs)}")
    if idx.pv_vcpu_basic:
        with open(argv[1], "rb") as f:
            rips = {v: pv_vcpu_rip(_file_reader(f), idx, v) for v in sorted(idx.pv_vcpu_basic)}
        print("vcpus: " + ", ".join(f"{v} rip {r:#x}" if r is not None else f"{v}" for v, r in rips.items()))
    print("page types: " + ", ".join(f"{k} {v}" for k, v in sorted(idx.type_counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
