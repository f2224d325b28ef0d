//! Password hashing: argon2id at the OWASP minimum (19 MiB, 2 passes, 1 lane), in PHC strings.
//!
//! Each hash works in 19 MiB of its own. Left to `malloc`, that memory stays with the process: glibc raises its
//! mmap threshold after the first large free, so later blocks come from a thread's arena and are kept (60 logins
//! took a daemon from 9 MB to 846 MB). Here every hash gets a private anonymous mapping, unmapped when it ends,
//! so a login costs its 19 MiB only while it runs.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

/// A hash's working memory: `len` blocks in an anonymous mapping of their own, returned to the system on drop.
struct Arena {
    ptr: NonNull<Block>,
    len: usize,
}

impl Arena {
    fn new(len: usize) -> Option<Arena> {
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        let bytes = NonZeroUsize::new(len.checked_mul(Block::SIZE)?)?;
        // SAFETY: a new private anonymous mapping aliases nothing; its pages are zeroed, which is a valid `Block`
        // (plain `u64`s), and page alignment exceeds `Block`'s 64-byte alignment.
        let p = unsafe {
            mmap_anonymous(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .ok()?;
        Some(Arena { ptr: p.cast(), len })
    }
}

impl AsMut<[Block]> for Arena {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: `ptr` maps `len` initialised blocks that only this `Arena` reaches, for as long as it lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this length and no reference into it outlives `self`.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len * Block::SIZE) } {
            log::warn!("unmapping a password hash's memory: {e}");
        }
    }
}

// SAFETY: the mapping is owned by one `Arena` and moves with it; nothing else points into it.
unsafe impl Send for Arena {}

/// The raw argon2 output of `password` under `salt` and `params`, computed in an [`Arena`].
fn derive(params: Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Option<()> {
    let blocks = params.block_count();
    let ctx = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let arena = Arena::new(blocks)?;
    ctx.hash_password_into_with_memory(password, salt, out, arena).ok()
}

/// argon2id of `password` with a fresh random salt, in PHC form (what `argon2`'s `PasswordHasher` writes).
pub fn hash(password: &str, salt: [u8; 16]) -> String {
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    derive(params.clone(), password.as_bytes(), &salt, &mut out).expect("argon2 with the default parameters");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes encode");
    let hash = Output::new(&out).expect("32 bytes of output");
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        hash
    )
}

/// Whether `password` matches the argon2id PHC string `phc`, under the parameters it names. A string that does
/// not parse, another algorithm, or memory beyond [`MAX_M_COST`] never match.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&h) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST || Algorithm::try_from(h.algorithm) != Ok(Algorithm::Argon2id) {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if derive(params, password.as_bytes(), salt, &mut out).is_none() {
        return false;
    }
    // constant time: a comparison that stops early would tell a guesser how many bytes matched
    out.iter()
        .zip(expected.as_bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The most memory a stored hash may ask for (64 MiB): a database row must not make a login map gigabytes.
pub const MAX_M_COST: u32 = 64 * 1024;

/// Random bytes in the shape of a hash with the parameters [`hash`] uses (no password is known to match them):
/// checked against when a login names an unknown user, so that such a login costs the time of a real one
/// without hashing anything at start.
pub const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$2Ob6m3nLq0U3cuNrMMz8aA$rLkbNl4d5rVHz9Sd7UnYXzXbR7YHc2HxSnaQ2JxeS0E";

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn hashes_are_argon2s_own_phc_strings_both_ways() {
        let phc = hash("correct horse", [7u8; 16]);
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // the library's own verifier accepts ours…
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"correct hors", &parsed).is_err());
        // …and ours accepts the library's
        use argon2::password_hash::PasswordHasher;
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &SaltString::encode_b64(&[9u8; 16]).unwrap())
            .unwrap()
            .to_string();
        assert!(verify("battery staple", &theirs));
        assert!(!verify("battery stapler", &theirs));
        assert!(verify("correct horse", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn malformed_or_greedy_hashes_never_match() {
        for bad in [
            "",
            "plain",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            // a stored hash asking for 4 GiB is refused before any memory is mapped
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$rLkbNl4d5rVHz9Sd7UnYXzXbR7YHc2HxSnaQ2JxeS0E",
            // argon2i is weaker against side channels than the argon2id this module writes
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$rLkbNl4d5rVHz9Sd7UnYXzXbR7YHc2HxSnaQ2JxeS0E",
        ] {
            assert!(!verify("x", bad), "{bad}");
        }
    }

    #[test]
    fn the_decoy_costs_what_a_real_hash_costs() {
        let d = PasswordHash::new(DECOY).unwrap();
        let real = hash("x", [1u8; 16]);
        let r = PasswordHash::new(&real).unwrap();
        assert_eq!(Params::try_from(&d).unwrap(), Params::try_from(&r).unwrap());
        assert_eq!(d.algorithm, r.algorithm);
        assert_eq!(d.hash.unwrap().len(), r.hash.unwrap().len());
        assert!(!verify("", DECOY));
    }

    /// The working memory goes back: 20 hashes in a row leave the process's anonymous memory where one left it.
    ///
    /// Under qemu-user (cross/test.sh) `/proc/self/status` is the emulator's own: its RssAnon counts the
    /// translated-code cache and every other test thread of the binary, so the figure says nothing about the
    /// hash there and the check is made on the host only.
    #[test]
    fn a_hash_returns_its_memory() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        if status
            .lines()
            .any(|l| l.starts_with("Name:") && l[5..].trim().starts_with("qemu-"))
        {
            eprintln!("under qemu-user: RssAnon is the emulator's, not checked");
            return;
        }
        fn anon_kb() -> u64 {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        }
        let phc = hash("pw", [3u8; 16]);
        let before = anon_kb();
        let t = std::thread::spawn(move || {
            for _ in 0..20 {
                assert!(verify("pw", &phc));
            }
        });
        t.join().unwrap();
        let grown = anon_kb().saturating_sub(before);
        // one kept hash would be 19,456 kB; test threads of their own allocate a little besides
        assert!(grown < 8 * 1024, "anonymous memory grew by {grown} kB over 20 hashes");
    }
}
