//! The unpacker's file system steps: descriptors of directories held open, entries made and removed relative
//! to them, never following a symlink, and the errors of the system calls.

use super::*;

/// Seconds as the platform's `timespec`: `time_t` is 32 bits on armv7, so a time past its range is clamped.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(super) fn timespec(secs: i64) -> TimeSpec {
    let t = secs.clamp(libc::time_t::MIN as i64, libc::time_t::MAX as i64) as libc::time_t;
    TimeSpec::new(t, 0)
}

pub(super) fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

pub(super) fn cstr(b: &[u8]) -> CString {
    CString::new(b).expect("no NUL: checked by components")
}

pub(super) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory of the tree, open.
pub(super) struct Dir(pub(super) OwnedFd);

impl Dir {
    pub(super) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What is at `name` in `dir`, not following a symlink.
pub(super) fn kind_at(dir: RawFd, name: &[u8]) -> Option<SFlag> {
    fstatat(Some(dir), cstr(name).as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
}

pub(super) fn open_dir(dir: RawFd, name: &[u8]) -> nix::Result<Dir> {
    let fd = openat(
        Some(dir),
        cstr(name).as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Remove whatever is at `name` in `dir` (a whole tree if a directory), never following a symlink.
pub(super) fn remove_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    match kind_at(dir, name) {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            let sub = open_dir(dir, name).map_err(errno)?;
            clear_dir(&sub, &HashSet::new(), b"")?;
            unlinkat(Some(dir), cstr(name).as_c_str(), UnlinkatFlags::RemoveDir).map_err(errno)
        }
        Some(_) => unlinkat(Some(dir), cstr(name).as_c_str(), UnlinkatFlags::NoRemoveDir).map_err(errno),
    }
}

/// Remove every entry of `dir` whose path (`prefix/name`) is not in `keep`.
pub(super) fn clear_dir(dir: &Dir, keep: &HashSet<Vec<u8>>, prefix: &[u8]) -> io::Result<()> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.raw()));
    let names: Vec<Vec<u8>> = std::fs::read_dir(&path)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().as_bytes().to_vec())
        .collect();
    for name in names {
        let full = join(prefix, &name);
        if keep.contains(&full) {
            continue;
        }
        if keep
            .iter()
            .any(|k| k.starts_with(&full) && k.get(full.len()) == Some(&b'/'))
        {
            // something of this layer lives below: clear what is not
            if let Ok(sub) = open_dir(dir.raw(), &name) {
                clear_dir(&sub, keep, &full)?;
            }
            continue;
        }
        remove_at(dir.raw(), &name)?;
    }
    Ok(())
}

pub(super) fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// Where an entry is made: its parent directory (held open) and its name there.
pub(super) struct At<'a> {
    pub(super) dir: RawFd,
    pub(super) name: &'a [u8],
    pub(super) cname: CString,
}

impl At<'_> {
    /// Set the entry's times, never following it (a symlink's own).
    pub(super) fn stamp(&self, mtime: i64) -> nix::Result<()> {
        let t = timespec(mtime);
        utimensat(
            Some(self.dir),
            self.cname.as_c_str(),
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
    }
}

/// The error of a failed system call `op` on the entry `raw`.
pub(super) fn io_error(raw: &[u8]) -> impl Fn(&'static str) -> Box<dyn FnOnce(Errno) -> UnpackError> + '_ {
    move |op| {
        let path = show(raw);
        Box::new(move |e: Errno| UnpackError::Io {
            path,
            op,
            source: errno(e),
        })
    }
}
