//! Secrets at rest (registry credentials of running downloads, later the station's stored registry passwords):
//! sealed with ChaCha20-Poly1305 under a key kept in its own file (mode 0600) beside the database, never inside
//! it, so that a copy of `depot.db` (a backup, a support bundle, its WAL, its free pages) reveals nothing.
//!
//! Sealed form: `v1:` + base64(nonce ‖ ciphertext ‖ tag), a random 96-bit nonce per seal.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::io;
use std::path::Path;

const PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;
/// Binds a sealed value to its purpose: a value sealed for something else does not open here.
const AAD: &[u8] = b"depot credentials v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("key file {path}: {source}")]
    KeyFile { path: String, source: io::Error },
    #[error("key file {0} is not a {KEY_LEN}-byte key")]
    BadKey(String),
    #[error("a sealed secret does not open with this data root's key (the key file was replaced?)")]
    Open,
}

pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// The key in `path`, created (random, mode 0600, written atomically) when there is none yet.
    pub fn open_or_create(path: &Path) -> Result<Sealer, SecretError> {
        let err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let rng = SystemRandom::new();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut k = [0u8; KEY_LEN];
                rng.fill(&mut k).map_err(|_| err(io::Error::other("no randomness")))?;
                // Survives a crash as: no key file (a new one is made next time: nothing was sealed yet) or the
                // whole key.
                crate::fsutil::write_atomic(path, &k, 0o600).map_err(err)?;
                k.to_vec()
            }
            Err(e) => return Err(err(e)),
        };
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SecretError::BadKey(path.display().to_string()))?;
        Ok(Sealer {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    /// A sealer with a random key that lives only in memory (tests).
    pub fn ephemeral() -> Sealer {
        let rng = SystemRandom::new();
        let mut k = [0u8; KEY_LEN];
        rng.fill(&mut k).expect("system randomness");
        Sealer {
            key: LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k).expect("32 bytes")),
            rng,
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut buf)
            .expect("chacha20-poly1305 seals any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        )
    }

    /// Whether `s` is in sealed form (older databases held plain text).
    pub fn is_sealed(s: &str) -> bool {
        s.starts_with(PREFIX)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b).ok())
            .filter(|r| r.len() >= NONCE_LEN)
            .ok_or(SecretError::Open)?;
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut buf)
            .map_err(|_| SecretError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let dir = crate::testutil::tempdir();
        let key = dir.join("credentials.key");
        let s = Sealer::open_or_create(&key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let a = s.seal(b"{\"password\":\"hunter2\"}");
        let b = s.seal(b"{\"password\":\"hunter2\"}");
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(Sealer::is_sealed(&a) && !a.contains("hunter2"));
        assert_eq!(s.open(&a).unwrap(), b"{\"password\":\"hunter2\"}");
        // the same key file opens it again; another key does not
        assert_eq!(
            Sealer::open_or_create(&key).unwrap().open(&a).unwrap(),
            b"{\"password\":\"hunter2\"}"
        );
        assert!(matches!(Sealer::ephemeral().open(&a), Err(SecretError::Open)));
        let mut t = a.clone().into_bytes();
        let i = t.len() - 5;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        assert!(s.open(&String::from_utf8(t).unwrap()).is_err(), "tampering is detected");
        assert!(s.open("plain text").is_err());
        std::fs::write(&key, b"short").unwrap();
        assert!(matches!(Sealer::open_or_create(&key), Err(SecretError::BadKey(_))));
    }
}
