//! Docker image → LXC template: its layers flattened in order by the safe unpacker in layer mode (whiteouts
//! and opaque directories applied), and the tree packed back into one tarball, as a rootfs template is. The
//! packing keeps what the unpacker keeps: owners, modes, mtimes, xattrs (PAX `SCHILY.xattr.*`), hardlinks,
//! symlinks, device nodes and fifos.

use super::index::{NameError, TemplateName};
use super::meta::{self, Meta};
use super::unpack::{self, UnpackError};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The template name of a converted image that was given none: `DIST/RELEASE/ARCH/docker` from its repository's
/// last component and its tag, characters a template name cannot have made `-`.
pub fn template_name(reference: &str, arch: &str) -> Result<TemplateName, NameError> {
    let (repo, tag) = crate::reference::split_tag(reference);
    let dist = repo.rsplit('/').next().unwrap_or(repo);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+~-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string()
    };
    TemplateName::new(&clean(dist), &clean(tag.unwrap_or("latest")), arch, "docker")
}

/// The template metadata of the image `reference` with config document `config`: LXC's common config for
/// `kernel_arch`, and the image's entrypoint and command, environment, working directory and user as its init.
pub fn meta_of(reference: &str, config: &[u8], kernel_arch: &str) -> Meta {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Cfg {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
        user: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Doc {
        #[serde(default)]
        config: Option<Cfg>,
    }
    let doc: Doc = serde_json::from_slice(config).unwrap_or_default();
    let cfg = doc.config.unwrap_or_default();
    let mut cmd = cfg.entrypoint.unwrap_or_default();
    cmd.extend(cfg.cmd.unwrap_or_default());
    Meta {
        configs: [(
            "config".to_string(),
            format!("lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = {kernel_arch}\n"),
        )]
        .into(),
        create_message: Some(format!("Made by depot from the Docker image {reference}\n")),
        init: Some(meta::Init {
            cmd,
            env: cfg.env.unwrap_or_default(),
            cwd: cfg.working_dir.filter(|w| !w.is_empty()),
            user: cfg.user.filter(|u| !u.is_empty()),
        }),
        ..Default::default()
    }
}

/// Flatten decoded layer tarballs, lowest first, into `tree` (an existing empty directory).
pub fn flatten(
    layers: impl IntoIterator<Item = io::Result<Box<dyn Read + Send>>>,
    tree: &Path,
) -> Result<unpack::Summary, UnpackError> {
    let opts = unpack::Options {
        layer: true,
        ..Default::default()
    };
    let mut total = unpack::Summary::default();
    for (i, l) in layers.into_iter().enumerate() {
        let r = l.map_err(|source| UnpackError::Broken {
            entries: 0,
            source: io::Error::new(source.kind(), format!("layer {i}: {source}")),
        })?;
        let s = unpack::unpack_into(r, tree, &opts)?;
        total.files += s.files;
        total.dirs += s.dirs;
        total.symlinks += s.symlinks;
        total.hardlinks += s.hardlinks;
        total.devices += s.devices;
        total.devices_skipped += s.devices_skipped;
        total.fifos += s.fifos;
        total.xattrs += s.xattrs;
        total.whiteouts += s.whiteouts;
        total.bytes += s.bytes;
    }
    Ok(total)
}

/// A path's xattrs, not following a symlink.
fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(k) = CString::new(name) else { continue };
        let mut v = vec![0u8; 64 * 1024];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.push((name.to_vec(), v));
        }
    }
    out
}

/// One PAX extended header record: `LEN key=value\n`, LEN counting itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// What [`pack`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Packed {
    pub entries: u64,
    pub bytes: u64,
}

/// Pack the tree at `root` into a tar stream on `out`, entries `./…` in name order (the same tree gives the
/// same bytes).
pub fn pack(root: &Path, out: impl Write) -> io::Result<Packed> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    let mut packed = Packed::default();
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let meta = std::fs::symlink_metadata(&full)?;
        let name = Path::new(".").join(&rel);
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        h.set_mtime(meta.mtime().max(0) as u64);
        let xa = xattrs(&full);
        if !xa.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &xa {
                data.extend(pax_record(&[b"SCHILY.xattr.", &k[..]].concat(), v));
            }
            let mut x = tar::Header::new_ustar();
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_size(data.len() as u64);
            x.set_mode(0o644);
            x.set_path("./PaxHeaders/xattrs")?;
            x.set_cksum();
            b.append(&x, &data[..])?;
        }
        packed.entries += 1;
        if ft.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &name, io::empty())?;
            let mut kids: Vec<_> = std::fs::read_dir(&full)?
                .map(|e| e.map(|e| rel.join(e.file_name())))
                .collect::<io::Result<_>>()?;
            kids.sort();
            stack.extend(kids.into_iter().rev());
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&full)?;
            h.set_size(0);
            b.append_link(&mut h, &name, &target)?;
        } else if ft.is_file() && meta.nlink() > 1 && links.contains_key(&(meta.dev(), meta.ino())) {
            let first = links[&(meta.dev(), meta.ino())].clone();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, &name, &first)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                links.insert((meta.dev(), meta.ino()), name.clone());
            }
            packed.bytes += meta.len();
            let f = std::fs::File::open(&full)?;
            b.append_data(&mut h, &name, f)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let rdev = meta.rdev();
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            h.set_size(0);
            b.append_data(&mut h, &name, io::empty())?;
        }
        // sockets are not archived (tar leaves them out too)
    }
    b.finish()?;
    Ok(packed)
}

/// A PAX record, for the tests of the unpacker.
#[cfg(test)]
pub(crate) fn tests_pax(key: &str, value: &str) -> Vec<u8> {
    pax_record(key.as_bytes(), value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_lengths_count_themselves() {
        for (k, v) in [
            (&b"a"[..], &b"b"[..]),
            (b"SCHILY.xattr.user.x", &[7u8; 90][..]),
            (b"k", &[1u8; 994][..]),
        ] {
            let r = pax_record(k, v);
            let (len, _) = std::str::from_utf8(&r[..r.iter().position(|b| *b == b' ').unwrap()])
                .map(|l| (l.parse::<usize>().unwrap(), ()))
                .unwrap();
            assert_eq!(len, r.len());
        }
    }

    #[test]
    fn pack_then_unpack_keeps_the_tree() {
        let d = crate::testutil::tempdir();
        let src = d.join("src");
        std::fs::create_dir_all(src.join("etc/deep")).unwrap();
        std::fs::write(src.join("etc/deep/file"), b"content").unwrap();
        std::fs::hard_link(src.join("etc/deep/file"), src.join("etc/link")).unwrap();
        std::os::unix::fs::symlink("deep/file", src.join("etc/sym")).unwrap();
        let mut tar = Vec::new();
        let p = pack(&src, &mut tar).unwrap();
        assert_eq!(p.entries, 6);
        let dest = d.join("dest");
        let s = unpack::unpack(&tar[..], &dest, &Default::default()).unwrap();
        assert_eq!((s.files, s.hardlinks, s.symlinks), (1, 1, 1), "{s:?}");
        assert_eq!(std::fs::read(dest.join("etc/link")).unwrap(), b"content");
        assert_eq!(
            std::fs::read_link(dest.join("etc/sym")).unwrap(),
            Path::new("deep/file")
        );
        assert_eq!(std::fs::metadata(dest.join("etc/link")).unwrap().nlink(), 2);
    }
}
