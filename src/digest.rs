//! Content digests.
//!
//! [`Digest`] is validated on parse: the only way to hold one is to have checked it, so code that takes a `Digest`
//! never re-checks. The store only ever addresses content by sha256, so other algorithms parse (the reference
//! grammar allows them) but are refused where content is addressed ([`Digest::sha256_hex`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A content digest `algorithm:hex`, as in the OCI image spec.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// Invariant: `algo:hex`, algorithm per the grammar, hex lowercase and of the algorithm's length.
    s: String,
    colon: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest format: {0:?}")]
    Format(String),
    #[error("unsupported digest algorithm: {0:?}")]
    Algorithm(String),
}

impl Digest {
    /// Digest of a complete byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        Digest::from_sha256(d.as_ref())
    }

    fn from_sha256(raw: &[u8]) -> Digest {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in raw {
            s.push_str(&format!("{b:02x}"));
        }
        Digest { s, colon: 6 }
    }

    pub fn algorithm(&self) -> &str {
        &self.s[..self.colon]
    }

    pub fn hex(&self) -> &str {
        &self.s[self.colon + 1..]
    }

    /// The hex of a sha256 digest, the only kind the content store addresses.
    pub fn sha256_hex(&self) -> Result<&str, DigestError> {
        if self.algorithm() == "sha256" {
            Ok(self.hex())
        } else {
            Err(DigestError::Algorithm(self.algorithm().to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// The 12-character short form Docker prints for layer and image ids.
    pub fn short(&self) -> &str {
        &self.hex()[..12.min(self.hex().len())]
    }

    /// Build from a bare 64-character lowercase sha256 hex string.
    pub fn from_sha256_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::from_str(&format!("sha256:{hex}"))
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Grammar: `algorithm ":" encoded`, algorithm `[a-z0-9]+([+._-][a-z0-9]+)*`. sha256 and sha512 must have their
    /// exact lowercase hex length; other algorithms need at least 32 hex characters (the reference grammar).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DigestError::Format(s.to_string());
        let colon = s.find(':').ok_or_else(bad)?;
        let (algo, hex) = (&s[..colon], &s[colon + 1..]);
        let algo_ok = !algo.is_empty()
            && algo
                .split(['+', '.', '_', '-'])
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if !algo_ok {
            return Err(bad());
        }
        let want_len = match algo {
            "sha256" => Some(64),
            "sha512" => Some(128),
            _ => None,
        };
        let hex_ok = match want_len {
            Some(n) => hex.len() == n && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            None => hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        };
        if !hex_ok {
            return Err(bad());
        }
        Ok(Digest {
            s: s.to_string(),
            colon,
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.s)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_str(&s).map_err(serde::de::Error::custom)
    }
}

/// A `Write` sink that hashes with sha256 and counts what passes through it, then discards it.
/// Used behind decompressors to compute a layer's diff_id and uncompressed size in one pass.
pub struct Hasher {
    ctx: ring::digest::Context,
    len: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }
}

impl Hasher {
    pub fn update(&mut self, buf: &[u8]) {
        self.ctx.update(buf);
        self.len += buf.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256(self.ctx.finish().as_ref()), self.len)
    }

    /// The digest of what was hashed so far, without ending the hash.
    pub fn peek(&self) -> Digest {
        Digest::from_sha256(self.ctx.clone().finish().as_ref())
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Content that does not hash to the digest it is stored under: the error inside the `io::Error`
/// ([`io::ErrorKind::InvalidData`]) a [`Verified`] reader fails with, so that whoever reads can tell damage from
/// a failing disk or client and put the content aside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expected} is corrupt: its content hashes to {found} ({len} bytes)")]
pub struct Corrupt {
    pub expected: Digest,
    pub found: Digest,
    pub len: u64,
}

impl Corrupt {
    /// The corruption an I/O error reports, if it is one.
    pub fn of(e: &io::Error) -> Option<&Corrupt> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Corrupt>())
    }
}

/// A reader that hashes what it passes on and, at the end of its input, fails unless the content is
/// `expected`: a damaged blob read whole is never taken for good. [`Verified::finish`] reads what the consumer
/// left (a decompressor stops at its frame's end) and checks.
pub struct Verified<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    checked: bool,
}

impl<R: Read> Verified<R> {
    pub fn new(inner: R, expected: Digest) -> Verified<R> {
        Verified {
            inner,
            hasher: Hasher::default(),
            expected,
            checked: false,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        if self.checked {
            return Ok(());
        }
        self.checked = true;
        let found = self.hasher.peek();
        if found == self.expected {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            Corrupt {
                expected: self.expected.clone(),
                found,
                len: self.hasher.len(),
            },
        ))
    }

    /// Read the rest and check the whole.
    pub fn finish(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink())?;
        self.check()
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        let (d, n) = h.finish();
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);
    }

    #[test]
    fn parse_table() {
        let good = [
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            "multihash+base58:0123456789abcdef0123456789abcdef",
        ];
        for g in good {
            assert_eq!(g.parse::<Digest>().unwrap().as_str(), g, "{g}");
        }
        let bad = [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855a",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "foo:0123",
            "sha256:../../../../etc/passwd000000000000000000000000000000000000000",
        ];
        for b in bad {
            assert!(b.parse::<Digest>().is_err(), "{b:?} must not parse");
        }
    }

    #[test]
    fn store_addresses_only_sha256() {
        let d: Digest = "multihash+base58:0123456789abcdef0123456789abcdef".parse().unwrap();
        assert!(d.sha256_hex().is_err());
        assert_eq!(Digest::of(b"x").short().len(), 12);
    }

    #[test]
    fn verified_reads_pass_good_content_and_fail_damaged_content_at_its_end() {
        let good = b"layer bytes".to_vec();
        let d = Digest::of(&good);
        let mut out = Vec::new();
        Verified::new(&good[..], d.clone()).read_to_end(&mut out).unwrap();
        assert_eq!(out, good);
        let mut bad = good.clone();
        bad[3] ^= 1;
        let e = Verified::new(&bad[..], d.clone())
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let c = Corrupt::of(&e).expect("a corruption, not another error");
        assert_eq!(
            (&c.expected, &c.found, c.len),
            (&d, &Digest::of(&bad), bad.len() as u64)
        );
        // a consumer that stops early: finish reads the rest and checks
        let mut v = Verified::new(&bad[..], d.clone());
        v.read_exact(&mut [0u8; 2]).unwrap();
        assert!(Corrupt::of(&v.finish().unwrap_err()).is_some());
        let mut v = Verified::new(&good[..], d);
        v.read_exact(&mut [0u8; 2]).unwrap();
        v.finish().unwrap();
    }
}
