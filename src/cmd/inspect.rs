//! `xsr inspect`: every layer, header and record with its offset, plus totals.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde::ser::SerializeMap;
use sr_format::body::{RecordBody, hvm_context, pv_vcpu_regs};
use sr_format::cpu::X86Regs;
use sr_format::{ByteSource, Item, Record, RecordType, StreamReader, Strictness};

/// One line of the listing.
#[derive(Serialize, Debug)]
pub struct Entry {
    /// Absolute offset.
    pub offset: u64,
    /// Layer: "xl", "virsh", "libxl" or "libxc".
    pub layer: &'static str,
    /// Record index within its layer (headers: none).
    pub index: Option<u64>,
    /// Type name.
    pub kind: String,
    /// Body length.
    pub length: Option<u64>,
    /// A short description of the contents.
    pub detail: String,
}

/// Totals over the stream.
#[derive(Serialize, Debug, Default)]
pub struct Totals {
    /// libxc records.
    pub records: u64,
    /// libxl records.
    pub libxl_records: u64,
    /// PAGE_DATA entries by page type.
    pub pages_by_type: BTreeMap<String, u64>,
    /// Bytes of page bodies.
    pub data_bytes: u64,
    /// Lowest and highest pfn.
    pub pfn_range: Option<(u64, u64)>,
    /// Distinct vcpu ids in PV vcpu records.
    pub vcpus: Vec<u32>,
    /// Bytes read.
    pub bytes: u64,
}

/// The whole report.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// The layers, outermost first.
    pub layers: Vec<&'static str>,
    /// Every item.
    pub items: Vec<Entry>,
    /// Totals.
    pub totals: Totals,
    /// Each vcpu's registers (the last context the stream sent for it), by vcpu id.
    pub vcpu_registers: Vec<VcpuRegisters>,
    /// The error that stopped the listing, if any.
    pub error: Option<String>,
    /// Offset of that error.
    pub error_offset: Option<u64>,
    /// The exit status: 0 the whole stream was listed, 1 it is invalid.
    pub exit_code: u8,
    /// Bytes after the stream's END, if any (not part of the stream; listed, not an error).
    pub trailing_bytes: Option<crate::cmd::verify::Trailing>,
    /// Reading failed (an I/O error, not the stream): the listing is incomplete and the
    /// command fails instead of answering "invalid".
    #[serde(skip)]
    pub read_error: Option<sr_format::Error>,
}

/// One vcpu's registers and where they came from.
#[derive(Serialize, Debug)]
pub struct VcpuRegisters {
    /// vcpu id (HVM: the CPU record's instance).
    pub vcpu: u32,
    /// "HVM_CONTEXT" or "X86_PV_VCPU_BASIC".
    pub source: &'static str,
    /// Every register, in architectural order (see `sr_format::cpu::X86Regs::fields`).
    #[serde(serialize_with = "ordered_registers")]
    pub registers: X86Regs,
}

fn ordered_registers<S: serde::Serializer>(regs: &X86Regs, s: S) -> Result<S::Ok, S::Error> {
    let fields = regs.fields();
    let mut map = s.serialize_map(Some(fields.len()))?;
    for (name, value) in fields {
        map.serialize_entry(name, &value)?;
    }
    map.end()
}

/// Register state gathered while listing.
#[derive(Default)]
struct CpuScan {
    guest_width: Option<u8>,
    /// vcpu -> (source, registers); later contexts replace earlier ones.
    regs: BTreeMap<u32, (&'static str, X86Regs)>,
}

impl CpuScan {
    /// Notes the registers a record carries; returns a remark for the listing's detail column
    /// when they cannot be decoded.
    fn record(&mut self, rec: &Record<'_>, body: &RecordBody<'_>) -> Option<String> {
        match body {
            RecordBody::PvInfo(i) => self.guest_width = Some(i.guest_width),
            RecordBody::Vcpu(v) if v.kind == RecordType::X86_PV_VCPU_BASIC && !v.blob.is_empty() => {
                match self.guest_width.and_then(|w| pv_vcpu_regs(v.blob, w)) {
                    Some(r) => {
                        self.regs.insert(v.vcpu_id(), ("X86_PV_VCPU_BASIC", r));
                    }
                    None => return Some("registers not decoded (no X86_PV_INFO or wrong size)".into()),
                }
            }
            RecordBody::HvmContext(c) => match hvm_context::decode(c.blob, rec.offset + 8) {
                Ok(recs) => {
                    self.regs.retain(|_, (src, _)| *src != "HVM_CONTEXT");
                    for (vcpu, r) in recs.vcpu_regs() {
                        self.regs.insert(u32::from(vcpu), ("HVM_CONTEXT", r));
                    }
                    let types: Vec<String> = recs.entries.iter().map(|e| e.save_type().to_string()).collect();
                    return Some(format!("records: {}", types.join(" ")));
                }
                Err(e) => return Some(format!("save records malformed: {e}")),
            },
            _ => {}
        }
        None
    }
}

/// The record's line in the listing, or why its body does not parse.
fn describe(
    rec: &Record<'_>,
    page_shift: u16,
    totals: &mut Totals,
    cpus: &mut CpuScan,
) -> Result<String, sr_format::Error> {
    let body = RecordBody::parse(rec, page_shift, Strictness::Lenient)?;
    let cpu_remark = cpus.record(rec, &body);
    Ok(match body {
        RecordBody::PageData(p) => {
            let mut types: BTreeMap<String, u64> = BTreeMap::new();
            let (mut lo, mut hi) = (u64::MAX, 0);
            for e in p.entries() {
                *types.entry(e.page_type.to_string()).or_default() += 1;
                lo = lo.min(e.pfn);
                hi = hi.max(e.pfn);
            }
            for (t, n) in &types {
                *totals.pages_by_type.entry(t.clone()).or_default() += n;
            }
            totals.data_bytes += (p.data_pages() * p.page_size()) as u64;
            let (tlo, thi) = totals.pfn_range.unwrap_or((u64::MAX, 0));
            totals.pfn_range = Some((tlo.min(lo), thi.max(hi)));
            let types: Vec<String> = types.iter().map(|(t, n)| format!("{t} {n}")).collect();
            format!("{} pfns {lo:#x}..={hi:#x}, {} with data ({})", p.count(), p.data_pages(), types.join(", "))
        }
        RecordBody::PvInfo(i) => format!("guest width {}, {} levels", i.guest_width, i.pt_levels),
        RecordBody::P2mFrames(f) => {
            format!("pfns {:#x}..={:#x}, {} frames", f.header.start_pfn.get(), f.header.end_pfn.get(), f.frames.len())
        }
        RecordBody::Vcpu(v) => {
            if !totals.vcpus.contains(&v.vcpu_id()) {
                totals.vcpus.push(v.vcpu_id());
            }
            match cpu_remark {
                Some(r) => format!("vcpu {}, {} bytes; {r}", v.vcpu_id(), v.blob.len()),
                None => format!("vcpu {}, {} bytes", v.vcpu_id(), v.blob.len()),
            }
        }
        RecordBody::TscInfo(t) => format!(
            "mode {}, {} kHz, {} ns, incarnation {}",
            t.mode.get(),
            t.khz.get(),
            t.nsec.get(),
            t.incarnation.get()
        ),
        RecordBody::HvmContext(c) => {
            let n = c.entries().count();
            match cpu_remark {
                Some(r) => format!("{} bytes, {n} save entries; {r}", c.blob.len()),
                None => format!("{} bytes, {n} save entries", c.blob.len()),
            }
        }
        RecordBody::HvmParams(p) => {
            let list: Vec<String> =
                p.entries.iter().map(|e| format!("{}={:#x}", e.index.get(), e.value.get())).collect();
            list.join(" ")
        }
        RecordBody::CpuidPolicy(p) => format!("{} leaves", p.leaves.len()),
        RecordBody::MsrPolicy(p) => format!("{} MSRs", p.entries.len()),
        RecordBody::DirtyPfnList(l) => format!("{} pfns", l.pfns.len()),
        RecordBody::SharedInfo(_) => "4096 bytes".into(),
        RecordBody::Unknown(b) if rec.rtype.is_optional() => format!("optional, {} bytes", b.len()),
        RecordBody::Unknown(b) => format!("unknown mandatory, {} bytes", b.len()),
        _ => String::new(),
    })
}

/// Reads the whole stream and lists it; stops at the first framing error (reported in the
/// report, not as an `Err`).
pub fn inspect<S: ByteSource>(mut reader: StreamReader<S>) -> Report {
    let mut report = Report::default();
    let mut page_shift = 12;
    let mut cpus = CpuScan::default();
    // A record that ends the listing as invalid: its offset and why.
    let mut stop: Option<(u64, String)> = None;
    loop {
        let item = match reader.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e @ sr_format::Error::Io { .. }) => {
                report.read_error = Some(e);
                break;
            }
            Err(e) => {
                report.error_offset = Some(e.offset());
                report.error = Some(e.to_string());
                break;
            }
        };
        let entry = match item {
            Item::Xl { offset, header, config } => {
                report.layers.push("xl");
                Entry {
                    offset,
                    layer: "xl",
                    index: None,
                    kind: "XL_HEADER".into(),
                    length: Some(48 + u64::from(header.optional_data_len.get())),
                    detail: format!(
                        "mandatory flags {:#x}{}{}, config {} bytes",
                        header.mandatory_flags.get(),
                        if header.is_json() { " JSON" } else { "" },
                        if header.is_stream_v2() { " STREAMv2" } else { "" },
                        config.len()
                    ),
                }
            }
            Item::Virsh { offset, header, xml } => {
                report.layers.push("virsh");
                Entry {
                    offset,
                    layer: "virsh",
                    index: None,
                    kind: "VIRSH_HEADER".into(),
                    length: Some(64 + u64::from(header.xml_len.get())),
                    detail: format!("version {}, domain XML {} bytes", header.version.get(), xml.len()),
                }
            }
            Item::LibxlHeader { offset, header } => {
                report.layers.push("libxl");
                Entry {
                    offset,
                    layer: "libxl",
                    index: None,
                    kind: "LIBXL_HEADER".into(),
                    length: Some(16),
                    detail: format!("version {}, options {:#x}", header.version.get(), header.options.get()),
                }
            }
            Item::LibxlRecord(rec) => {
                report.totals.libxl_records += 1;
                let detail = match rec.emulator() {
                    Ok((h, data)) if rec.rtype.0 == 2 || rec.rtype.0 == 3 => {
                        format!("emulator id {}, index {}, {} bytes", h.id.get(), h.index.get(), data.len())
                    }
                    _ => String::new(),
                };
                Entry {
                    offset: rec.offset,
                    layer: "libxl",
                    index: Some(rec.index),
                    kind: rec.rtype.to_string(),
                    length: Some(rec.body.len() as u64),
                    detail,
                }
            }
            Item::ImageHeader { offset, header } => {
                report.layers.push("libxc");
                Entry {
                    offset,
                    layer: "libxc",
                    index: None,
                    kind: "IMAGE_HEADER".into(),
                    length: Some(24),
                    detail: format!("version {}, options {:#x}", header.version.get(), header.options.get()),
                }
            }
            Item::DomainHeader { offset, header } => {
                page_shift = header.page_shift.get();
                Entry {
                    offset,
                    layer: "libxc",
                    index: None,
                    kind: "DOMAIN_HEADER".into(),
                    length: Some(16),
                    detail: format!(
                        "{}, page_shift {}, Xen {}.{}",
                        header.domain_type(),
                        page_shift,
                        header.xen_major.get(),
                        header.xen_minor.get()
                    ),
                }
            }
            Item::Record(rec) => {
                report.totals.records += 1;
                // A record Xen cannot take ends the listing: its body did not parse (after a
                // wrong length every later "record" would be read out of the wrong bytes), or it
                // is of a mandatory type nobody knows (Xen fails the restore there).
                let detail = match describe(&rec, page_shift, &mut report.totals, &mut cpus) {
                    Ok(detail) => detail,
                    Err(e) => {
                        stop = Some((rec.offset, e.to_string()));
                        format!("malformed: {e}")
                    }
                };
                if stop.is_none() && !rec.rtype.is_known() && !rec.rtype.is_optional() {
                    let why = format!(
                        "record {} ({}) at byte {}: unknown mandatory record type (Xen fails the restore here)",
                        rec.index, rec.rtype, rec.offset
                    );
                    stop = Some((rec.offset, why));
                }
                Entry {
                    offset: rec.offset,
                    layer: "libxc",
                    index: Some(rec.index),
                    kind: rec.rtype.to_string(),
                    // From the header: page bodies may have been skipped, not read.
                    length: Some(u64::from(rec.length())),
                    detail,
                }
            }
        };
        report.items.push(entry);
        if let Some((offset, why)) = stop.take() {
            report.error_offset = Some(offset);
            report.error = Some(why);
            break;
        }
    }
    report.totals.vcpus.sort_unstable();
    report.vcpu_registers =
        cpus.regs.into_iter().map(|(vcpu, (source, registers))| VcpuRegisters { vcpu, source, registers }).collect();
    report.totals.bytes = reader.offset();
    report.exit_code = u8::from(report.error.is_some());
    if reader.is_done() && report.error.is_none() {
        let offset = reader.offset();
        match crate::cmd::verify::trailing_bytes(&mut reader.into_source(), offset) {
            Ok(trailing) => report.trailing_bytes = trailing,
            Err(e) => report.read_error = Some(e),
        }
    }
    report
}

/// Prints the report as text.
pub fn print_text(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "layers: {}", report.layers.join(" -> "))?;
    writeln!(out, "{:>10}  {:<6} {:>5}  {:<26} {:>9}  detail", "offset", "layer", "index", "type", "length")?;
    for e in &report.items {
        let index = e.index.map(|i| i.to_string()).unwrap_or_default();
        let length = e.length.map(|l| l.to_string()).unwrap_or_default();
        writeln!(out, "{:>#10x}  {:<6} {:>5}  {:<26} {:>9}  {}", e.offset, e.layer, index, e.kind, length, e.detail)?;
    }
    let t = &report.totals;
    writeln!(out, "totals: {} libxc records, {} libxl records, {} bytes", t.records, t.libxl_records, t.bytes)?;
    if !t.pages_by_type.is_empty() {
        let pages: Vec<String> = t.pages_by_type.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "pages: {}", pages.join(", "))?;
        writeln!(out, "page data: {} bytes", t.data_bytes)?;
    }
    if let Some((lo, hi)) = t.pfn_range {
        writeln!(out, "pfn range: {lo:#x}..={hi:#x}")?;
    }
    if !t.vcpus.is_empty() {
        let ids = t.vcpus.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
        let label = if t.vcpus.len() == 1 { "id" } else { "ids" };
        writeln!(out, "vcpus: {} ({label} {ids})", t.vcpus.len())?;
    }
    for v in &report.vcpu_registers {
        let r = &v.registers;
        // A PV context carries no EFER (see sr_format::body::pv_vcpu_regs).
        let efer = if v.source == "HVM_CONTEXT" { format!(" efer {:#x}", r.efer) } else { String::new() };
        writeln!(
            out,
            "vcpu {}: rip {:#x} rsp {:#x} rflags {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x}{efer} cs {:#x} ss {:#x} fs_base {:#x} gs_base {:#x} ({})",
            v.vcpu,
            r.rip,
            r.rsp,
            r.rflags,
            r.cr0,
            r.cr3,
            r.cr4,
            r.cs.selector,
            r.ss.selector,
            r.fs.base,
            r.gs.base,
            v.source
        )?;
    }
    if let Some(t) = &report.trailing_bytes {
        writeln!(out, "warning: {t}")?;
    }
    if let Some(err) = &report.error {
        writeln!(out, "error: {err}")?;
    }
    Ok(())
}
