//! Guest-physical reads through a [`PageIndex`] over the stream's bytes.

use std::fs::File;
use std::io;

use sr_format::{SeekSource, StreamReader};

use crate::error::{IndexError, ReadError};
use crate::index::{IndexLimits, PageIndex, PageLocation};

/// Bytes of a stream addressable by file offset: a byte slice (a `Vec`, an mmap) or a file
/// (read with `pread`, so one `&File` serves any number of readers).
pub trait Backing {
    /// Fills `buf` from byte `offset`; a short read is an `UnexpectedEof` error.
    ///
    /// # Errors
    ///
    /// The underlying I/O error.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl Backing for [u8] {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "page body beyond the end of the stream"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl Backing for Vec<u8> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_exact_at(offset, buf)
    }
}

#[cfg(unix)]
impl Backing for File {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl<T: Backing + ?Sized> Backing for &T {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

impl<T: Backing + ?Sized> Backing for Box<T> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

impl<T: Backing + ?Sized> Backing for std::sync::Arc<T> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(offset, buf)
    }
}

/// What a read does at an address no page populates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Holes {
    /// Fail with [`ReadError::Hole`] naming the first unpopulated address.
    #[default]
    Error,
    /// Read zeros.
    Zero,
}

/// Reads of guest-physical memory: what address translation walks page tables with.
pub trait PhysMemory {
    /// Fills `buf` with the guest-physical bytes at `addr..addr + buf.len()`.
    ///
    /// # Errors
    ///
    /// A hole in the range, or an I/O error of the backing.
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError>;
}

/// A save image opened for random access: the index and the bytes it points into.
///
/// On the real `xl save` file of a 64-bit PV guest:
///
/// ```
/// # use std::io::Read;
/// # let mut path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
/// # // The file ships in the repository (tests/data/xen-4.17/); walk up to the workspace root.
/// # while !path.join("tests/data/xen-4.17").is_dir() { assert!(path.pop(), "tests/data/xen-4.17 not found"); }
/// # let xz = std::fs::File::open(path.join("tests/data/xen-4.17/tiny32-1vcpu.save.xz"))?;
/// # let mut bytes = Vec::new();
/// # xz2::read::XzDecoder::new(xz).read_to_end(&mut bytes)?;
/// use sr_image::{GuestImage, Holes};
///
/// // `bytes` is the decompressed `xl save` file (a `File` works the same, through pread).
/// let image = GuestImage::from_bytes(bytes)?;
/// println!("{} pages populated", image.index().len());
///
/// // The guest wrote "REALXEN-PAGE-<pfn>-" at the start of its test pages; find one.
/// let page = image.index().pages().find(|p| {
///     let mut head = [0u8; 13];
///     image.read_phys(p.pfn << 12, &mut head, Holes::Error).is_ok() && &head == b"REALXEN-PAGE-"
/// });
/// let page = page.expect("a marked page");
/// let mut text = [0u8; 20];
/// image.read_phys((page.pfn << 12) + 13, &mut text[..6], Holes::Error)?;
/// assert!(text[..6].iter().all(u8::is_ascii_digit));
///
/// // Reads may cross pages and holes; a hole is an error unless zeros are asked for.
/// let last = image.index().pages().last().unwrap().pfn;
/// let mut buf = vec![0u8; 8192];
/// assert!(image.read_phys((last << 12) + 4096 - 10, &mut buf, Holes::Error).is_err());
/// image.read_phys((last << 12) + 4096 - 10, &mut buf, Holes::Zero)?;
/// assert!(buf[10..].iter().all(|&b| b == 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct GuestImage<B> {
    index: PageIndex,
    backing: B,
}

impl<B: AsRef<[u8]>> GuestImage<B> {
    /// Indexes a stream held in memory (a `Vec`, an mmap).
    ///
    /// # Errors
    ///
    /// As [`PageIndex::build`].
    pub fn from_bytes(bytes: B) -> Result<GuestImage<SliceBacking<B>>, IndexError> {
        // Over a slice nothing is copied or read for skipped bytes either way; not skipping
        // saves copying the pfn words.
        let index = PageIndex::build(StreamReader::from_slice(bytes.as_ref()))?;
        Ok(GuestImage { index, backing: SliceBacking(bytes) })
    }
}

#[cfg(unix)]
impl GuestImage<File> {
    /// Indexes a stream in a file (seeking past page bodies) and reads it with `pread`.
    ///
    /// # Errors
    ///
    /// As [`PageIndex::build`], or an I/O error of the file.
    pub fn from_file(file: File) -> Result<Self, IndexError> {
        Self::from_file_with(file, IndexLimits::default())
    }

    /// As [`from_file`](Self::from_file), with explicit limits.
    ///
    /// # Errors
    ///
    /// As [`PageIndex::build`], or an I/O error of the file.
    pub fn from_file_with(file: File, limits: IndexLimits) -> Result<Self, IndexError> {
        let mut reader = file.try_clone().map_err(|e| sr_format::Error::io(0, &e))?;
        std::io::Seek::rewind(&mut reader).map_err(|e| sr_format::Error::io(0, &e))?;
        let src = SeekSource::new(reader).map_err(|e| sr_format::Error::io(0, &e))?;
        let index = PageIndex::build_with(StreamReader::new(src).skip_page_bodies(true), limits)?;
        Ok(Self { index, backing: file })
    }
}

/// A [`Backing`] over anything that derefs to bytes.
#[derive(Debug, Clone)]
pub struct SliceBacking<B>(pub B);

impl<B: AsRef<[u8]>> Backing for SliceBacking<B> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.as_ref().read_exact_at(offset, buf)
    }
}

impl<B: Backing> GuestImage<B> {
    /// An image from an index and the bytes of the stream it was built from.
    pub fn new(index: PageIndex, backing: B) -> Self {
        Self { index, backing }
    }

    /// The index.
    pub fn index(&self) -> &PageIndex {
        &self.index
    }

    /// The backing bytes.
    pub fn backing(&self) -> &B {
        &self.backing
    }

    /// Reads the whole page `pfn` into `buf` (`page_size` bytes); `Ok(false)` for a hole
    /// (then `buf` is untouched).
    ///
    /// # Errors
    ///
    /// An I/O error of the backing, or `buf` not one page long.
    pub fn read_page(&self, pfn: u64, buf: &mut [u8]) -> Result<bool, ReadError> {
        let page_size = self.index.page_size();
        let Some(page) = self.index.get(pfn) else { return Ok(false) };
        if buf.len() != page_size {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "buffer is not one page");
            return Err(ReadError::Io { offset: 0, len: buf.len(), source: e });
        }
        self.read_location(page.location, buf)?;
        Ok(true)
    }

    fn read_location(&self, location: PageLocation, buf: &mut [u8]) -> Result<(), ReadError> {
        match location {
            PageLocation::Zero => {
                buf.fill(0);
                Ok(())
            }
            PageLocation::Data(offset) => self.backing.read_exact_at(offset, buf).map_err(|source| ReadError::Io {
                offset,
                len: buf.len(),
                source,
            }),
        }
    }

    /// Reads `buf.len()` bytes of guest-physical memory from `addr`, any length and
    /// alignment, across pages and holes; `holes` says what a hole does.
    ///
    /// # Errors
    ///
    /// [`ReadError::Hole`] with the first unpopulated address (with [`Holes::Error`]), a
    /// range beyond 2^64, or an I/O error.
    pub fn read_phys(&self, addr: u64, buf: &mut [u8], holes: Holes) -> Result<(), ReadError> {
        let len = buf.len() as u64;
        if len > 0 && addr.checked_add(len - 1).is_none() {
            return Err(ReadError::Overflow { addr, len });
        }
        let shift = self.index.page_shift();
        let page_size = 1u64 << shift;
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr + done as u64;
            let pfn = at >> shift;
            let in_page = (at & (page_size - 1)) as usize;
            let n = (page_size as usize - in_page).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match self.index.get(pfn) {
                Some(page) => match page.location {
                    PageLocation::Zero => out.fill(0),
                    PageLocation::Data(offset) => {
                        self.read_location(PageLocation::Data(offset + in_page as u64), out)?
                    }
                },
                None if holes == Holes::Zero => out.fill(0),
                None => return Err(ReadError::Hole { addr: at, pfn }),
            }
            done += n;
        }
        Ok(())
    }
}

impl<B: Backing> PhysMemory for GuestImage<B> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        GuestImage::read_phys(self, addr, buf, Holes::Error)
    }
}
