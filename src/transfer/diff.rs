//! Streaming diff_id computation: compressed bytes are pushed in as they arrive from the network, decompressed
//! on the fly and hashed, so a layer is verified against the config's `rootfs.diff_ids` without a second pass.

use crate::digest::{Digest, Hasher};
use crate::oci::Compression;
use std::io::{self, Write};

pub enum DiffHasher {
    Plain(Box<Hasher>),
    Gzip(Box<flate2::write::MultiGzDecoder<Hasher>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Hasher>>),
}

impl DiffHasher {
    /// `zstd_window_log_max` bounds the memory a zstd frame may demand (its window); a frame needing more is
    /// refused as an error rather than allowed to exhaust a small NAS's memory.
    pub fn new(c: Compression, zstd_window_log_max: u32) -> io::Result<DiffHasher> {
        Ok(match c {
            Compression::None => DiffHasher::Plain(Box::default()),
            Compression::Gzip => DiffHasher::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Hasher::default()))),
            Compression::Zstd => {
                let mut d = zstd::stream::write::Decoder::new(Hasher::default())?;
                d.window_log_max(zstd_window_log_max)?;
                DiffHasher::Zstd(Box::new(d))
            }
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
            let mut h = DiffHasher::new(c, 27).unwrap();
            for chunk in bytes.chunks(777) {
                h.update(chunk).unwrap();
            }
            assert_eq!(h.finish().unwrap(), (want.clone(), data.len() as u64), "{c:?}");
        }
    }

    #[test]
    fn zstd_window_over_the_limit_is_refused() {
        let data = vec![7u8; 4 << 20];
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        enc.set_parameter(zstd::stream::raw::CParameter::WindowLog(22)).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &data).unwrap();
        let frame = enc.finish().unwrap();
        let feed = |wlog| -> io::Result<(Digest, u64)> {
            let mut h = DiffHasher::new(Compression::Zstd, wlog)?;
            h.update(&frame)?;
            h.finish()
        };
        assert!(feed(20).is_err(), "a 4 MiB window under a 1 MiB limit");
        assert_eq!(feed(22).unwrap(), (Digest::of(&data), data.len() as u64));
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut h = DiffHasher::new(Compression::Gzip, 27).unwrap();
        let r = h
            .update(b"this is not gzip at all, not even close")
            .and_then(|_| h.finish().map(|_| ()));
        assert!(r.is_err());
    }
}
