//! Writing tar archives, for `save` (and reading helpers for `load`): ustar headers from the `tar` crate, the
//! bytes written here, streamed, with sizes known up front so that nothing is held in memory.

use super::ImageError;
use crate::digest::Digest;
use crate::oci::Compression;
use crate::registry::manifest::{parse_manifest, ImageManifest, Manifest};
use std::io::{self, Read, Write};

/// The uncompressed content of a stored layer blob, as a stream.
pub fn decompressed<'a>(r: impl Read + 'a, c: Compression, zstd_window_log_max: u32) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(r)?;
            d.window_log_max(zstd_window_log_max)?;
            Box::new(d)
        }
    })
}

/// What the first bytes of a layer say about its compression.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, mtime: u64) -> TarWriter<W> {
        TarWriter { out, mtime }
    }

    fn header(&mut self, path: &str, size: u64, kind: tar::EntryType, mode: u32) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }

    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        self.header(path, 0, tar::EntryType::Directory, 0o755)
    }

    pub fn bytes(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.file(path, data.len() as u64, &mut &data[..])
    }

    /// An entry of exactly `size` bytes from `body`; a body that is shorter or longer is an error (the archive
    /// would be corrupt).
    pub fn file(&mut self, path: &str, size: u64, body: &mut dyn Read) -> io::Result<()> {
        self.header(path, size, tar::EntryType::Regular, 0o644)?;
        let copied = io::copy(&mut body.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: {copied} of {size} bytes"),
            ));
        }
        let mut probe = [0u8; 1];
        if body.read(&mut probe)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: longer than {size} bytes"),
            ));
        }
        let pad = (512 - size % 512) % 512;
        self.out.write_all(&vec![0u8; pad as usize])
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The image manifest a layout's entry `top` (of media type `media_type`, when said) stands for on `platform`:
/// itself, or its index's entry for the platform; with the manifests on the way (what an image records). `read`
/// gives a manifest's bytes by digest (from an archive, or the store).
pub(crate) fn image_manifest(
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, ImageError>,
    top: &Digest,
    media_type: Option<&str>,
    platform: &crate::platform::Platform,
) -> Result<(Vec<(Digest, String)>, ImageManifest), ImageError> {
    let idx = match parse_manifest(&read(top)?, media_type)? {
        Manifest::Image(m) => return Ok((vec![(top.clone(), m.media_type.clone())], m)),
        Manifest::Index(idx) => idx,
    };
    let entry = idx.select(platform)?;
    match parse_manifest(&read(&entry.digest)?, Some(&entry.media_type))? {
        Manifest::Image(m) => Ok((
            vec![
                (top.clone(), idx.media_type.clone()),
                (entry.digest.clone(), m.media_type.clone()),
            ],
            m,
        )),
        Manifest::Index(_) => Err(ImageError::InvalidParameter(format!(
            "index {top} points at another index"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_archives_read_back() {
        let mut w = TarWriter::new(Vec::new(), 1_700_000_000);
        w.dir("blobs/").unwrap();
        w.bytes("oci-layout", b"{}").unwrap();
        let big = vec![7u8; 1000];
        w.file("blobs/sha256/x", 1000, &mut &big[..]).unwrap();
        assert!(w.file("short", 10, &mut &b"abc"[..]).is_err());
        let mut w2 = TarWriter::new(Vec::new(), 0);
        assert!(w2.file("long", 2, &mut &b"abc"[..]).is_err());
        let bytes = TarWriter::new(Vec::new(), 0).finish().unwrap();
        assert_eq!(bytes.len(), 1024);
        let mut w = TarWriter::new(Vec::new(), 5);
        w.bytes("a", b"hello").unwrap();
        w.file("b", 1000, &mut &big[..]).unwrap();
        let tar = w.finish().unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<(String, u64, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.size(),
                    e.header().mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(names, vec![("a".into(), 5, 5), ("b".into(), 1000, 5)]);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"ustar"), Compression::None);
    }
}
