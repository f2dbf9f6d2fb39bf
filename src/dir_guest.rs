//! A saved domain image directory as a [`Guest`] the saver can write out again.

use std::path::Path;

use anyhow::{Context, Result};
use sr_format::{DomainType, PageType};
use sr_memory::{FileMemory, GuestMemory, MemoryError, PfnBitmap};
use sr_save::{Guest, SaveError};

use crate::image_dir::{DomainImage, MEMORY_FILE, read_manifest};

/// The image file with the populated set the manifest records (a file system that does not
/// report holes would otherwise make every page look populated).
#[derive(Debug)]
pub struct DirMemory {
    file: FileMemory,
    populated: PfnBitmap,
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
    fn page_file(&self) -> Option<&std::fs::File> {
        self.file.page_file()
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
        let image = read_manifest(dir)?;
        let shift = u32::from(image.state.page_shift);
        let file = FileMemory::open(dir.join(MEMORY_FILE), shift)
            .with_context(|| format!("cannot open {}", dir.join(MEMORY_FILE).display()))?;
        let limit = file.pfn_limit().max(image.pages);
        let populated = PfnBitmap::from_pfns(limit, image.populated.iter().copied())
            .context("domain.json: populated pfns beyond the memory image")?;
        Ok(Self { image, memory: DirMemory { file, populated } })
    }
}

impl Guest for DirGuest {
    fn memory(&self) -> &dyn GuestMemory {
        &self.memory
    }
    fn domain_type(&self) -> DomainType {
        self.image.state.domain_type
    }
    fn page_types(&self, pfns: &[u64], out: &mut [PageType]) {
        for (pfn, t) in pfns.iter().zip(out.iter_mut()) {
            *t = self.image.state.page_type(*pfn);
        }
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
