//! What goes into an entry once it exists: owners, xattrs, and file contents (with holes for sparse files).

use super::fs::*;
use super::*;

/// What PAX headers say of a sparse file (GNU tar's formats 0.1 and 1.0).
#[derive(Debug, Default, Clone)]
pub(super) struct PaxSparse {
    pub(super) major: Option<i64>,
    pub(super) minor: Option<i64>,
    pub(super) name: Option<Vec<u8>>,
    pub(super) realsize: Option<u64>,
    /// Format 0.1: `offset,size,offset,size…` in the header.
    pub(super) map: Option<String>,
}

impl PaxSparse {
    pub(super) fn is_sparse(&self) -> bool {
        self.realsize.is_some() && (self.major == Some(1) || self.map.is_some())
    }
}

/// At most this many regions in a sparse map: a hostile map must not exhaust memory.
pub(super) const MAX_SPARSE_REGIONS: usize = 1 << 20;

impl Unpacker<'_> {
    pub(super) fn set_owner(&mut self, fd: RawFd, o: &Owner, path: &[u8]) -> Result<()> {
        if !self.as_root {
            return Ok(());
        }
        fchown(fd, Some(Uid::from_raw(o.uid as u32)), Some(Gid::from_raw(o.gid as u32))).map_err(|e| UnpackError::Io {
            path: show(path),
            op: "chown",
            source: errno(e),
        })
    }

    pub(super) fn set_owner_at(&mut self, dir: RawFd, name: &CString, o: &Owner, path: &[u8]) -> Result<()> {
        if !self.as_root {
            return Ok(());
        }
        fchownat(
            Some(dir),
            name.as_c_str(),
            Some(Uid::from_raw(o.uid as u32)),
            Some(Gid::from_raw(o.gid as u32)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| UnpackError::Io {
            path: show(path),
            op: "chown",
            source: errno(e),
        })
    }

    pub(super) fn set_xattrs(&mut self, fd: RawFd, xattrs: &[(Vec<u8>, Vec<u8>)], path: &[u8]) -> Result<()> {
        for (k, v) in xattrs {
            let Ok(key) = CString::new(k.clone()) else { continue };
            // SAFETY: a valid descriptor, a NUL-terminated name and a buffer of the given length.
            let r = unsafe { libc::fsetxattr(fd, key.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
            if r != 0 {
                let e = io::Error::last_os_error();
                // trusted.* and security.* need root, user.* a file system that has them: skip what cannot be
                // kept rather than fail the whole tree, as GNU tar warns and goes on
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM) | Some(libc::ENOTSUP) | Some(libc::EACCES)
                ) {
                    log::debug!("{}: xattr {} not kept: {e}", show(path), show(k));
                    continue;
                }
                return Err(UnpackError::Io {
                    path: show(path),
                    op: "setxattr",
                    source: e,
                });
            }
            self.summary.xattrs += 1;
        }
        Ok(())
    }

    /// The entry's content into `f`; a sparse entry's runs of zeros become holes. Returns the bytes written.
    pub(super) fn copy<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        f: &mut File,
        sparse: bool,
        path: &[u8],
    ) -> Result<u64> {
        let mut pos = 0u64;
        let mut hole = false;
        let werr = |source: io::Error| UnpackError::Io {
            path: show(path),
            op: "write",
            source,
        };
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(UnpackError::Broken {
                        entries: self.summary.files + self.summary.dirs,
                        source: io::Error::new(err.kind(), format!("in {:?}: {err}", show(path))),
                    })
                }
            };
            let chunk = &self.buf[..n];
            if sparse && chunk.iter().all(|b| *b == 0) {
                f.seek(SeekFrom::Current(n as i64)).map_err(werr)?;
                hole = true;
            } else {
                f.write_all(chunk).map_err(werr)?;
                hole = false;
            }
            pos += n as u64;
        }
        if !sparse && pos != e.size() {
            return Err(UnpackError::Broken {
                entries: self.summary.files + self.summary.dirs,
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the archive ends inside {:?} ({pos} of {} bytes)", show(path), e.size()),
                ),
            });
        }
        if hole {
            f.set_len(pos).map_err(werr)?;
        }
        Ok(pos)
    }

    /// A PAX sparse file: its regions (from the header's map, or format 1.0's map at the start of the data),
    /// each written at its offset, the rest holes up to the real size. Returns the real size.
    pub(super) fn copy_pax_sparse<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        f: &mut File,
        sp: &PaxSparse,
        path: &[u8],
    ) -> Result<u64> {
        let broken = |why: String| UnpackError::Broken {
            entries: 0,
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sparse file {:?}: {why}", show(path)),
            ),
        };
        let realsize = sp.realsize.unwrap_or(0);
        if realsize > self.free.saturating_mul(64) {
            // holes take no room, but a declared size this far past the volume is hostile
            return Err(UnpackError::TooBig {
                path: show(path),
                size: realsize,
                free: self.free,
            });
        }
        let mut nums: Vec<u64> = Vec::new();
        if let Some(map) = &sp.map {
            for n in map.split(',').filter(|s| !s.is_empty()) {
                nums.push(n.trim().parse().map_err(|_| broken(format!("bad map number {n:?}")))?);
            }
        } else {
            nums = sparse_map_1_0(e).map_err(broken)?;
        }
        if nums.len() % 2 != 0 || nums.len() / 2 > MAX_SPARSE_REGIONS {
            return Err(broken("malformed map".into()));
        }
        let werr = |source: io::Error| UnpackError::Io {
            path: show(path),
            op: "write",
            source,
        };
        let mut written = 0u64;
        for pair in nums.chunks(2) {
            let (off, len) = (pair[0], pair[1]);
            if off.checked_add(len).is_none_or(|end| end > realsize) {
                return Err(broken("a region past the file's size".into()));
            }
            f.seek(SeekFrom::Start(off)).map_err(werr)?;
            let n = io::copy(&mut (&mut *e).take(len), f).map_err(|err| UnpackError::Broken {
                entries: 0,
                source: io::Error::new(err.kind(), format!("in {:?}: {err}", show(path))),
            })?;
            if n != len {
                return Err(broken("the archive ends inside it".into()));
            }
            written += len;
        }
        f.set_len(realsize).map_err(werr)?;
        self.free = self.free.saturating_sub(written);
        Ok(realsize)
    }
}

/// GNU tar's sparse format 1.0 map at the start of a file's data: decimal lines, N then N (offset, size) pairs,
/// padded to a 512-byte block; all of it consumed from `r`. The numbers after N, or why the map is refused.
fn sparse_map_1_0(r: &mut impl Read) -> std::result::Result<Vec<u64>, String> {
    let mut nums = Vec::new();
    let mut consumed = 0u64;
    let mut line = Vec::new();
    let mut want: Option<usize> = None;
    let mut byte = [0u8; 1];
    while want.is_none_or(|w| nums.len() != 2 * w) {
        r.read_exact(&mut byte).map_err(|err| err.to_string())?;
        consumed += 1;
        if byte[0] != b'\n' {
            if line.len() > 20 || !byte[0].is_ascii_digit() {
                return Err("malformed map".into());
            }
            line.push(byte[0]);
            continue;
        }
        let n: u64 = std::str::from_utf8(&line)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| "malformed map".to_string())?;
        line.clear();
        match want {
            None if n as usize > MAX_SPARSE_REGIONS => return Err(format!("{n} regions")),
            None => want = Some(n as usize),
            Some(_) => nums.push(n),
        }
    }
    let pad = (512 - consumed % 512) % 512;
    io::copy(&mut r.take(pad), &mut io::sink()).map_err(|err| err.to_string())?;
    Ok(nums)
}
