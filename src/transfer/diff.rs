//! Streaming diff_id computation: compressed bytes are pushed in as they arrive from the network, decompressed
//! on the fly and hashed, so a layer is verified against the config's `rootfs.diff_ids` without a second pass.

use crate::digest::{Digest, Hasher};
use crate::registry::manifest::Compression;
use std::io::{self, Write};

pub enum DiffHasher {
    Plain(Box<Hasher>),
    Gzip(Box<flate2::write::MultiGzDecoder<Hasher>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Hasher>>),
}

impl DiffHasher {
    pub fn new(c: Compression) -> io::Result<DiffHasher> {
        Ok(match c {
            Compression::None => DiffHasher::Plain(Box::default()),
            Compression::Gzip => DiffHasher::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Hasher::default()))),
            Compression::Zstd => DiffHasher::Zstd(Box::new(zstd::stream::write::Decoder::new(Hasher::default())?)),
        })
    }

    /// Feed compressed bytes. A decompression error means the layer is corrupt.
    pub fn update(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            DiffHasher::Plain(h) => {
                h.update(buf);
                Ok(())
            }
            DiffHasher::Gzip(d) => d.write_all(buf),
            DiffHasher::Zstd(d) => d.write_all(buf),
        }
    }

    /// The uncompressed digest (diff_id) and size.
    pub fn finish(self) -> io::Result<(Digest, u64)> {
        match self {
            DiffHasher::Plain(h) => Ok(h.finish()),
            DiffHasher::Gzip(d) => Ok(d.finish()?.finish()),
            DiffHasher::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner().finish())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_codecs_yield_the_uncompressed_digest() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let want = Digest::of(&data);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for (c, bytes) in [
            (Compression::None, data.clone()),
            (Compression::Gzip, gz),
            (Compression::Zstd, zs),
        ] {
            let mut h = DiffHasher::new(c).unwrap();
            for chunk in bytes.chunks(777) {
                h.update(chunk).unwrap();
            }
            assert_eq!(h.finish().unwrap(), (want.clone(), data.len() as u64), "{c:?}");
        }
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut h = DiffHasher::new(Compression::Gzip).unwrap();
        let r = h
            .update(b"this is not gzip at all, not even close")
            .and_then(|_| h.finish().map(|_| ()));
        assert!(r.is_err());
    }
}
