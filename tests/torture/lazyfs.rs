//! lazyfs: an in-memory FUSE file system that loses, at a simulated power cut, everything that was not made
//! durable, in the spirit of LazyFS.
//!
//! The model is the strict one POSIX leaves a program with:
//! - a file's bytes and size are durable as they were at its last `fsync`/`fdatasync`;
//! - a name (create, mkdir, rename, unlink) is durable as its directory was at that directory's last `fsync`.
//!   Each directory counts on its own: a rename from one directory to another is durable in the target once the
//!   target is synced, and gone from the source once the source is synced (until then both names survive a cut).
//!
//! Attributes other than the size (mode, times) are not under test and survive as they are. Hard links are
//! refused (nothing in depot makes them). At [`LazyFs::cut`] every later operation fails with EIO (the machine is
//! off); [`LazyFs::remount`] mounts what was durable at the cut.
//!
//! The process that mounts it serves it on a thread of its own: that process must never map a file of the
//! mount (SQLite's `-shm` would): a page fault waiting on the mount holds the address space's lock that the
//! serving thread needs, and both wait forever. Other processes (the daemon, `depot fsck`) may do anything.

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Copy-on-write chunks: taking a durable snapshot of a file costs a vector of reference counts, not its bytes.
const CHUNK: usize = 64 * 1024;
/// No attribute caching in the kernel: every stat sees this file system's state.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = 1;
/// What `statfs` reports as the volume's size (the store checks free space).
const CAPACITY: u64 = 64 << 30;

#[derive(Clone, Default)]
struct Data {
    chunks: Vec<Arc<Vec<u8>>>,
    len: u64,
}

impl Data {
    fn read(&self, off: u64, size: usize) -> Vec<u8> {
        let end = (off + size as u64).min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(off) as usize);
        let mut pos = off;
        while pos < end {
            let (c, o) = ((pos / CHUNK as u64) as usize, (pos % CHUNK as u64) as usize);
            let n = (CHUNK - o).min((end - pos) as usize);
            out.extend_from_slice(&self.chunks[c][o..o + n]);
            pos += n as u64;
        }
        out
    }

    fn grow_chunks(&mut self, len: u64) {
        let need = len.div_ceil(CHUNK as u64) as usize;
        while self.chunks.len() < need {
            self.chunks.push(Arc::new(vec![0; CHUNK]));
        }
    }

    fn write(&mut self, off: u64, buf: &[u8]) {
        let end = off + buf.len() as u64;
        self.grow_chunks(end);
        let mut pos = off;
        let mut rest = buf;
        while !rest.is_empty() {
            let (c, o) = ((pos / CHUNK as u64) as usize, (pos % CHUNK as u64) as usize);
            let n = (CHUNK - o).min(rest.len());
            Arc::make_mut(&mut self.chunks[c])[o..o + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            pos += n as u64;
        }
        self.len = self.len.max(end);
    }

    /// Bytes past a shrink read as zeros when the file grows again.
    fn truncate(&mut self, len: u64) {
        if len < self.len {
            self.chunks.truncate(len.div_ceil(CHUNK as u64) as usize);
            let o = (len % CHUNK as u64) as usize;
            if o != 0 {
                if let Some(last) = self.chunks.last_mut() {
                    Arc::make_mut(last)[o..].fill(0);
                }
            }
        } else {
            self.grow_chunks(len);
        }
        self.len = len;
    }
}

#[derive(Clone)]
enum Kind {
    File(Data),
    Dir(BTreeMap<OsString, u64>),
    Symlink(OsString),
    Socket,
}

struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
    nlink: u32,
    open: u32,
    /// A directory's parent, for `..`.
    parent: u64,
}

impl Node {
    fn new(kind: Kind, perm: u16, parent: u64) -> Node {
        Node {
            kind,
            perm,
            mtime: SystemTime::now(),
            nlink: 0,
            open: 0,
            parent,
        }
    }

    fn file_type(&self) -> FileType {
        match self.kind {
            Kind::File(_) => FileType::RegularFile,
            Kind::Dir(_) => FileType::Directory,
            Kind::Symlink(_) => FileType::Symlink,
            Kind::Socket => FileType::Socket,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let size = match &self.kind {
            Kind::File(d) => d.len,
            Kind::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.mtime,
            crtime: self.mtime,
            kind: self.file_type(),
            perm: self.perm,
            nlink: self.nlink.max(1),
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

/// A durable directory entry: what a remount recreates under the name.
#[derive(Clone)]
struct Entry {
    ino: u64,
    kind: DurableKind,
    perm: u16,
}

#[derive(Clone)]
enum DurableKind {
    File,
    Dir,
    Symlink(OsString),
    Socket,
}

/// Counts of what the layer was asked to make durable, for the suite's report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub writes: u64,
}

#[derive(Default)]
struct State {
    nodes: HashMap<u64, Node>,
    /// File contents as of each file's last fsync.
    synced_data: HashMap<u64, Data>,
    /// Directory entries as of each directory's last fsync.
    synced_dirs: HashMap<u64, BTreeMap<OsString, Entry>>,
    next_ino: u64,
    dead: bool,
    stats: Stats,
}

type R<T> = Result<T, Errno>;

impl State {
    fn fresh() -> State {
        let mut s = State {
            next_ino: ROOT + 1,
            ..State::default()
        };
        let mut root = Node::new(Kind::Dir(BTreeMap::new()), 0o755, ROOT);
        root.nlink = 1;
        s.nodes.insert(ROOT, root);
        s
    }

    fn alive(&self) -> R<()> {
        if self.dead {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: u64) -> R<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> R<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> R<&BTreeMap<OsString, u64>> {
        match &self.node(ino)?.kind {
            Kind::Dir(e) => Ok(e),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> R<&mut BTreeMap<OsString, u64>> {
        let n = self.node_mut(ino)?;
        n.mtime = SystemTime::now();
        match &mut n.kind {
            Kind::Dir(e) => Ok(e),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn data_mut(&mut self, ino: u64) -> R<&mut Data> {
        let n = self.node_mut(ino)?;
        n.mtime = SystemTime::now();
        match &mut n.kind {
            Kind::File(d) => Ok(d),
            Kind::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> R<u64> {
        self.dir(parent)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn create(&mut self, parent: u64, name: &OsStr, kind: Kind, perm: u16) -> R<u64> {
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let mut node = Node::new(kind, perm, parent);
        node.nlink = 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    /// A name is gone: the node goes with its last name and last open handle.
    fn unlinked(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = n.nlink.saturating_sub(1);
            if n.nlink == 0 && n.open == 0 {
                self.nodes.remove(&ino);
                self.forget_synced(ino);
            }
        }
    }

    /// Drop a dead node's durable bytes unless a durable name still reaches them.
    fn forget_synced(&mut self, ino: u64) {
        if self.nodes.contains_key(&ino) {
            return;
        }
        if !self.synced_dirs.values().any(|d| d.values().any(|e| e.ino == ino)) {
            self.synced_data.remove(&ino);
            self.synced_dirs.remove(&ino);
        }
    }

    /// Whether `ino` may lose its name to an rmdir (`dir`) or an unlink, or to a rename of a directory (`dir`)
    /// or a file over it: POSIX's errors otherwise.
    fn may_go(&self, ino: u64, dir: bool) -> R<()> {
        match (&self.node(ino)?.kind, dir) {
            (Kind::Dir(e), true) if !e.is_empty() => Err(Errno::ENOTEMPTY),
            (Kind::Dir(_), false) => Err(Errno::EISDIR),
            (k, true) if !matches!(k, Kind::Dir(_)) => Err(Errno::ENOTDIR),
            _ => Ok(()),
        }
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> R<()> {
        let ino = self.lookup(parent, name)?;
        self.may_go(ino, want_dir)?;
        self.dir_mut(parent)?.remove(name);
        self.unlinked(ino);
        Ok(())
    }

    fn rename(&mut self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: RenameFlags) -> R<()> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.lookup(parent, name)?;
        self.dir(newparent)?;
        let is_dir = matches!(self.node(ino)?.kind, Kind::Dir(_));
        if let Some(&old) = self.dir(newparent)?.get(newname) {
            if old == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            self.may_go(old, is_dir)?;
            self.dir_mut(newparent)?.remove(newname);
            self.unlinked(old);
        }
        self.dir_mut(parent)?.remove(name);
        self.dir_mut(newparent)?.insert(newname.to_os_string(), ino);
        if is_dir {
            self.node_mut(ino)?.parent = newparent;
        }
        Ok(())
    }

    fn fsync(&mut self, ino: u64) -> R<()> {
        self.stats.fsyncs += 1;
        if let Kind::File(d) = &self.node(ino)?.kind {
            let d = d.clone();
            self.synced_data.insert(ino, d);
        }
        Ok(())
    }

    fn fsyncdir(&mut self, ino: u64) -> R<()> {
        self.stats.dir_fsyncs += 1;
        let mut entries = BTreeMap::new();
        for (name, &child) in self.dir(ino)? {
            let n = self.node(child)?;
            let kind = match &n.kind {
                Kind::File(_) => DurableKind::File,
                Kind::Dir(_) => DurableKind::Dir,
                Kind::Symlink(t) => DurableKind::Symlink(t.clone()),
                Kind::Socket => DurableKind::Socket,
            };
            entries.insert(
                name.clone(),
                Entry {
                    ino: child,
                    kind,
                    perm: n.perm,
                },
            );
        }
        let before = self.synced_dirs.insert(ino, entries).unwrap_or_default();
        for e in before.values() {
            self.forget_synced(e.ino);
        }
        Ok(())
    }

    /// What the disk holds after a cut now: every durable name from the root down, with each file's durable
    /// bytes (empty if it was never synced) and each directory's durable entries (none if never synced).
    fn durable(&self) -> State {
        let mut s = State {
            next_ino: self.next_ino,
            ..State::default()
        };
        let mut root = Node::new(Kind::Dir(BTreeMap::new()), self.nodes[&ROOT].perm, ROOT);
        root.nlink = 1;
        s.nodes.insert(ROOT, root);
        let mut seen_dirs = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(dir) = stack.pop() {
            let Some(entries) = self.synced_dirs.get(&dir) else {
                continue;
            };
            s.synced_dirs.insert(dir, entries.clone());
            let mut names = BTreeMap::new();
            for (name, e) in entries {
                if let Some(n) = s.nodes.get_mut(&e.ino) {
                    // a second durable name: a rename synced in its target but not yet in its source
                    if matches!(n.kind, Kind::Dir(_)) {
                        continue;
                    }
                    n.nlink += 1;
                    names.insert(name.clone(), e.ino);
                    continue;
                }
                let kind = match &e.kind {
                    DurableKind::File => {
                        let d = self.synced_data.get(&e.ino).cloned().unwrap_or_default();
                        s.synced_data.insert(e.ino, d.clone());
                        Kind::File(d)
                    }
                    DurableKind::Dir => {
                        if seen_dirs.insert(e.ino) {
                            stack.push(e.ino);
                        }
                        Kind::Dir(BTreeMap::new())
                    }
                    DurableKind::Symlink(t) => Kind::Symlink(t.clone()),
                    DurableKind::Socket => Kind::Socket,
                };
                let mut n = Node::new(kind, e.perm, dir);
                n.nlink = 1;
                s.nodes.insert(e.ino, n);
                names.insert(name.clone(), e.ino);
            }
            if let Some(Node { kind: Kind::Dir(d), .. }) = s.nodes.get_mut(&dir) {
                *d = names;
            }
        }
        s
    }

    fn used(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.kind {
                Kind::File(d) => d.len,
                _ => 4096,
            })
            .sum()
    }
}

struct Fs(Arc<Mutex<State>>);

impl Fs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the live state, unless the power is off.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> R<T>) -> R<T> {
        let mut s = self.lock();
        s.alive()?;
        f(&mut s)
    }

    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut State) -> R<u64>) {
        match self.with(|s| {
            let ino = f(s)?;
            Ok(s.node(ino)?.attr(ino))
        }) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut State) -> R<()>) {
        match self.with(f) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |s| s.lookup(parent.0, name))
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|s| Ok(s.node(ino.0)?.attr(ino.0))) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.with(|s| {
            if let Some(len) = size {
                s.data_mut(ino.0)?.truncate(len);
            }
            let n = s.node_mut(ino.0)?;
            if let Some(m) = mode {
                n.perm = (m & 0o7777) as u16;
            }
            match mtime {
                Some(TimeOrNow::SpecificTime(t)) => n.mtime = t,
                Some(TimeOrNow::Now) => n.mtime = SystemTime::now(),
                None => {}
            }
            Ok(n.attr(ino.0))
        });
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.with(|s| match &s.node(ino.0)?.kind {
            Kind::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }) {
            Ok(t) => reply.data(t.as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let kind = match mode & nix::libc::S_IFMT {
            nix::libc::S_IFREG => Kind::File(Data::default()),
            nix::libc::S_IFSOCK => Kind::Socket,
            _ => return reply.error(Errno::EPERM),
        };
        self.entry(reply, |s| s.create(parent.0, name, kind, perm(mode, umask)))
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.entry(reply, |s| {
            s.create(parent.0, name, Kind::Dir(BTreeMap::new()), perm(mode, umask))
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| s.remove(parent.0, name, false))
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| s.remove(parent.0, name, true))
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.entry(reply, |s| {
            s.create(
                parent.0,
                link_name,
                Kind::Symlink(target.as_os_str().to_os_string()),
                0o777,
            )
        })
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| s.rename(parent.0, name, newparent.0, newname, flags))
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|s| {
            s.node_mut(ino.0)?.open += 1;
            Ok(())
        }) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|s| match &s.node(ino.0)?.kind {
            Kind::File(d) => Ok(d.read(offset, size as usize)),
            _ => Err(Errno::EISDIR),
        }) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|s| {
            s.stats.writes += 1;
            s.data_mut(ino.0)?.write(offset, data);
            Ok(())
        }) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.empty(reply, |_| Ok(()))
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Even after a cut: the kernel lets go of the handle either way.
        let mut s = self.lock();
        if let Some(n) = s.nodes.get_mut(&ino.0) {
            n.open = n.open.saturating_sub(1);
            if n.open == 0 && n.nlink == 0 {
                s.nodes.remove(&ino.0);
                s.forget_synced(ino.0);
            }
        }
        reply.ok()
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.empty(reply, |s| s.fsync(ino.0))
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let r = self.with(|s| {
            let n = s.node(ino.0)?;
            let mut out = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (n.parent, FileType::Directory, OsString::from("..")),
            ];
            for (name, &child) in s.dir(ino.0)? {
                out.push((child, s.node(child)?.file_type(), name.clone()));
            }
            Ok(out)
        });
        match r {
            Ok(entries) => {
                for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.empty(reply, |s| s.fsyncdir(ino.0))
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|s| Ok((s.used(), s.nodes.len() as u64))) {
            Ok((used, files)) => {
                let (blocks, free) = (CAPACITY / 4096, CAPACITY.saturating_sub(used) / 4096);
                reply.statfs(blocks, free, free, files + 1_000_000, 1_000_000, 4096, 255, 4096)
            }
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |_| Ok(()))
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.with(|s| {
            let ino = match s.lookup(parent.0, name) {
                Ok(_) if flags & nix::libc::O_EXCL != 0 => return Err(Errno::EEXIST),
                Ok(ino) => {
                    if flags & nix::libc::O_TRUNC != 0 {
                        s.data_mut(ino)?.truncate(0);
                    }
                    ino
                }
                Err(_) => s.create(parent.0, name, Kind::File(Data::default()), perm(mode, umask))?,
            };
            let n = s.node_mut(ino)?;
            n.open += 1;
            Ok(n.attr(ino))
        });
        match r {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| {
            if mode != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let d = s.data_mut(ino.0)?;
            if offset + length > d.len {
                d.truncate(offset + length);
            }
            Ok(())
        })
    }
}

/// A mounted lazyfs; unmounted on drop.
pub struct LazyFs {
    mnt: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    /// What the disk held at the last cut, mounted by [`LazyFs::remount`].
    after_cut: Option<State>,
}

impl LazyFs {
    /// Mount an empty file system at `mnt` (an existing directory).
    pub fn mount(mnt: &Path) -> LazyFs {
        let mut fs = LazyFs {
            mnt: mnt.to_path_buf(),
            state: Arc::new(Mutex::new(State::fresh())),
            session: None,
            after_cut: None,
        };
        fs.spawn();
        fs
    }

    fn spawn(&mut self) {
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("lazyfs".into()), MountOption::DefaultPermissions];
        let session = fuser::spawn_mount2(Fs(self.state.clone()), &self.mnt, &config)
            .unwrap_or_else(|e| panic!("mount lazyfs at {}: {e}", self.mnt.display()));
        self.session = Some(session);
    }

    /// The power goes off now: from here every operation fails with EIO, and what the disk holds is what was
    /// durable at this instant. Stop every process using the mount, then [`LazyFs::remount`].
    pub fn cut(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.after_cut = Some(s.durable());
        s.dead = true;
    }

    /// Power back: unmount, and mount what was durable at the cut.
    pub fn remount(&mut self) {
        let durable = self.after_cut.take().expect("remount after a cut");
        if let Some(s) = self.session.take() {
            // the unmount is done before the join: a session that then ends with ECONNABORTED (the kernel aborted
            // the connection while requests of the dead processes were still queued) ended because of it
            match s.umount_and_join() {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) => panic!("unmount lazyfs: {e}"),
            }
        }
        let stats = self.stats();
        self.state = Arc::new(Mutex::new(State { stats, ..durable }));
        self.spawn();
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stats
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
