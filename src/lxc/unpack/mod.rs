//! The one safe tar unpacker: LXC templates into container rootfs trees, and Docker layers into a flattened
//! tree (with whiteouts). Whatever the archive says, nothing is written outside the destination:
//!
//! - every entry's path is made relative (a leading `/` is dropped, as GNU tar does) and one with a `..`
//!   component is refused;
//! - every directory on the way is opened with `O_NOFOLLOW` from the destination's own descriptor, so a symlink
//!   (also one planted earlier in the same archive) is never followed: writing through it is refused;
//! - files are created `O_EXCL | O_NOFOLLOW` after whatever was at their name is unlinked;
//! - a hardlink's target is resolved the same way, and `linkat` never follows a symlink;
//! - device nodes are made only when running as root (else skipped and counted); sizes are checked against the
//!   free space before a byte is written.
//!
//! Metadata as `tar --numeric-owner -p --xattrs --xattrs-include='*'` keeps it: numeric owners (shifted for an
//! unprivileged container when asked), modes with setuid bits (set after the owner, which clears them), xattrs
//! including `security.capability` (after the owner too), mtimes, and directories' modes and mtimes last, once
//! their content is written. GNU sparse files are written with holes.
//!
//! [`unpack`] writes into a temporary directory beside the destination, syncs the file system and renames it
//! into place: a crash or a broken archive leaves no destination (only the temporary directory, which the next
//! unpack into the same destination removes).

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

mod data;
mod entry;
mod fs;

use entry::DirMeta;
use fs::*;

/// Ids of the container mapped onto host ids: container id `c` < `range` becomes `host + c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub uid: u32,
    pub gid: u32,
    pub range: u32,
}

impl std::str::FromStr for Shift {
    type Err = String;
    /// `UID:GID:RANGE`, e.g. `100000:100000:65536`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let p: Vec<&str> = s.split(':').collect();
        let n = |x: &str| {
            x.parse::<u32>()
                .map_err(|_| format!("shift {s:?}: expected UID:GID:RANGE"))
        };
        match p.as_slice() {
            [u, g, r] => {
                let (uid, gid, range) = (n(u)?, n(g)?, n(r)?);
                if range == 0 || uid.checked_add(range).is_none() || gid.checked_add(range).is_none() {
                    return Err(format!("shift {s:?}: the range must be > 0 and fit the id space"));
                }
                Ok(Shift { uid, gid, range })
            }
            _ => Err(format!("shift {s:?}: expected UID:GID:RANGE")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub shift: Option<Shift>,
    /// Paths (`./dev/…` or `dev/…`) not to unpack (the template's `excludes-user` for an unprivileged one).
    pub excludes: Vec<String>,
    /// Docker layer semantics: `.wh.NAME` removes `NAME`, `.wh..wh..opq` hides what lower layers put in its
    /// directory; neither is written.
    pub layer: bool,
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub devices: u64,
    /// Device nodes not made because depot is not running as root.
    pub devices_skipped: u64,
    pub fifos: u64,
    pub xattrs: u64,
    pub excluded: u64,
    pub whiteouts: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {path:?} refused: {why}")]
    Unsafe { path: String, why: &'static str },
    #[error("the archive is broken after {entries} entries: {source}")]
    Broken { entries: u64, source: io::Error },
    #[error("{path:?}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("entry {path:?} declares {size} bytes, more than the {free} bytes free on the volume")]
    TooBig { path: String, size: u64, free: u64 },
    #[error("entry {path:?}: owner {id} is outside the shift range of {range} ids")]
    OutsideShift { path: String, id: u64, range: u32 },
    #[error("hardlink {path:?}: its target {target:?} is not in the archive before it")]
    NoLinkTarget { path: String, target: String },
}

type Result<T> = std::result::Result<T, UnpackError>;

/// A relative path's components, checked. A leading `/` or `./` is dropped; `..` anywhere is refused; `.` and
/// empty components are skipped. An empty result names the root itself.
pub fn components(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    if raw.contains(&0) {
        return Err("a NUL byte in the path");
    }
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a '..' component leaves the destination"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The state of one unpack into an open root.
struct Unpacker<'a> {
    root: &'a Dir,
    opts: &'a Options,
    as_root: bool,
    summary: Summary,
    dirs: Vec<DirMeta>,
    /// The last parent directory opened, by path: most entries share their parent with the one before.
    cached: Option<(Vec<u8>, Dir)>,
    /// Paths this archive wrote (layer mode: an opaque directory keeps them).
    written: HashSet<Vec<u8>>,
    /// Layer mode: existing directories this layer changes without an entry of their own, with their mtime
    /// before; restored at the end, as umoci and Docker keep a lower layer's directory times.
    touched: std::collections::HashMap<Vec<u8>, i64>,
    free: u64,
    buf: Vec<u8>,
}

struct Owner {
    uid: u64,
    gid: u64,
}

impl Unpacker<'_> {
    /// The directory `parts` names, opened without following any symlink; missing ones are made (0755, as tar
    /// makes them).
    fn walk(&mut self, parts: &[&[u8]], path: &[u8]) -> Result<RawFd> {
        let key = parts.join(&b'/');
        if let Some((k, d)) = &self.cached {
            if *k == key {
                return Ok(d.raw());
            }
        }
        let mut cur: Option<Dir> = None;
        for (i, c) in parts.iter().enumerate() {
            let at = cur.as_ref().map_or(self.root.raw(), |d| d.raw());
            let d = match open_dir(at, c) {
                Ok(d) => d,
                Err(Errno::ENOENT) => {
                    mkdirat(Some(at), cstr(c).as_c_str(), Mode::from_bits_truncate(0o755)).map_err(|e| {
                        UnpackError::Io {
                            path: show(&parts[..=i].join(&b'/')),
                            op: "mkdir",
                            source: errno(e),
                        }
                    })?;
                    open_dir(at, c).map_err(|e| UnpackError::Io {
                        path: show(path),
                        op: "open",
                        source: errno(e),
                    })?
                }
                Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                    return Err(UnpackError::Unsafe {
                        path: show(path),
                        why: "a directory on its way is a symlink or not a directory",
                    })
                }
                Err(e) => {
                    return Err(UnpackError::Io {
                        path: show(path),
                        op: "open",
                        source: errno(e),
                    })
                }
            };
            cur = Some(d);
        }
        let d = match cur {
            Some(d) => d,
            None => Dir(self.root.0.try_clone().map_err(|e| UnpackError::Io {
                path: ".".into(),
                op: "dup",
                source: e,
            })?),
        };
        self.cached = Some((key, d));
        Ok(self.cached.as_ref().expect("set").1.raw())
    }

    fn owner(&self, path: &[u8], uid: u64, gid: u64) -> Result<Owner> {
        match self.opts.shift {
            None => Ok(Owner { uid, gid }),
            Some(s) => {
                for id in [uid, gid] {
                    if id >= s.range as u64 {
                        return Err(UnpackError::OutsideShift {
                            path: show(path),
                            id,
                            range: s.range,
                        });
                    }
                }
                Ok(Owner {
                    uid: s.uid as u64 + uid,
                    gid: s.gid as u64 + gid,
                })
            }
        }
    }

    fn excluded(&self, parts: &[&[u8]]) -> bool {
        let p = parts.join(&b'/');
        self.opts.excludes.iter().any(|x| {
            let x = x.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
            !x.is_empty() && (p == x.as_bytes() || (p.starts_with(x.as_bytes()) && p.get(x.len()) == Some(&b'/')))
        })
    }

    /// Like [`Unpacker::walk`] but without making anything or touching the cache; `None` if a directory on the
    /// way is missing.
    fn walk_uncached(&self, parts: &[&[u8]], path: &[u8]) -> Result<Option<Dir>> {
        let mut cur = Dir(self.root.0.try_clone().map_err(|e| UnpackError::Io {
            path: ".".into(),
            op: "dup",
            source: e,
        })?);
        for c in parts {
            cur = match open_dir(cur.raw(), c) {
                Ok(d) => d,
                Err(Errno::ENOENT) => return Ok(None),
                Err(_) => {
                    return Err(UnpackError::Unsafe {
                        path: show(path),
                        why: "a directory on its way is a symlink or not a directory",
                    })
                }
            };
        }
        Ok(Some(cur))
    }

    /// Layer mode: remember the mtime of the existing directory `parts` before this layer changes it.
    fn note_touched(&mut self, parts: &[&[u8]]) {
        let key = parts.join(&b'/');
        if self.touched.contains_key(&key) {
            return;
        }
        let Ok(Some(d)) = self.walk_uncached(parts, &key) else {
            return;
        };
        if let Ok(st) = nix::sys::stat::fstat(d.raw()) {
            #[allow(clippy::unnecessary_cast)] // time_t is 32 bits on armv7
            self.touched.insert(key, st.st_mtime as i64);
        }
    }

    /// Directories' modes and mtimes, deepest first, once everything is in.
    fn finish_dirs(&mut self) -> Result<()> {
        self.cached = None;
        let explicit: HashSet<Vec<u8>> = self.dirs.iter().map(|d| d.path.clone()).collect();
        for (path, mtime) in std::mem::take(&mut self.touched) {
            if explicit.contains(&path) {
                continue;
            }
            let parts = components(&path).expect("checked when noted");
            if let Some(fd) = self.walk_uncached(&parts, &path)? {
                let t = timespec(mtime);
                futimens(fd.raw(), &t, &t).map_err(|e| UnpackError::Io {
                    path: show(&path),
                    op: "utimes",
                    source: errno(e),
                })?;
            }
        }
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.len()));
        for d in dirs {
            let parts = components(&d.path).expect("checked when recorded");
            let fd = match self.walk_uncached(&parts, &d.path)? {
                Some(fd) => fd,
                None => continue, // removed by a later whiteout
            };
            let io = |op| {
                let p = show(&d.path);
                move |e: Errno| UnpackError::Io {
                    path: p,
                    op,
                    source: errno(e),
                }
            };
            fchmod(fd.raw(), Mode::from_bits_truncate(d.mode)).map_err(io("chmod"))?;
            let t = timespec(d.mtime);
            futimens(fd.raw(), &t, &t).map_err(io("utimes"))?;
        }
        Ok(())
    }
}

/// Unpack the (decoded) tar stream `r` into the existing directory `root`, which is trusted; nothing outside
/// it is touched. Leaves what was written in place on error (the caller owns `root`).
pub fn unpack_into(r: impl Read, root: &Path, opts: &Options) -> Result<Summary> {
    // the destination itself is never a symlink: it was made just now, and a swap since must not be followed
    let fd = nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        path: root.display().to_string(),
        op: "open",
        source: errno(e),
    })?;
    // SAFETY: a fresh descriptor from open.
    let dir = Dir(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut u = Unpacker {
        root: &dir,
        opts,
        as_root: nix::unistd::geteuid().is_root(),
        summary: Summary::default(),
        dirs: Vec::new(),
        cached: None,
        written: HashSet::new(),
        touched: Default::default(),
        free: crate::fsutil::free_space(root).unwrap_or(u64::MAX),
        buf: vec![0u8; 256 * 1024],
    };
    let mut a = tar::Archive::new(r);
    let broken = |u: &Unpacker<'_>, source: io::Error| UnpackError::Broken {
        entries: u.summary.files + u.summary.dirs + u.summary.symlinks,
        source,
    };
    let entries = a.entries().map_err(|e| broken(&u, e))?;
    let mut any = false;
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            // A layer that ends right after its last entry's data, without the padding and end-of-archive
            // blocks (umoci's `insert` writes such layers): Go's archive/tar, and so Docker and containerd,
            // take that as the end. Every entry's data was read whole (see `copy`), and the layer's bytes are
            // what its diff_id says; a rootfs template gets no such leniency.
            Err(err) if opts.layer && any && err.to_string().contains("unexpected EOF during skip") => break,
            Err(err) => return Err(broken(&u, err)),
        };
        any = true;
        u.entry(&mut e)?;
    }
    if !any {
        return Err(broken(&u, io::Error::new(io::ErrorKind::UnexpectedEof, "no entries")));
    }
    u.finish_dirs()?;
    Ok(u.summary)
}

/// The temporary directory an unpack into `dest` writes.
fn temp_beside(dest: &Path) -> Option<PathBuf> {
    let name = dest.file_name()?;
    let mut t = OsStr::new(".").to_os_string();
    t.push(name);
    t.push(".depot-unpack");
    Some(dest.with_file_name(t))
}

/// Build `dest`, which must not exist, in a temporary directory beside it (`build` fills it), sync the file
/// system, and rename it into place. On an error nothing is left: no `dest`, no temporary directory.
pub fn into_place<T>(dest: &Path, build: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    if dest.symlink_metadata().is_ok() {
        return Err(UnpackError::Exists(dest.to_path_buf()));
    }
    let tmp = temp_beside(dest).ok_or_else(|| UnpackError::Io {
        path: dest.display().to_string(),
        op: "name",
        source: io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let fail = |op, source| UnpackError::Io {
        path: tmp.display().to_string(),
        op,
        source,
    };
    if tmp.symlink_metadata().is_ok() {
        // what an unpack that died left
        crate::fsutil::remove_any(&tmp).map_err(|e| fail("remove", e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| fail("mkdir", e))?;
    // Built through a descriptor of the directory just made, never through its name again: a swap of the name
    // for a symlink cannot lead the build elsewhere.
    let held = nix::fcntl::open(
        &tmp,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| fail("open", errno(e)));
    let r = held.and_then(|fd| {
        // SAFETY: a fresh descriptor from open.
        let d = unsafe { OwnedFd::from_raw_fd(fd) };
        // `/.`: the held directory itself, so that an O_NOFOLLOW open of the path meets no (magic) link at its end
        let s = build(Path::new(&format!("/proc/self/fd/{}/.", d.as_raw_fd())))?;
        // durable before it is visible: a power cut leaves the temporary directory or the whole tree
        nix::unistd::syncfs(d.as_raw_fd()).map_err(|e| fail("syncfs", errno(e)))?;
        std::fs::rename(&tmp, dest).map_err(|e| fail("rename", e))?;
        if let Some(parent) = dest.parent() {
            crate::fsutil::fsync_dir(parent).map_err(|e| fail("fsync", e))?;
        }
        Ok(s)
    });
    if r.is_err() {
        let _ = crate::fsutil::remove_any(&tmp);
    }
    r
}

/// Unpack `r` into `dest`, which must not exist (see [`into_place`]). A broken or hostile archive fails with
/// the reason and leaves no `dest`.
pub fn unpack(r: impl Read, dest: &Path, opts: &Options) -> Result<Summary> {
    into_place(dest, |tmp| unpack_into(r, tmp, opts))
}

/// Open the regular file `rel` inside the trusted directory `root` for reading and writing, never following a
/// symlink on the way or at the end (a template's `templates` list names rootfs files; a hostile one must not
/// reach outside). `None` when it is missing or not a regular file.
pub fn open_inside(root: &Path, rel: &str) -> Result<Option<File>> {
    let parts = components(rel.as_bytes()).map_err(|why| UnpackError::Unsafe {
        path: rel.to_string(),
        why,
    })?;
    let Some((name, parents)) = parts.split_last() else {
        return Ok(None);
    };
    let mut cur = match open_dir(libc::AT_FDCWD, root.as_os_str().as_bytes()) {
        Ok(d) => d,
        Err(e) => {
            return Err(UnpackError::Io {
                path: root.display().to_string(),
                op: "open",
                source: errno(e),
            })
        }
    };
    for c in parents {
        cur = match open_dir(cur.raw(), c) {
            Ok(d) => d,
            Err(Errno::ENOENT) => return Ok(None),
            Err(_) => {
                return Err(UnpackError::Unsafe {
                    path: rel.to_string(),
                    why: "a directory on its way is a symlink or not a directory",
                })
            }
        };
    }
    match openat(
        Some(cur.raw()),
        cstr(name).as_c_str(),
        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        // SAFETY: a fresh descriptor from openat.
        Ok(fd) => {
            let f = unsafe { File::from_raw_fd(fd) };
            let regular = f.metadata().map(|m| m.is_file()).unwrap_or(false);
            Ok(regular.then_some(f))
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP) => Err(UnpackError::Unsafe {
            path: rel.to_string(),
            why: "it is a symlink",
        }),
        Err(e) => Err(UnpackError::Io {
            path: rel.to_string(),
            op: "open",
            source: errno(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_relative_and_never_climb() {
        assert_eq!(components(b"/etc/passwd").unwrap(), vec![&b"etc"[..], b"passwd"]);
        assert_eq!(components(b"./a//b/./c/").unwrap(), vec![&b"a"[..], b"b", b"c"]);
        assert!(components(b"./").unwrap().is_empty());
        for bad in [&b"../x"[..], b"a/../../x", b"a/..", b"..", b"a\0b"] {
            assert!(components(bad).is_err(), "{}", show(bad));
        }
    }

    /// A tar built entry by entry with raw names: what a hostile archive can say.
    #[derive(Default)]
    struct Tar(Vec<u8>);

    impl Tar {
        fn raw(&mut self, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8], mode: u32) -> &mut Self {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(1_600_000_000);
            h.set_cksum();
            self.0.extend_from_slice(h.as_bytes());
            self.0.extend_from_slice(data);
            self.0.resize(self.0.len().div_ceil(512) * 512, 0);
            self
        }
        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.raw(name.as_bytes(), tar::EntryType::Regular, b"", data, 0o644)
        }
        fn dir(&mut self, name: &str) -> &mut Self {
            self.raw(name.as_bytes(), tar::EntryType::Directory, b"", b"", 0o755)
        }
        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.raw(name.as_bytes(), tar::EntryType::Symlink, target.as_bytes(), b"", 0o777)
        }
        fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.raw(name.as_bytes(), tar::EntryType::Link, target.as_bytes(), b"", 0o644)
        }
        fn done(&mut self) -> Vec<u8> {
            let mut v = self.0.clone();
            v.extend_from_slice(&[0u8; 1024]);
            v
        }
    }

    /// A scratch dir with a `dest` to unpack into and an `outside` that must stay untouched.
    fn scene() -> (PathBuf, PathBuf) {
        let d = crate::testutil::tempdir();
        std::fs::create_dir(d.join("outside")).unwrap();
        std::fs::write(d.join("outside/victim"), b"original").unwrap();
        (d.clone(), d.join("dest"))
    }

    fn untouched(d: &Path) {
        let names: Vec<_> = std::fs::read_dir(d.join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("victim")], "nothing new outside");
        assert_eq!(std::fs::read(d.join("outside/victim")).unwrap(), b"original");
    }

    #[test]
    fn hostile_archives_write_nothing_outside_and_leave_no_dest() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dot-dot", Tar::default().file("../outside/victim", b"pwned").done()),
            (
                "dot-dot deep",
                Tar::default().dir("a/").file("a/../../outside/new", b"x").done(),
            ),
            (
                "symlink then write through it",
                Tar::default()
                    .symlink("evil", "../outside")
                    .file("evil/victim", b"pwned")
                    .done(),
            ),
            (
                "absolute symlink then write through it",
                Tar::default().symlink("evil", "/").file("evil/tmp/x", b"pwned").done(),
            ),
            (
                "symlink then a file of its name's directory",
                Tar::default()
                    .dir("d/")
                    .symlink("d/l", "../../outside")
                    .file("d/l/victim", b"pwned")
                    .done(),
            ),
            (
                "hardlink to outside",
                Tar::default().hardlink("h", "../outside/victim").done(),
            ),
            (
                "hardlink through a symlink",
                Tar::default()
                    .symlink("s", "../outside")
                    .hardlink("h", "s/victim")
                    .done(),
            ),
            ("hardlink to nothing", Tar::default().hardlink("h", "nothing").done()),
            ("truncated", {
                let mut t = Tar::default().file("big", &vec![1u8; 100_000]).done();
                t.truncate(20_000);
                t
            }),
            ("not a tar", b"this is no archive at all, just text".repeat(30)),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            let (d, dest) = scene();
            let r = unpack(&bytes[..], &dest, &Options::default());
            assert!(r.is_err(), "{what}: unpacked {r:?}");
            assert!(!dest.exists(), "{what}: no dest");
            assert!(!temp_beside(&dest).unwrap().exists(), "{what}: no temporary directory");
            untouched(&d);
        }
    }

    #[test]
    fn absolute_paths_land_inside() {
        let (d, dest) = scene();
        let t = Tar::default().file("/etc/hostname", b"nas").done();
        unpack(&t[..], &dest, &Options::default()).unwrap();
        assert_eq!(std::fs::read(dest.join("etc/hostname")).unwrap(), b"nas");
        untouched(&d);
    }

    #[test]
    fn a_symlink_replaced_by_a_file_is_not_followed() {
        let (d, dest) = scene();
        // the later entry of the same name replaces the link; it must not write to where the link pointed
        let t = Tar::default()
            .symlink("victim", "../outside/victim")
            .file("victim", b"inside")
            .done();
        unpack(&t[..], &dest, &Options::default()).unwrap();
        assert_eq!(std::fs::read(dest.join("victim")).unwrap(), b"inside");
        assert!(!dest.join("victim").symlink_metadata().unwrap().file_type().is_symlink());
        untouched(&d);
    }

    #[test]
    fn files_links_modes_and_times() {
        let (_d, dest) = scene();
        let t = Tar::default()
            .dir("./")
            .dir("bin/")
            .raw(b"bin/tool", tar::EntryType::Regular, b"", b"#!/bin/sh\n", 0o4755)
            .hardlink("bin/alias", "bin/tool")
            .symlink("sh", "bin/tool")
            .raw(b"ro/", tar::EntryType::Directory, b"", b"", 0o555)
            .file("ro/inside", b"written before the dir became read-only")
            .done();
        let s = unpack(&t[..], &dest, &Options::default()).unwrap();
        assert_eq!((s.files, s.dirs, s.symlinks, s.hardlinks), (2, 2, 1, 1), "{s:?}");
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = std::fs::metadata(dest.join("bin/tool")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(m.nlink(), 2);
        assert_eq!(std::fs::read_link(dest.join("sh")).unwrap(), Path::new("bin/tool"));
        assert_eq!(
            std::fs::metadata(dest.join("ro")).unwrap().permissions().mode() & 0o777,
            0o555
        );
        assert_eq!(std::fs::metadata(dest.join("ro")).unwrap().mtime(), 1_600_000_000);
    }

    #[test]
    fn pax_sparse_files_get_their_name_holes_and_data() {
        let (_d, dest) = scene();
        let records = [
            super::super::convert::tests_pax("GNU.sparse.major", "1"),
            super::super::convert::tests_pax("GNU.sparse.minor", "0"),
            super::super::convert::tests_pax("GNU.sparse.name", "var/log/lastlog"),
            super::super::convert::tests_pax("GNU.sparse.realsize", "3000000"),
        ]
        .concat();
        let mut map = b"2\n0\n4\n2999997\n3\n".to_vec();
        map.resize(512, 0);
        map.extend_from_slice(b"abcdxyz");
        let t = Tar::default()
            .dir("var/")
            .dir("var/log/")
            .raw(b"PaxHeaders/x", tar::EntryType::XHeader, b"", &records, 0o644)
            .raw(
                b"var/log/GNUSparseFile.0/lastlog",
                tar::EntryType::Regular,
                b"",
                &map,
                0o600,
            )
            .done();
        let s = unpack(&t[..], &dest, &Options::default()).unwrap();
        assert_eq!(s.files, 1);
        let got = std::fs::read(dest.join("var/log/lastlog")).unwrap();
        assert_eq!(got.len(), 3_000_000);
        assert_eq!(&got[..4], b"abcd");
        assert_eq!(&got[2_999_997..], b"xyz");
        assert!(got[4..2_999_997].iter().all(|b| *b == 0));
        assert!(!dest.join("var/log/GNUSparseFile.0").exists());
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dest.join("var/log/lastlog")).unwrap();
        assert!(
            m.blocks() * 512 < 1_000_000,
            "written with holes: {} blocks",
            m.blocks()
        );
        // a map that points past the real size is refused
        let bad = [
            super::super::convert::tests_pax("GNU.sparse.major", "1"),
            super::super::convert::tests_pax("GNU.sparse.minor", "0"),
            super::super::convert::tests_pax("GNU.sparse.name", "f"),
            super::super::convert::tests_pax("GNU.sparse.realsize", "10"),
        ]
        .concat();
        let mut map = b"1\n5\n100\n".to_vec();
        map.resize(612, 1);
        let t = Tar::default()
            .raw(b"PaxHeaders/x", tar::EntryType::XHeader, b"", &bad, 0o644)
            .raw(b"GNUSparseFile.0/f", tar::EntryType::Regular, b"", &map, 0o600)
            .done();
        assert!(unpack(&t[..], &dest.with_file_name("d2"), &Options::default()).is_err());
    }

    #[test]
    fn layers_apply_whiteouts_and_opaque_directories() {
        let (_d, root) = scene();
        std::fs::create_dir(&root).unwrap();
        let opts = Options {
            layer: true,
            ..Default::default()
        };
        let lower = Tar::default()
            .dir("etc/")
            .file("etc/a", b"a")
            .file("etc/b", b"b")
            .dir("var/")
            .file("var/old", b"old")
            .dir("var/sub/")
            .file("var/sub/deep", b"d")
            .done();
        unpack_into(&lower[..], &root, &opts).unwrap();
        let upper = Tar::default()
            .file("etc/.wh.a", b"")
            .dir("var/")
            .file("var/.wh..wh..opq", b"")
            .file("var/new", b"new")
            .done();
        let s = unpack_into(&upper[..], &root, &opts).unwrap();
        assert_eq!(s.whiteouts, 2);
        assert!(!root.join("etc/a").exists());
        assert!(root.join("etc/b").exists());
        let mut var: Vec<_> = std::fs::read_dir(root.join("var"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        var.sort();
        assert_eq!(var, vec![std::ffi::OsString::from("new")]);
        assert!(!root.join("etc/.wh.a").exists());
    }

    #[test]
    fn a_layer_may_end_without_its_trailer_but_never_inside_a_file() {
        let (_d, root) = scene();
        std::fs::create_dir(&root).unwrap();
        let layer = Options {
            layer: true,
            ..Default::default()
        };
        let mut t = Tar::default().file("etc/version", b"1.2").0.clone();
        t.truncate(512 + 3); // no padding, no end-of-archive blocks: what umoci insert writes
        unpack_into(&t[..], &root, &layer).unwrap();
        assert_eq!(std::fs::read(root.join("etc/version")).unwrap(), b"1.2");
        let mut short = Tar::default().file("etc/cut", &[7u8; 2000]).0.clone();
        short.truncate(512 + 1000);
        assert!(
            unpack_into(&short[..], &root, &layer).is_err(),
            "data cut short is an error"
        );
        // a template gets no leniency
        let (_d2, dest) = scene();
        assert!(unpack(&t[..], &dest, &Options::default()).is_err());
    }

    #[test]
    fn excludes_and_shift_range() {
        let (_d, dest) = scene();
        let t = Tar::default()
            .dir("dev/")
            .file("dev/null-ish", b"")
            .file("etc", b"x")
            .done();
        let s = unpack(
            &t[..],
            &dest,
            &Options {
                excludes: vec!["./dev/null-ish".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.excluded, 1);
        assert!(!dest.join("dev/null-ish").exists());
        let mut h = tar::Header::new_gnu();
        h.set_path("f").unwrap();
        h.set_size(0);
        h.set_uid(70_000);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend_from_slice(&[0u8; 1024]);
        let r = unpack(
            &t[..],
            &dest.with_file_name("dest2"),
            &Options {
                shift: Some("100000:100000:65536".parse().unwrap()),
                ..Default::default()
            },
        );
        assert!(matches!(r, Err(UnpackError::OutsideShift { id: 70_000, .. })), "{r:?}");
    }

    #[test]
    fn shifts_parse() {
        assert_eq!(
            "100000:100000:65536".parse::<Shift>().unwrap(),
            Shift {
                uid: 100000,
                gid: 100000,
                range: 65536
            }
        );
        for bad in ["1:2", "a:b:c", "1:1:0", "4294967295:0:10"] {
            assert!(bad.parse::<Shift>().is_err(), "{bad}");
        }
    }
}
