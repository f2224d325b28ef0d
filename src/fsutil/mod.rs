//! Crash-safe file primitives. Every persistent write in depot goes through these or follows the same steps:
//! write a temp file in the target's directory, fsync it, rename over the target, fsync the directory.

pub mod beneath;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// fsync a directory so that a rename or unlink inside it survives a crash. The empty path (the parent of a
/// bare relative name such as `depot-data`) is the current directory.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Replace `path` with `bytes` atomically: after a crash the file holds either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    let res = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    fsync_dir(dir)
}

/// Remove `p`, a file or a whole directory (not following a symlink). Used where stray entries are swept.
pub fn remove_any(p: &Path) -> io::Result<()> {
    if fs::symlink_metadata(p)?.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
/// (free, total) bytes of the volume `path` is on, as an unprivileged writer sees them.
pub fn space(path: &Path) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    #[allow(clippy::unnecessary_cast)] // the field types differ between 32- and 64-bit targets
    let (frag, avail, blocks) = (
        st.fragment_size() as u64,
        st.blocks_available() as u64,
        st.blocks() as u64,
    );
    Ok((avail * frag, blocks * frag))
}

pub fn free_space(path: &Path) -> io::Result<u64> {
    Ok(space(path)?.0)
}

/// Create `dir` and any missing parents, fsyncing the directory above each one made, so that every new name is
/// durable (a power cut loses a name its directory was not synced for).
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new(""));
    if !parent.as_os_str().is_empty() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // made meanwhile by someone else, who syncs it
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    fsync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = crate::testutil::tempdir();
        let p = d.join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn bare_relative_names_have_a_parent_to_fsync() {
        // `Path::new("depot-data").parent()` is the empty path; fsyncing it must mean the current directory.
        assert_eq!(Path::new("depot-data").parent(), Some(Path::new("")));
        fsync_dir(Path::new("")).unwrap();
    }
}
