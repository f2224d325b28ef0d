//! One tar entry at a time: its metadata, then a directory, file, symlink, hardlink, device node or whiteout
//! made at its place.

use super::data::PaxSparse;
use super::fs::*;
use super::*;

/// Metadata applied to a directory once all its content is in.
pub(super) struct DirMeta {
    pub(super) path: Vec<u8>,
    pub(super) mode: u32,
    pub(super) mtime: i64,
}

/// What an entry's header and PAX records say of it.
pub(super) struct Meta {
    /// The name as stored (a PAX sparse file's real one).
    pub(super) raw: Vec<u8>,
    pub(super) kind: tar::EntryType,
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) mtime: i64,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) sparse: PaxSparse,
}

impl Meta {
    pub(super) fn of<R: Read>(e: &mut tar::Entry<'_, R>) -> Meta {
        let h = e.header().clone();
        let mut m = Meta {
            raw: e.path_bytes().into_owned(),
            kind: h.entry_type(),
            mode: h.mode().unwrap_or(0o644),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
            sparse: PaxSparse::default(),
        };
        if let Ok(Some(pax)) = e.pax_extensions() {
            for ext in pax.flatten() {
                let (Ok(k), v) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                m.pax(k, v);
            }
        }
        if let Some(n) = m.sparse.name.clone() {
            // PAX sparse: the real name is here; the header's is GNU tar's `…/GNUSparseFile.N/…`
            m.raw = n;
        }
        m.mode &= 0o7777;
        m
    }

    pub(super) fn pax(&mut self, k: &str, v: &[u8]) {
        let text = std::str::from_utf8(v).ok();
        let num = || text.and_then(|s| s.split('.').next()?.parse::<i64>().ok());
        match k {
            "uid" => self.uid = num().map_or(self.uid, |n| n as u64),
            "gid" => self.gid = num().map_or(self.gid, |n| n as u64),
            "mtime" => self.mtime = num().unwrap_or(self.mtime),
            k if k.starts_with("SCHILY.xattr.") => self
                .xattrs
                .push((k.as_bytes()["SCHILY.xattr.".len()..].to_vec(), v.to_vec())),
            "GNU.sparse.major" => self.sparse.major = num(),
            "GNU.sparse.minor" => self.sparse.minor = num(),
            "GNU.sparse.name" => self.sparse.name = Some(v.to_vec()),
            "GNU.sparse.realsize" | "GNU.sparse.size" => self.sparse.realsize = num().map(|n| n as u64),
            "GNU.sparse.map" => self.sparse.map = text.map(str::to_string),
            _ => {}
        }
    }
}

impl Unpacker<'_> {
    pub(super) fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let m = Meta::of(e);
        let raw = m.raw.clone();
        let kind = m.kind;
        let parts = components(&raw).map_err(|why| UnpackError::Unsafe { path: show(&raw), why })?;
        if parts.is_empty() {
            // the archive's `./`: the root's own metadata
            if kind.is_dir() {
                self.dirs.push(DirMeta {
                    path: Vec::new(),
                    mode: m.mode,
                    mtime: m.mtime,
                });
            }
            return Ok(());
        }
        if self.excluded(&parts) {
            self.summary.excluded += 1;
            return Ok(());
        }
        let (name, parents) = parts.split_last().expect("not empty");
        let path = parts.join(&b'/');
        if self.opts.layer {
            // the directory that gains or loses this entry (for an opaque marker: the one it empties)
            self.note_touched(parents);
        }
        if self.opts.layer && name.starts_with(b".wh.") {
            return self.whiteout(parents, name, &raw);
        }
        let owner = self.owner(&raw, m.uid, m.gid)?;
        let dir = self.walk(parents, &raw)?;
        let existing = kind_at(dir, name);
        if !kind.is_dir() && existing.is_some() {
            // a non-directory replaces a directory only in a layer (tar refuses to); clear it then
            if existing == Some(SFlag::S_IFDIR) && !self.opts.layer {
                return Err(UnpackError::Unsafe {
                    path: show(&raw),
                    why: "a directory of the archive is in the way",
                });
            }
            remove_at(dir, name).map_err(|source| UnpackError::Io {
                path: show(&raw),
                op: "replace",
                source,
            })?;
            self.cached = None;
        }
        // the parent may have been the cache's victim: open it again
        let at = At {
            dir: self.walk(parents, &raw)?,
            name,
            cname: cstr(name),
        };
        use tar::EntryType as T;
        let made = match kind {
            T::Directory => self.make_dir(&at, existing, &m, &owner, &path)?,
            T::Regular | T::Continuous | T::GNUSparse => self.make_file(e, &at, &m, &owner)?,
            T::Symlink => self.make_symlink(e, &at, &m, &owner)?,
            T::Link => self.make_hardlink(e, &at, parents, &raw)?,
            T::Char | T::Block | T::Fifo => self.make_node(e.header(), &at, &m, &owner)?,
            // PAX and GNU long-name headers are read by the tar crate; anything else (a volume label) is skipped
            _ => false,
        };
        if made && self.opts.layer {
            self.written.insert(path);
        }
        Ok(())
    }

    /// A layer's whiteout `name` in `parents`: the entry it names goes, or (the opaque marker) everything of
    /// the directory that no earlier layer-entry of this layer wrote.
    pub(super) fn whiteout(&mut self, parents: &[&[u8]], name: &[u8], raw: &[u8]) -> Result<()> {
        let dir = self.walk(parents, raw)?;
        self.summary.whiteouts += 1;
        let parent_path = parents.join(&b'/');
        if name == b".wh..wh..opq" {
            let d = Dir(open_dir(dir, b".")
                .map_err(|e| UnpackError::Io {
                    path: show(raw),
                    op: "open",
                    source: errno(e),
                })?
                .0);
            clear_dir(&d, &self.written, &parent_path)
        } else {
            let target = &name[4..];
            if target.is_empty() || target == b"." || target == b".." {
                return Err(UnpackError::Unsafe {
                    path: show(raw),
                    why: "a whiteout of nothing",
                });
            }
            remove_at(dir, target)
        }
        .map_err(|source| UnpackError::Io {
            path: show(raw),
            op: "whiteout",
            source,
        })?;
        self.cached = None;
        Ok(())
    }

    pub(super) fn make_dir(
        &mut self,
        at: &At<'_>,
        existing: Option<SFlag>,
        m: &Meta,
        owner: &Owner,
        path: &[u8],
    ) -> Result<bool> {
        let io = io_error(&m.raw);
        let mkdir = || {
            mkdirat(Some(at.dir), at.cname.as_c_str(), Mode::from_bits_truncate(0o700))
                .map_err(io_error(&m.raw)("mkdir"))
        };
        match existing {
            Some(SFlag::S_IFDIR) => {}
            Some(_) => {
                remove_at(at.dir, at.name).map_err(|source| UnpackError::Io {
                    path: show(&m.raw),
                    op: "replace",
                    source,
                })?;
                mkdir()?;
            }
            None => mkdir()?,
        }
        let d = open_dir(at.dir, at.name).map_err(io("open"))?;
        self.set_owner(d.raw(), owner, &m.raw)?;
        self.set_xattrs(d.raw(), &m.xattrs, &m.raw)?;
        self.dirs.push(DirMeta {
            path: path.to_vec(),
            mode: m.mode,
            mtime: m.mtime,
        });
        self.summary.dirs += 1;
        Ok(true)
    }

    pub(super) fn make_file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        at: &At<'_>,
        m: &Meta,
        owner: &Owner,
    ) -> Result<bool> {
        let io = io_error(&m.raw);
        let size = e.size();
        if size > self.free {
            return Err(UnpackError::TooBig {
                path: show(&m.raw),
                size,
                free: self.free,
            });
        }
        let fd = openat(
            Some(at.dir),
            at.cname.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io("create"))?;
        // SAFETY: a fresh descriptor from openat.
        let mut f = unsafe { File::from_raw_fd(fd) };
        // what the volume loses is charged where it is written: holes cost nothing
        let written = if m.sparse.is_sparse() {
            self.copy_pax_sparse(e, &mut f, &m.sparse, &m.raw)?
        } else {
            let n = self.copy(e, &mut f, m.kind == tar::EntryType::GNUSparse, &m.raw)?;
            self.free = self.free.saturating_sub(n);
            n
        };
        self.summary.bytes += written;
        self.set_owner(f.as_raw_fd(), owner, &m.raw)?;
        fchmod(f.as_raw_fd(), Mode::from_bits_truncate(m.mode)).map_err(io("chmod"))?;
        self.set_xattrs(f.as_raw_fd(), &m.xattrs, &m.raw)?;
        let t = timespec(m.mtime);
        futimens(f.as_raw_fd(), &t, &t).map_err(io("utimes"))?;
        self.summary.files += 1;
        Ok(true)
    }

    pub(super) fn make_symlink<R: Read>(
        &mut self,
        e: &tar::Entry<'_, R>,
        at: &At<'_>,
        m: &Meta,
        owner: &Owner,
    ) -> Result<bool> {
        let io = io_error(&m.raw);
        let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        if target.is_empty() || target.contains(&0) {
            return Err(UnpackError::Unsafe {
                path: show(&m.raw),
                why: "a symlink without a target",
            });
        }
        // the target is stored as given: it is never followed here
        symlinkat(cstr(&target).as_c_str(), Some(at.dir), at.cname.as_c_str()).map_err(io("symlink"))?;
        self.set_owner_at(at.dir, &at.cname, owner, &m.raw)?;
        at.stamp(m.mtime).map_err(io("utimes"))?;
        self.summary.symlinks += 1;
        Ok(true)
    }

    /// A hardlink to an entry already unpacked (never to anything outside the destination); `false` when its
    /// target is excluded.
    pub(super) fn make_hardlink<R: Read>(
        &mut self,
        e: &tar::Entry<'_, R>,
        at: &At<'_>,
        parents: &[&[u8]],
        raw: &[u8],
    ) -> Result<bool> {
        let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        let tparts = components(&target).map_err(|why| UnpackError::Unsafe { path: show(raw), why })?;
        let Some((tname, tparents)) = tparts.split_last() else {
            return Err(UnpackError::Unsafe {
                path: show(raw),
                why: "a hardlink to the destination itself",
            });
        };
        if self.excluded(&tparts) {
            self.summary.excluded += 1;
            return Ok(false);
        }
        let missing = || UnpackError::NoLinkTarget {
            path: show(raw),
            target: show(&target),
        };
        let tdir = self.walk_uncached(tparents, raw)?.ok_or_else(missing)?;
        if kind_at(tdir.raw(), tname).is_none() {
            return Err(missing());
        }
        let dir = self.walk(parents, raw)?;
        linkat(
            Some(tdir.raw()),
            cstr(tname).as_c_str(),
            Some(dir),
            at.cname.as_c_str(),
            AtFlags::empty(),
        )
        .map_err(io_error(raw)("link"))?;
        self.summary.hardlinks += 1;
        Ok(true)
    }

    /// A FIFO, or a device node when unpacking as root (else it is counted as skipped: `false`).
    pub(super) fn make_node(&mut self, h: &tar::Header, at: &At<'_>, m: &Meta, owner: &Owner) -> Result<bool> {
        let io = io_error(&m.raw);
        let (flag, dev) = match m.kind {
            tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
            k => {
                if !self.as_root {
                    self.summary.devices_skipped += 1;
                    return Ok(false);
                }
                let major = h.device_major().ok().flatten().unwrap_or(0) as u64;
                let minor = h.device_minor().ok().flatten().unwrap_or(0) as u64;
                let f = if k == tar::EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (f, nix::sys::stat::makedev(major, minor))
            }
        };
        mknodat(
            Some(at.dir),
            at.cname.as_c_str(),
            flag,
            Mode::from_bits_truncate(m.mode),
            dev,
        )
        .map_err(io("mknod"))?;
        self.set_owner_at(at.dir, &at.cname, owner, &m.raw)?;
        // mknod's mode went through the umask
        nix::sys::stat::fchmodat(
            Some(at.dir),
            at.cname.as_c_str(),
            Mode::from_bits_truncate(m.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(io("chmod"))?;
        at.stamp(m.mtime).map_err(io("utimes"))?;
        if flag == SFlag::S_IFIFO {
            self.summary.fifos += 1;
        } else {
            self.summary.devices += 1;
        }
        Ok(true)
    }
}
