//! Paths a client names inside directories the owner allowed (exports, container unpacks), held so that no
//! later change of the path can lead a write out of them.
//!
//! Checking a path and writing through it later is a race: between the two, a directory on the way can be
//! swapped for a symlink (`renameat2(RENAME_EXCHANGE)` in a loop did it 38 times in 132 requests). Here the
//! parent directory is opened once, beneath the allowed directory's descriptor and following no symlink —
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (5.6+), a walk of `openat(O_NOFOLLOW)`
//! one component at a time on older kernels such as QTS's — and every later step goes through that descriptor,
//! as `/proc/self/fd/N/NAME`: the kernel resolves `/proc/self/fd/N` to the open directory itself, wherever its
//! path now leads.

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A name inside a directory held open.
#[derive(Debug)]
pub struct Anchored {
    dir: OwnedFd,
    name: OsString,
}

impl Anchored {
    /// The path of the name through the held directory; valid while `self` lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd())).join(&self.name)
    }

    /// Whether the name is a symlink now.
    fn is_symlink(&self) -> bool {
        nix::sys::stat::fstatat(
            Some(self.dir.as_raw_fd()),
            self.name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    }
}

/// How the directories beneath an allowed one are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// `openat2` where the kernel has it, else the walk.
    Best,
    /// The `O_NOFOLLOW` walk alone (what kernels before 5.6 get; `DEPOT_NO_OPENAT2=1` forces it, for tests).
    Walk,
}

impl Resolve {
    pub fn from_env() -> Resolve {
        match std::env::var_os("DEPOT_NO_OPENAT2") {
            Some(v) if v == "1" => Resolve::Walk,
            _ => Resolve::Best,
        }
    }
}

/// What a caller limited to `allowed` may write at `path`: [`anchor`] as the environment says (see
/// [`Resolve::from_env`]), and not a symlink at the end either. `None` when `path` is outside, or its name is a
/// symlink; an error (ENOENT for a missing directory, ELOOP/EXDEV for a symlink on the way) when the parent
/// cannot be held.
pub fn hold(path: &Path, allowed: &[PathBuf]) -> io::Result<Option<Anchored>> {
    Ok(anchor(path, allowed, Resolve::from_env())?.filter(|a| !a.is_symlink()))
}

/// `path` (absolute, no `.` or `..`) held by its parent directory, when that parent is one of `allowed` or
/// beneath one with no symlink on the way. The allowed directories themselves are the owner's configuration
/// and may be symlinks; `None` when `path` is not inside any of them.
pub fn anchor(path: &Path, allowed: &[PathBuf], how: Resolve) -> io::Result<Option<Anchored>> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Ok(None);
    }
    for root in allowed {
        // the request may name the allowed directory as configured or as it resolves
        let real = std::fs::canonicalize(root).ok();
        let Some(rest) = std::iter::once(root.as_path())
            .chain(real.as_deref())
            .find_map(|r| parent.strip_prefix(r).ok())
        else {
            continue;
        };
        let root_fd = open_dir_at(libc::AT_FDCWD, root.as_os_str(), OFlag::empty())?;
        let dir = if rest.as_os_str().is_empty() {
            root_fd
        } else {
            open_beneath(&root_fd, rest, how)?
        };
        return Ok(Some(Anchored {
            dir,
            name: name.to_os_string(),
        }));
    }
    Ok(None)
}

fn open_dir_at(dir: RawFd, name: &OsStr, extra: OFlag) -> io::Result<OwnedFd> {
    let fd = openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | extra,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open the directory `rel` (relative, plain names only) beneath `base`, following no symlink.
pub fn open_beneath(base: &OwnedFd, rel: &Path, how: Resolve) -> io::Result<OwnedFd> {
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path"));
    }
    if how == Resolve::Best {
        match openat2_beneath(base.as_raw_fd(), rel) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            r => return r,
        }
    }
    let mut cur = open_dir_at(base.as_raw_fd(), OsStr::new("."), OFlag::empty())?;
    for c in rel.components() {
        cur = open_dir_at(cur.as_raw_fd(), c.as_os_str(), OFlag::O_NOFOLLOW)?;
    }
    Ok(cur)
}

/// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: ENOSYS before Linux 5.6 (and EPERM under seccomp
/// filters that do not know it), which the caller answers with the walk.
fn openat2_beneath(dir: RawFd, rel: &Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: open_how is plain data; zeroed is its documented default for the fields not set.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: the pointers are valid for the call: a NUL-terminated path and an open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathBuf {
        let t = std::env::temp_dir().join(format!(
            "beneath-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&t);
        for d in ["allowed/a/b", "outside"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::os::unix::fs::symlink(t.join("outside"), t.join("allowed/a/link")).unwrap();
        std::os::unix::fs::symlink(t.join("allowed"), t.join("alias")).unwrap();
        t
    }

    #[test]
    fn only_plain_directories_beneath_an_allowed_one_both_ways() {
        let t = tree();
        let allowed = vec![t.join("alias")];
        for how in [Resolve::Best, Resolve::Walk] {
            let a = anchor(&t.join("alias/a/b/x.tar"), &allowed, how).unwrap().unwrap();
            std::fs::write(a.path(), b"x").unwrap();
            assert!(t.join("allowed/a/b/x.tar").exists(), "{how:?}");
            // named through the allowed directory's real path
            assert!(anchor(&t.join("allowed/a/x.tar"), &allowed, how).unwrap().is_some());
            // the allowed directory itself
            assert!(anchor(&t.join("alias/x.tar"), &allowed, how).unwrap().is_some());
            // a symlink on the way is refused, not followed
            let e = anchor(&t.join("alias/a/link/x.tar"), &allowed, how).unwrap_err();
            assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::ENOTDIR)
                ),
                "{how:?}: {e}"
            );
            // outside, or with .. anywhere
            for p in ["outside/x.tar", "alias/a/../../outside/x.tar", "alias"] {
                assert!(anchor(&t.join(p), &allowed, how).unwrap().is_none(), "{how:?} {p}");
            }
            assert!(anchor(Path::new("relative/x"), &allowed, how).unwrap().is_none());
            std::fs::remove_file(t.join("allowed/a/b/x.tar")).unwrap();
        }
        assert!(t.join("outside").read_dir().unwrap().next().is_none());
    }

    /// Once anchored, a swap of a directory on the way for a symlink changes nothing: the write lands in the
    /// directory that was checked.
    #[test]
    fn a_swap_after_the_check_does_not_move_the_write() {
        let t = tree();
        let allowed = vec![t.join("allowed")];
        for how in [Resolve::Best, Resolve::Walk] {
            let a = anchor(&t.join("allowed/a/b/x.tar"), &allowed, how).unwrap().unwrap();
            std::fs::rename(t.join("allowed/a/b"), t.join("allowed/a/moved")).unwrap();
            std::os::unix::fs::symlink(t.join("outside"), t.join("allowed/a/b")).unwrap();
            std::fs::write(a.path(), b"x").unwrap();
            assert!(t.join("allowed/a/moved/x.tar").exists(), "{how:?}");
            assert!(!t.join("outside/x.tar").exists(), "{how:?}");
            std::fs::remove_file(t.join("allowed/a/b")).unwrap();
            std::fs::rename(t.join("allowed/a/moved"), t.join("allowed/a/b")).unwrap();
            std::fs::remove_file(t.join("allowed/a/b/x.tar")).unwrap();
        }
    }
}
