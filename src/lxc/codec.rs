//! Compressed tarballs as a plain byte stream: the codec is told by the magic bytes (xz, gzip, zstd or none),
//! never by the file name, and decoding runs on a thread of its own feeding a bounded queue, so decompression
//! and writing the tree overlap on two cores as `tar -xJ` does with its `xz -d` child.

use std::io::{self, Read, Write};
use std::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Xz,
    Gzip,
    Zstd,
    None,
}

impl Codec {
    pub fn sniff(head: &[u8]) -> Codec {
        if head.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
            Codec::Xz
        } else if head.starts_with(&[0x1F, 0x8B]) {
            Codec::Gzip
        } else if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Codec::Zstd
        } else {
            Codec::None
        }
    }

    /// The file name ending for a rootfs in this codec.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Xz => "tar.xz",
            Codec::Gzip => "tar.gz",
            Codec::Zstd => "tar.zst",
            Codec::None => "tar",
        }
    }
}

/// Decoded chunks in flight between the decoder thread and the reader: the memory bound of the pipe.
const QUEUE: usize = 4;
const CHUNK: usize = 1 << 20;

/// The most the xz decoder may take to decode blocks on several threads, whatever the board's budget: DESIGN
/// §7 gives a whole unpack 32 MB. Multi-threaded decoding keeps each thread's block in and out (`xz -T2 -3`
/// makes 12 MiB blocks: the unpack peaked at 87 MB); one thread needs the dictionary and little else, and
/// still decodes faster than GNU tar unpacks (tests/bench/lxc.sh).
pub const XZ_DECODE_THREADS_MEMORY: u64 = 16 << 20;

/// A decoder for `r` (already past nothing: the magic is peeked, not consumed). `xz_memory` is what the xz
/// decoder may take to decode blocks on several threads (at most [`XZ_DECODE_THREADS_MEMORY`]); past it
/// liblzma decodes on one (it never fails for it).
fn decoder(r: Box<dyn Read + Send>, codec: Codec, xz_memory: u64) -> io::Result<Box<dyn Read + Send>> {
    Ok(match codec {
        Codec::Xz => {
            let xz_memory = xz_memory.min(XZ_DECODE_THREADS_MEMORY);
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(if xz_memory == 0 { 1 } else { cpus() })
                .memlimit_threading(xz_memory.max(1))
                .memlimit_stop(u64::MAX)
                .decoder()
                .map_err(io::Error::other)?;
            Box::new(liblzma::read::XzDecoder::new_stream(r, stream))
        }
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(
            256 << 10,
            r,
        ))),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Codec::None => r,
    })
}

fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
}

/// An xz encoder (preset 3, CRC64) writing to `w`: one thread per CPU when `xz_memory` allows the encoder's
/// blocks (64 MiB or more), else on one. liblzma has no memory limit for its encoder, so the budget decides.
pub fn xz_encoder<W: Write>(w: W, xz_memory: u64) -> io::Result<liblzma::write::XzEncoder<W>> {
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(if xz_memory >= (64 << 20) { cpus() } else { 1 })
        .preset(3)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .map_err(io::Error::other)?;
    Ok(liblzma::write::XzEncoder::new_stream(w, stream))
}

/// How to decode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoding {
    /// On a thread of its own (large archives), else inline.
    pub pipelined: bool,
    /// Memory the xz decoder may take for threads (0: one thread); see [`decoder`].
    pub xz_memory: u64,
}

/// Peek the codec of `r` and return it with a reader of the decoded bytes.
pub fn open(mut r: Box<dyn Read + Send>, how: Decoding) -> io::Result<(Codec, Box<dyn Read + Send>)> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let codec = Codec::sniff(&head[..n]);
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(head[..n].to_vec()).chain(r));
    let dec = decoder(whole, codec, how.xz_memory)?;
    if !how.pipelined || codec == Codec::None {
        return Ok((codec, dec));
    }
    Ok((codec, Box::new(Piped::spawn(dec)?)))
}

/// The reading end of a decoder thread. Dropping it stops the thread at its next chunk.
pub struct Piped {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Piped {
    fn spawn(mut dec: Box<dyn Read + Send>) -> io::Result<Piped> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new().name("decode".into()).spawn(move || loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            let r = loop {
                match dec.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(k) => {
                        filled += k;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(filled);
            let end = filled == 0;
            let sent = match r {
                Err(e) => {
                    // the bytes before the error first, then the error
                    if filled > 0 && tx.send(Ok(buf)).is_err() {
                        return;
                    }
                    let _ = tx.send(Err(e));
                    return;
                }
                Ok(()) if end => return,
                Ok(()) => tx.send(Ok(buf)),
            };
            if sent.is_err() {
                return;
            }
        })?;
        Ok(Piped {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

impl Read for Piped {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(codec: Codec, bytes: Vec<u8>, plain: &[u8]) {
        for pipelined in [false, true] {
            let how = Decoding {
                pipelined,
                xz_memory: 64 << 20,
            };
            let (c, mut r) = open(Box::new(io::Cursor::new(bytes.clone())), how).unwrap();
            assert_eq!(c, codec);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain, "{codec:?} pipelined={pipelined}");
        }
    }

    #[test]
    fn every_codec_by_its_magic() {
        let plain: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7 + i / 5000) as u8).collect();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        roundtrip(Codec::Xz, xz.finish().unwrap(), &plain);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        roundtrip(Codec::Gzip, gz.finish().unwrap(), &plain);
        roundtrip(Codec::Zstd, zstd::encode_all(&plain[..], 1).unwrap(), &plain);
        roundtrip(Codec::None, plain.clone(), &plain);
        roundtrip(Codec::None, b"ab".to_vec(), b"ab");
    }

    #[test]
    fn a_truncated_stream_is_an_error_also_through_the_pipe() {
        let plain = vec![7u8; 2_000_000];
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&plain).unwrap();
        let mut bytes = xz.finish().unwrap();
        bytes.truncate(bytes.len() / 2);
        let how = Decoding {
            pipelined: true,
            xz_memory: 0,
        };
        let (_, mut r) = open(Box::new(io::Cursor::new(bytes)), how).unwrap();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
    }
}
