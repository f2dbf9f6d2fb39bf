//! A saved domain image directory as a [`sr_save::Guest`] the saver can write out again.

use std::path::Path;

use anyhow::{Context, Result};
use sr_format::{DomainType, PageType};
use sr_memory::{FileMemory, GuestMemory, MemoryError, PfnBitmap};
use sr_save::{Guest, SaveError};

use crate::image_dir::{DomainImage, MEMORY_FILE, read_manifest_with};
use crate::mapped::MappedFile;

/// The image file with the populated set the manifest records (a file system that does not
/// report holes would otherwise make every page look populated).
#[derive(Debug)]
pub struct DirMemory {
    file: FileMemory,
    populated: PfnBitmap,
    /// The image mapped read-only (`None` for an empty image).
    map: Option<MappedFile>,
}

impl GuestMemory for DirMemory {
    fn page_shift(&self) -> u32 {
        self.file.page_shift()
    }
    fn pfn_limit(&self) -> u64 {
        self.file.pfn_limit()
    }
    fn populate(&self, pfns: &[u64]) -> Result<(), MemoryError> {
        self.file.populate(pfns)
    }
    fn is_populated(&self, pfn: u64) -> bool {
        self.populated.get(pfn)
    }
    fn populated(&self) -> PfnBitmap {
        self.populated.clone()
    }
    fn write_pages(&self, pfns: &[u64], data: &[u8]) -> Result<(), MemoryError> {
        self.file.write_pages(pfns, data)
    }
    fn read_pages(&self, pfns: &[u64], out: &mut [u8]) -> Result<(), MemoryError> {
        self.file.read_pages(pfns, out)
    }
    fn take_dirty(&self) -> PfnBitmap {
        PfnBitmap::new(self.populated.len())
    }
    /// Lends the pages straight from the mapped image: each run of consecutive pfns is one
    /// slice of the map, populated in one call before the writer copies it out and released
    /// after, so a save copies each page once and holds about one batch resident.
    fn lend_pages(
        &self,
        pfns: &[u64],
        f: &mut dyn FnMut(&[&[u8]]) -> std::io::Result<()>,
    ) -> Option<std::io::Result<()>> {
        let map = self.map.as_ref()?;
        if let Err(e) = sr_memory::check_pfns(pfns, self.pfn_limit()) {
            return Some(Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)));
        }
        let (shift, bytes) = (self.file.page_shift(), map.bytes());
        let mut slices: Vec<&[u8]> = Vec::new();
        let mut mapped = Vec::new();
        let mut i = 0;
        while let Some(&first) = pfns.get(i) {
            let run = pfns[i..].iter().zip(first..).take_while(|&(&p, want)| p == want).count();
            let start = usize::try_from(first << shift).unwrap_or(usize::MAX);
            let end = start.saturating_add(run << shift);
            let Some(pages) = bytes.get(start..end) else {
                let err = MemoryError::PfnOutOfRange { pfn: first, limit: self.pfn_limit() };
                return Some(Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, err)));
            };
            map.populate(start, end);
            mapped.push((start, end));
            slices.push(pages);
            i += run;
        }
        let result = f(&slices);
        for (start, end) in mapped {
            map.release(start, end);
        }
        Some(result)
    }
}

/// A domain image directory opened for saving. It never changes, so pausing is a no-op.
#[derive(Debug)]
pub struct DirGuest {
    /// The manifest and blobs.
    pub image: DomainImage,
    memory: DirMemory,
}

impl DirGuest {
    /// Opens `dir` (written by `xsr restore`).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, None)
    }

    /// [`open`](Self::open) with another bound on the pfns page-type runs may cover (see
    /// [`read_manifest_with`]).
    pub fn open_with(dir: &Path, max_typed: Option<u64>) -> Result<Self> {
        let image = read_manifest_with(dir, max_typed)?;
        let shift = u32::from(image.state.page_shift);
        let file = FileMemory::open(dir.join(MEMORY_FILE), shift)
            .with_context(|| format!("cannot open {}", dir.join(MEMORY_FILE).display()))?;
        let limit = file.pfn_limit();
        if image.pages > limit {
            anyhow::bail!("{MEMORY_FILE} holds {limit} pages, domain.json says {}", image.pages);
        }
        let populated = PfnBitmap::from_pfns(limit, image.populated.iter().copied())
            .context("domain.json: populated pfns beyond the memory image")?;
        let image_file = std::fs::File::open(dir.join(MEMORY_FILE))
            .with_context(|| format!("cannot open {}", dir.join(MEMORY_FILE).display()))?;
        let map = MappedFile::map(image_file, &dir.join(MEMORY_FILE))?;
        let extents = std::fs::File::open(dir.join(MEMORY_FILE))
            .with_context(|| format!("cannot open {}", dir.join(MEMORY_FILE).display()))?;
        if let Some(pfn) = unlisted_data(&extents, map.as_ref().map(MappedFile::bytes), &populated, shift)? {
            anyhow::bail!(
                "{MEMORY_FILE} holds data at pfn {pfn:#x}, which domain.json does not list as populated: a save would drop it (add the pfn to memory.populated, or zero the page)"
            );
        }
        Ok(Self { image, memory: DirMemory { file, populated, map } })
    }
}

/// The first pfn of the image that holds non-zero data but is not in `populated` (a save
/// sends only the populated pfns, so such a page would be lost). Only the file's data
/// extents are looked at (`SEEK_DATA`/`SEEK_HOLE`): a restored image has data exactly at
/// its populated pages, so this reads nothing.
fn unlisted_data(file: &std::fs::File, bytes: Option<&[u8]>, populated: &PfnBitmap, shift: u32) -> Result<Option<u64>> {
    use rustix::fs::{SeekFrom, seek};
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let len = bytes.len() as u64;
    let page = 1u64 << shift;
    let mut at = 0u64;
    while at < len {
        let start = match seek(file, SeekFrom::Data(at)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(std::io::Error::from(e)).context("cannot find the data extents of the memory image"),
        };
        let end =
            seek(file, SeekFrom::Hole(start)).context("cannot find the data extents of the memory image")?.min(len);
        for pfn in start >> shift..end.div_ceil(page) {
            if populated.get(pfn) {
                continue;
            }
            let from = usize::try_from(pfn << shift).unwrap_or(usize::MAX);
            let to = usize::try_from(((pfn + 1) << shift).min(len)).unwrap_or(usize::MAX);
            if bytes.get(from..to).is_some_and(|p| p.iter().any(|&b| b != 0)) {
                return Ok(Some(pfn));
            }
        }
        at = end.max(start + 1);
    }
    Ok(None)
}

impl Guest for DirGuest {
    fn memory(&self) -> &dyn GuestMemory {
        &self.memory
    }
    fn domain_type(&self) -> DomainType {
        self.image.state.domain_type
    }
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) -> Result<(), SaveError> {
        for (pfn, t) in pfns.iter().zip(out.iter_mut()) {
            *t = self.image.state.page_type(*pfn);
        }
        Ok(())
    }
    fn extra_pfns(&self) -> Vec<u64> {
        // Holes the stream named (XTAB, BROKEN) and allocate-only pages are sent as such.
        self.image.state.page_types.iter().filter(|(_, t)| !t.has_data()).map(|(p, _)| *p).collect()
    }
    fn pause(&self) -> Result<(), SaveError> {
        Ok(())
    }
    fn state(&self) -> Result<sr_format::state::DomainState, SaveError> {
        Ok(self.image.state.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lends_pages_from_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..3 * 4096).map(|i| (i % 241) as u8 + 1).collect();
        std::fs::write(dir.path().join(MEMORY_FILE), &image).unwrap();
        std::fs::write(dir.path().join("ctx.bin"), [1u8; 16]).unwrap();
        let manifest = |pages: u64| {
            format!(
                r#"{{ "format": "xsr-domain-image/1", "domain_type": 2, "page_shift": 12,
                     "memory": {{ "file": "memory.img", "pages": {pages}, "populated": [[0, {pages}]] }},
                     "hvm_context": "ctx.bin" }}"#
            )
        };
        std::fs::write(dir.path().join("domain.json"), manifest(3)).unwrap();
        let guest = DirGuest::open(dir.path()).unwrap();
        let memory = guest.memory();
        assert_eq!(memory.populated().count_ones(), 3);
        let pfns = [1, 0, 1, 2];
        let mut lent = Vec::new();
        let r = memory.lend_pages(&pfns, &mut |pages| {
            lent = pages.concat();
            Ok(())
        });
        assert!(r.expect("the image is mapped").is_ok());
        let mut read = vec![0u8; pfns.len() * 4096];
        memory.read_pages(&pfns, &mut read).unwrap();
        assert_eq!(lent, read);
        assert_eq!(&lent[..4096], &image[4096..2 * 4096]);
        let bad = memory.lend_pages(&[3], &mut |_| Ok(())).unwrap();
        assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);

        // An image shorter than the manifest says is refused up front.
        std::fs::write(dir.path().join("domain.json"), manifest(4)).unwrap();
        let err = DirGuest::open(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("holds 3 pages"), "{err:#}");
    }
}
