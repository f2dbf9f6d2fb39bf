//! The domain image directory: what `xsr restore` writes and `xsr save` reads.
//!
//! ```text
//! DIR/memory.img     sparse raw image: pfn p at byte p << page_shift
//! DIR/domain.json    everything else (see `Manifest`), blobs by file name
//! DIR/*.bin          opaque blobs: vcpu contexts, shared info, HVM context, emulator state
//! DIR/xl-config.json the xl configuration, when the stream had one
//! ```
//!
//! A directory is written under a temporary name beside its final one and renamed when
//! complete, so a failed restore never leaves a directory that looks complete.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sr_format::libxl::LibxlRecordType;
use sr_format::state::{DomainState, EmulatorState, P2mState, PvInfoState, TscState, VcpuState};
use sr_format::{DomainType, PageType};

/// Name of the memory image inside the directory.
pub const MEMORY_FILE: &str = "memory.img";
/// Name of the manifest inside the directory.
pub const MANIFEST_FILE: &str = "domain.json";
/// Value of the manifest's `format` field.
pub const FORMAT: &str = "xsr-domain-image/1";

/// `domain.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Domain type number (1 PV, 2 HVM, 3 PVH, 4 ARM).
    pub domain_type: u32,
    /// Its name, for people.
    #[serde(default)]
    pub domain_type_name: String,
    /// log2 page size.
    pub page_shift: u16,
    /// libxc stream version the state came from.
    #[serde(default = "default_stream_version")]
    pub stream_version: u32,
    /// Xen version of the saver: [major, minor].
    #[serde(default)]
    pub xen_version: [u32; 2],
    /// The memory image.
    pub memory: MemoryManifest,
    /// Runs of non-NOTAB page types: [first pfn, count, type name].
    #[serde(default)]
    pub page_types: Vec<(u64, u64, String)>,
    /// PV guest width and levels.
    #[serde(default)]
    pub pv_info: Option<PvInfoManifest>,
    /// PV p2m.
    #[serde(default)]
    pub p2m: Option<P2mManifest>,
    /// PV vcpu blobs.
    #[serde(default)]
    pub vcpus: Vec<VcpuManifest>,
    /// Shared info blob file.
    #[serde(default)]
    pub shared_info: Option<String>,
    /// TSC info.
    #[serde(default)]
    pub tsc: Option<TscManifest>,
    /// HVM context blob file.
    #[serde(default)]
    pub hvm_context: Option<String>,
    /// HVM params: [index, value] in stream order.
    #[serde(default)]
    pub hvm_params: Vec<[u64; 2]>,
    /// CPUID leaves: [leaf, subleaf, eax, ebx, ecx, edx].
    #[serde(default)]
    pub cpuid: Vec<[u32; 6]>,
    /// MSR policy: [index, flags, value].
    #[serde(default)]
    pub msrs: Vec<(u32, u32, u64)>,
    /// libxl device-model records.
    #[serde(default)]
    pub emulator: Vec<EmulatorManifest>,
    /// Optional libxc records of types xsr does not know (Xen skips them; a save writes them
    /// back).
    #[serde(default)]
    pub optional_records: Vec<OptionalRecordManifest>,
    /// The outer layers of the stream.
    #[serde(default)]
    pub container: ContainerManifest,
}

fn default_stream_version() -> u32 {
    sr_format::IHDR_VERSION
}

/// The memory image.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemoryManifest {
    /// File name.
    pub file: String,
    /// Image length in pages.
    pub pages: u64,
    /// Runs of populated pfns: [first pfn, count].
    pub populated: Vec<[u64; 2]>,
}

/// X86_PV_INFO.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PvInfoManifest {
    /// Guest width in bytes.
    pub guest_width: u8,
    /// Page-table levels.
    pub pt_levels: u8,
}

/// The PV p2m frame list.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct P2mManifest {
    /// max_pfn.
    pub end_pfn: u32,
    /// Frame pfns from frame 0 (18446744073709551615 for a frame never sent).
    pub frames: Vec<u64>,
}

/// One vcpu's blob files.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VcpuManifest {
    /// vcpu id.
    pub id: u32,
    /// X86_PV_VCPU_BASIC blob file.
    pub basic: Option<String>,
    /// X86_PV_VCPU_EXTENDED blob file.
    pub extended: Option<String>,
    /// X86_PV_VCPU_XSAVE blob file.
    pub xsave: Option<String>,
    /// X86_PV_VCPU_MSRS blob file.
    pub msrs: Option<String>,
}

/// X86_TSC_INFO.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TscManifest {
    /// Mode.
    pub mode: u32,
    /// kHz.
    pub khz: u32,
    /// Nanoseconds.
    pub nsec: u64,
    /// Incarnation.
    pub incarnation: u32,
}

/// One libxl EMULATOR_* record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmulatorManifest {
    /// "EMULATOR_XENSTORE_DATA" or "EMULATOR_CONTEXT".
    pub kind: String,
    /// Emulator id.
    pub id: u32,
    /// Emulator index.
    pub index: u32,
    /// Payload file.
    pub file: String,
}

/// One optional libxc record of an unknown type.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OptionalRecordManifest {
    /// The record type (bit 31 set).
    pub record_type: u32,
    /// Body file.
    pub file: String,
}

/// The outer layers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ContainerManifest {
    /// "xl", "libxl" or "libxc".
    pub layer: String,
    /// File holding the xl configuration.
    #[serde(default)]
    pub xl_config: Option<String>,
    /// libxl "converted from legacy" option.
    #[serde(default)]
    pub libxl_legacy: bool,
}

/// Everything a directory holds besides the memory image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainImage {
    /// The state.
    pub state: DomainState,
    /// The outer layers and the xl config.
    pub layer: String,
    /// The xl configuration bytes.
    pub xl_config: Option<Vec<u8>>,
    /// libxl legacy option.
    pub libxl_legacy: bool,
    /// Populated pfns, ascending.
    pub populated: Vec<u64>,
    /// Image length in pages.
    pub pages: u64,
}

/// Runs of consecutive values in an ascending sequence.
pub fn runs(values: impl IntoIterator<Item = u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some([start, count]) if *start + *count == v => *count += 1,
            _ => out.push([v, 1]),
        }
    }
    out
}

/// Writes `image`'s manifest and blobs into `dir` (the memory image is written separately).
pub fn write_manifest(dir: &Path, image: &DomainImage) -> Result<()> {
    let s = &image.state;
    let blob = |name: String, data: &Option<Vec<u8>>| -> Result<Option<String>> {
        match data {
            Some(d) => {
                fs::write(dir.join(&name), d).with_context(|| format!("cannot write {name}"))?;
                Ok(Some(name))
            }
            None => Ok(None),
        }
    };
    let mut page_types: Vec<(u64, u64, String)> = Vec::new();
    for (&pfn, &t) in &s.page_types {
        match page_types.last_mut() {
            Some((start, count, name)) if *start + *count == pfn && name == t.name() => *count += 1,
            _ => page_types.push((pfn, 1, t.name().to_string())),
        }
    }
    let mut vcpus = Vec::new();
    for (&id, v) in &s.vcpus {
        vcpus.push(VcpuManifest {
            id,
            basic: blob(format!("vcpu{id}-basic.bin"), &v.basic)?,
            extended: blob(format!("vcpu{id}-extended.bin"), &v.extended)?,
            xsave: blob(format!("vcpu{id}-xsave.bin"), &v.xsave)?,
            msrs: blob(format!("vcpu{id}-msrs.bin"), &v.msrs)?,
        });
    }
    let mut emulator = Vec::new();
    for (i, e) in s.emulator.iter().enumerate() {
        let file = blob(format!("emulator{i}.bin"), &Some(e.data.clone()))?.unwrap_or_default();
        emulator.push(EmulatorManifest { kind: e.kind.name_or_reserved().to_string(), id: e.id, index: e.index, file });
    }
    let mut optional_records = Vec::new();
    for (i, (rtype, body)) in s.optional_records.iter().enumerate() {
        let file = blob(format!("optional{i}.bin"), &Some(body.clone()))?.unwrap_or_default();
        optional_records.push(OptionalRecordManifest { record_type: rtype.0, file });
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        domain_type: s.domain_type.0,
        domain_type_name: s.domain_type.to_string(),
        page_shift: s.page_shift,
        stream_version: s.stream_version,
        xen_version: [s.xen_major, s.xen_minor],
        memory: MemoryManifest {
            file: MEMORY_FILE.to_string(),
            pages: image.pages,
            populated: runs(image.populated.iter().copied()),
        },
        page_types,
        pv_info: s.pv_info.map(|p| PvInfoManifest { guest_width: p.guest_width, pt_levels: p.pt_levels }),
        p2m: s.p2m.as_ref().map(|p| P2mManifest { end_pfn: p.end_pfn, frames: p.frames.clone() }),
        vcpus,
        shared_info: blob("shared_info.bin".into(), &s.shared_info)?,
        tsc: s.tsc.map(|t| TscManifest { mode: t.mode, khz: t.khz, nsec: t.nsec, incarnation: t.incarnation }),
        hvm_context: blob("hvm_context.bin".into(), &s.hvm_context)?,
        hvm_params: s.hvm_params.iter().map(|&(i, v)| [i, v]).collect(),
        cpuid: s.cpuid.clone(),
        msrs: s.msrs.clone(),
        emulator,
        optional_records,
        container: ContainerManifest {
            layer: image.layer.clone(),
            xl_config: blob("xl-config.json".into(), &image.xl_config)?,
            libxl_legacy: image.libxl_legacy,
        },
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    fs::write(dir.join(MANIFEST_FILE), json).context("cannot write domain.json")?;
    Ok(())
}

/// What a manifest may ask for, checked before anything is allocated for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Pages the memory image holds (`memory.pages` must not exceed it).
    pub max_pages: u64,
    /// pfns the page-type runs may cover in total.
    pub max_typed: u64,
}

impl ManifestLimits {
    /// Page-type runs may cover this many pfns (64 Mi: a 256 GiB span of holes).
    pub const MAX_TYPED: u64 = 1 << 26;
}

/// Reads a directory's manifest and blobs, for a memory image of `memory.img`'s size.
pub fn read_manifest(dir: &Path) -> Result<DomainImage> {
    read_manifest_with(dir, None)
}

/// [`read_manifest`] with other limits on page types (`None`: [`ManifestLimits::MAX_TYPED`]).
pub fn read_manifest_with(dir: &Path, max_typed: Option<u64>) -> Result<DomainImage> {
    let path = dir.join(MANIFEST_FILE);
    let text = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let image = dir.join(MEMORY_FILE);
    let image_len = fs::metadata(&image).with_context(|| format!("cannot open {}", image.display()))?.len();
    let mut read_blob = |n: &str| -> Result<Vec<u8>> {
        if n.contains('/') || n.contains("..") {
            bail!("blob name {n:?} must be a plain file name inside the directory");
        }
        fs::read(dir.join(n)).with_context(|| format!("cannot read blob {n}"))
    };
    let limits = |page_shift: u16| ManifestLimits {
        max_pages: image_len.div_ceil(1 << page_shift.min(63)),
        max_typed: max_typed.unwrap_or(ManifestLimits::MAX_TYPED),
    };
    parse_manifest(&text, &limits, &mut read_blob).with_context(|| format!("{}", path.display()))
}

/// Parses `domain.json` (`json`), reading blobs through `blob`, under the limits `limits`
/// gives for the manifest's page shift. Every count is checked before it is used: the
/// populated runs lie within the image and cover at most its pages in total, the page-type
/// runs at most `max_typed` pfns (a later run overrides an earlier one).
pub fn parse_manifest(
    json: &[u8],
    limits: &dyn Fn(u16) -> ManifestLimits,
    blob: &mut dyn FnMut(&str) -> Result<Vec<u8>>,
) -> Result<DomainImage> {
    let m: Manifest = serde_json::from_slice(json).context("not a valid manifest")?;
    if m.format != FORMAT {
        bail!("unsupported format {:?} (expected {FORMAT:?})", m.format);
    }
    let mut read_blob =
        |name: &Option<String>| -> Result<Option<Vec<u8>>> { name.as_deref().map(&mut *blob).transpose() };
    let dtype = DomainType(m.domain_type);
    if !dtype.is_known() || !dtype.page_shift_valid(m.page_shift) {
        bail!("domain.json: domain type {} with page_shift {} is not valid", m.domain_type, m.page_shift);
    }
    let limits = limits(m.page_shift);
    if m.memory.pages > limits.max_pages {
        bail!("{MEMORY_FILE} holds {} pages, domain.json says {}", limits.max_pages, m.memory.pages);
    }
    let mut state = DomainState::new(dtype, m.page_shift);
    state.stream_version = m.stream_version;
    state.xen_major = m.xen_version[0];
    state.xen_minor = m.xen_version[1];
    let mut page_types = BTreeMap::new();
    let mut typed = 0u64;
    for (start, count, name) in &m.page_types {
        let t = PageType::from_name(name).with_context(|| format!("domain.json: unknown page type {name:?}"))?;
        let Some(end) = start.checked_add(*count).filter(|&e| e <= sr_format::PFN_MAX + 1) else {
            bail!("domain.json: page type run {start}+{count} is beyond the pfn range");
        };
        typed = typed.saturating_add(*count);
        if typed > limits.max_typed {
            bail!("domain.json: page type runs cover more than {} pfns", limits.max_typed);
        }
        // A later run overrides an earlier one for the same pfn.
        for pfn in *start..end {
            if t == PageType::NOTAB {
                page_types.remove(&pfn);
            } else {
                page_types.insert(pfn, t);
            }
        }
    }
    state.page_types = page_types;
    state.pv_info = m.pv_info.map(|p| PvInfoState { guest_width: p.guest_width, pt_levels: p.pt_levels });
    state.p2m = m.p2m.map(|p| P2mState { end_pfn: p.end_pfn, frames: p.frames });
    for v in &m.vcpus {
        state.vcpus.insert(
            v.id,
            VcpuState {
                basic: read_blob(&v.basic)?,
                extended: read_blob(&v.extended)?,
                xsave: read_blob(&v.xsave)?,
                msrs: read_blob(&v.msrs)?,
            },
        );
    }
    state.shared_info = read_blob(&m.shared_info)?;
    state.tsc = m.tsc.map(|t| TscState { mode: t.mode, khz: t.khz, nsec: t.nsec, incarnation: t.incarnation });
    state.hvm_context = read_blob(&m.hvm_context)?;
    state.hvm_params = m.hvm_params.iter().map(|&[i, v]| (i, v)).collect();
    state.cpuid = m.cpuid;
    state.msrs = m.msrs;
    for e in &m.emulator {
        let kind = match e.kind.as_str() {
            "EMULATOR_XENSTORE_DATA" => LibxlRecordType::EMULATOR_XENSTORE_DATA,
            "EMULATOR_CONTEXT" => LibxlRecordType::EMULATOR_CONTEXT,
            other => bail!("domain.json: unknown emulator record kind {other:?}"),
        };
        let data = read_blob(&Some(e.file.clone()))?.unwrap_or_default();
        state.emulator.push(EmulatorState { kind, id: e.id, index: e.index, data });
    }
    for r in &m.optional_records {
        let data = read_blob(&Some(r.file.clone()))?.unwrap_or_default();
        state.optional_records.push((sr_format::RecordType(r.record_type), data));
    }
    let mut populated = Vec::new();
    let mut total = 0u64;
    for &[start, count] in &m.memory.populated {
        total = total.saturating_add(count);
        if start.saturating_add(count) > m.memory.pages || total > m.memory.pages {
            bail!(
                "domain.json: populated run {start}+{count} is beyond the image, or the runs cover more than its {} pages",
                m.memory.pages
            );
        }
        populated.extend(start..start + count);
    }
    populated.sort_unstable();
    populated.dedup();
    Ok(DomainImage {
        state,
        layer: m.container.layer,
        xl_config: read_blob(&m.container.xl_config)?,
        libxl_legacy: m.container.libxl_legacy,
        populated,
        pages: m.memory.pages,
    })
}

pub use crate::output::AtomicOutput;
/// A directory written atomically (see [`AtomicOutput`]).
pub type AtomicDir = AtomicOutput;
/// A file written atomically (see [`AtomicOutput`]).
pub type AtomicFile = AtomicOutput;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_coalesce() {
        assert_eq!(runs([1, 2, 3, 7, 8, 10]), vec![[1, 3], [7, 2], [10, 1]]);
        assert!(runs([]).is_empty());
    }
}
