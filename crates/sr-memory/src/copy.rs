//! File-to-file copies inside the kernel, for backends and writers that move pages between
//! an image file and a stream file without passing them through user memory.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// Copies `len` bytes of `src` at `from` to `dst` at `to` (or, with `None`, at and advancing
/// `dst`'s file position) with `copy_file_range`, falling back to a bounded buffer where
/// the kernel cannot copy between these files (a pipe, another file system, an old kernel).
///
/// A `src` that ends early is an `UnexpectedEof` error.
pub fn copy_file_range_all(
    src: &File,
    mut from: u64,
    dst: &File,
    mut to: Option<u64>,
    mut len: usize,
) -> io::Result<()> {
    while len > 0 {
        match rustix::fs::copy_file_range(src, Some(&mut from), dst, to.as_mut(), len) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "source ends inside the copy")),
            Ok(n) => len -= n,
            Err(rustix::io::Errno::INTR) => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL,
            ) => {
                return copy_through_buffer(src, from, dst, to, len);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The fallback of [`copy_file_range_all`].
fn copy_through_buffer(
    src: &File,
    mut from: u64,
    mut dst: &File,
    mut to: Option<u64>,
    mut len: usize,
) -> io::Result<()> {
    let mut buf = vec![0u8; len.min(1 << 20)];
    while len > 0 {
        let chunk = &mut buf[..len.min(1 << 20)];
        src.read_exact_at(chunk, from)?;
        match to.as_mut() {
            Some(to) => {
                dst.write_all_at(chunk, *to)?;
                *to += chunk.len() as u64;
            }
            None => dst.write_all(chunk)?,
        }
        from += chunk.len() as u64;
        len -= chunk.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_at_offsets_and_at_the_position_and_through_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("src");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&src_path, &data).unwrap();
        let src = File::open(&src_path).unwrap();

        let dst = File::create(dir.path().join("a")).unwrap();
        copy_file_range_all(&src, 1000, &dst, Some(77), 50_000).unwrap();
        let a = std::fs::read(dir.path().join("a")).unwrap();
        assert_eq!(&a[77..], &data[1000..51_000]);

        let mut dst = File::create(dir.path().join("b")).unwrap();
        dst.write_all(b"head").unwrap();
        copy_file_range_all(&src, 3, &dst, None, 10).unwrap();
        dst.write_all(b"tail").unwrap();
        let b = std::fs::read(dir.path().join("b")).unwrap();
        assert_eq!(b, [&b"head"[..], &data[3..13], b"tail"].concat());

        let err = copy_file_range_all(&src, 99_990, &dst, None, 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
