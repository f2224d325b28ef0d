//! `depot-qpkg`: depot's own QPKG assembler, byte-compatible with QDK's layout (spec/qpkg-format.md §2.5):
//! a shell header, `control.tar` holding `control.tar.gz`, `data.tar.gz`, and the 100-byte tail with model, name,
//! version, the `QNAPQPKG` flag and the checksum field.
//!
//! usage: depot-qpkg --arch x86_64|arm_64|arm-x41 --out DIR [--src DIR] [--binary PATH]
//! Writes `DIR/<name>_<version>_<arch>.qpkg`, name and version from `SRC/qpkg.cfg` (`@VERSION@` is depot's).
//! `SRC` is depot's own `qpkg/` (the default) or another app's package, such as `qpkg/examples/hello-app`.

use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Per QDK arch: the `uname -m` pattern the header requires, the `/etc/platform.conf` Platform it rejects, and
/// the board profile it ships.
fn arch_rules(arch: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match arch {
        "x86_64" => Some(("x86_64", "", "x86_64.conf")),
        "arm_64" => Some(("aarch64", "", "arm_64.conf")),
        "arm-x41" => Some(("armv7l", "ARM_MS", "arm-x41.conf")),
        _ => None,
    }
}

struct Entry {
    name: String,
    mode: u32,
    bytes: Vec<u8>,
}

fn mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

/// A ustar archive of `entries`, each as `./name`, owned by root.
fn tar(entries: &[Entry], pad_to: usize) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let t = mtime();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(e.bytes.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(t);
        h.set_entry_type(tar::EntryType::Regular);
        // `./name`, as `tar -C dir .` writes it (the tar crate's path setter would drop the `./`)
        let name = format!("./{}", e.name);
        let field = &mut h.as_ustar_mut().expect("ustar header").name;
        if name.len() > field.len() {
            return Err(std::io::Error::other(format!("{name}: name too long")));
        }
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, e.bytes.as_slice())?;
    }
    let mut out = b.into_inner()?;
    // GNU tar writes whole records (QDK's control.tar is a multiple of 10240 bytes).
    if pad_to > 0 && out.len() % pad_to != 0 {
        out.resize(out.len().div_ceil(pad_to) * pad_to, 0);
    }
    Ok(out)
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes)?;
    e.finish()
}

/// The 100-byte tail: MODEL(10) | 50 reserved, the checksum at [-60,-50) | NAME(20) | VERSION(10) | FLAG(10).
/// The checksum is QDK's `qpkg_encrypt`: the first 10 digits of `total_size * 3589 + 1000000000`.
pub fn tail(name: &str, version: &str, total_size: u64) -> Vec<u8> {
    let field = |s: &str, n: usize| format!("{:<n$}", &s[..s.len().min(n)]);
    let sum = (total_size * 3589 + 1_000_000_000).to_string();
    let t = format!(
        "{}{}{}{}{}{}{}",
        field("", 10),
        field("", 30),
        field(&sum[..10.min(sum.len())], 10),
        field("", 10),
        field(name, 20),
        field(version, 10),
        "QNAPQPKG  "
    );
    debug_assert_eq!(t.len(), 100);
    t.into_bytes()
}

/// Fill the header's placeholders; `script_len` is the header's own length, so iterate until it is stable.
fn header(template: &str, version: &str, arch: &str, cpu: &str, reject: &str, ctrl: usize, data: usize) -> Vec<u8> {
    let mut len = template.len();
    loop {
        let h = template
            .replace("@VERSION@", version)
            .replace("@ARCH@", arch)
            .replace("@CPU_RE@", cpu)
            .replace("@REJECT@", reject)
            .replace("@SCRIPT_LEN@", &len.to_string())
            .replace("@CTRL_LEN@", &ctrl.to_string())
            .replace("@DATA_LEN@", &data.to_string());
        if h.len() == len {
            return h.into_bytes();
        }
        len = h.len();
    }
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// A `KEY="value"` setting of a `qpkg.cfg` (sourced by sh; only the plain assignments QDK's files use).
fn cfg_value(cfg: &str, key: &str) -> Option<String> {
    cfg.lines().find_map(|l| {
        let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim_matches('"').to_string())
    })
}

/// The files of `data.tar.gz`: the binary (named as the package), every file of `shared/` (executable ones mode
/// 755), the board profile when `QPKG_BOARD_DIR` names where they are, and the App Center icons when drawn.
fn data_entries(src: &Path, cfg: &str, name: &str, board: &str, binary: Option<&Path>) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    if let Some(b) = binary {
        entries.push(Entry {
            name: name.into(),
            mode: 0o755,
            bytes: read(b)?,
        });
    }
    let shared = src.join("shared");
    let mut files: Vec<_> = std::fs::read_dir(&shared)
        .map_err(|e| format!("{}: {e}", shared.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .collect();
    files.sort_by_key(|e| e.file_name());
    for f in files {
        let exec =
            std::os::unix::fs::PermissionsExt::mode(&f.metadata().map_err(|e| e.to_string())?.permissions()) & 0o111;
        entries.push(Entry {
            name: f.file_name().to_string_lossy().into_owned(),
            mode: if exec != 0 { 0o755 } else { 0o644 },
            bytes: read(&f.path())?,
        });
    }
    if let Some(dir) = cfg_value(cfg, "QPKG_BOARD_DIR") {
        entries.push(Entry {
            name: "board.conf".into(),
            mode: 0o644,
            bytes: read(&src.join(dir).join(board))?,
        });
    }
    for (icon, member) in [
        ("", ".qpkg_icon.gif"),
        ("_80", ".qpkg_icon_80.gif"),
        ("_gray", ".qpkg_icon_gray.gif"),
    ] {
        let p = src.join("icons").join(format!("{name}{icon}.gif"));
        if p.exists() {
            entries.push(Entry {
                name: member.into(),
                mode: 0o644,
                bytes: read(&p)?,
            });
        }
    }
    Ok(entries)
}

/// `control.tar`: QDK's one member `control.tar.gz` holding the installer, the hooks, the settings and the build
/// date, padded to whole tar records.
fn control(src: &Path, cfg: &str) -> std::io::Result<Vec<u8>> {
    let date = time::OffsetDateTime::now_utc();
    let built_info = format!("time = {:04}{:02}{:02}\n", date.year(), date.month() as u8, date.day());
    let routines = src.join("package_routines");
    let entries = [
        Entry {
            name: "qinstall.sh".into(),
            mode: 0o755,
            bytes: std::fs::read(src.join("qinstall.sh"))?,
        },
        Entry {
            name: "package_routines".into(),
            mode: 0o644,
            // QDK always ships the hooks file; a package of ours that needs none may leave it out
            bytes: if routines.exists() {
                std::fs::read(routines)?
            } else {
                Vec::new()
            },
        },
        Entry {
            name: "qpkg.cfg".into(),
            mode: 0o644,
            bytes: cfg.as_bytes().to_vec(),
        },
        Entry {
            name: "built_info".into(),
            mode: 0o644,
            bytes: built_info.into_bytes(),
        },
    ];
    let control_gz = gzip(&tar(&entries, 0)?)?;
    tar(
        &[Entry {
            name: "control.tar.gz".into(),
            mode: 0o644,
            bytes: control_gz,
        }],
        10240,
    )
}

/// Assemble the package whose sources are in `src` (its `qpkg.cfg` names it) into `out`.
fn assemble(arch: &str, src: &Path, binary: Option<&Path>, out: &Path) -> Result<PathBuf, String> {
    let (cpu, reject, board) = arch_rules(arch).ok_or(format!("unknown arch {arch} (x86_64, arm_64, arm-x41)"))?;
    let cfg = String::from_utf8(read(&src.join("qpkg.cfg"))?)
        .map_err(|e| e.to_string())?
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    let name = cfg_value(&cfg, "QPKG_NAME").ok_or("qpkg.cfg has no QPKG_NAME")?;
    let version = cfg_value(&cfg, "QPKG_VER").ok_or("qpkg.cfg has no QPKG_VER")?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("QPKG_NAME {name:?}: letters, digits, - and _ only"));
    }
    let control = control(src, &cfg).map_err(|e| format!("control.tar: {e}"))?;
    let data = gzip(&tar(&data_entries(src, &cfg, &name, board, binary)?, 0).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    // a package may bring its own header; ours serves any package (it is written in terms of @NAME@)
    let template = match std::fs::read_to_string(src.join("header.sh")) {
        Ok(t) => t,
        Err(_) => include_str!("header.sh").to_string(),
    };
    let head = header(
        &template.replace("@NAME@", &name),
        &version,
        arch,
        cpu,
        reject,
        control.len(),
        data.len(),
    );
    let total = (head.len() + control.len() + data.len() + 100) as u64;
    let mut file = Vec::with_capacity(total as usize);
    file.extend_from_slice(&head);
    file.extend_from_slice(&control);
    file.extend_from_slice(&data);
    file.extend_from_slice(&tail(&name, &version, total));
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join(format!("{name}_{version}_{arch}.qpkg"));
    let tmp = path.with_extension("qpkg.tmp");
    std::fs::write(&tmp, &file)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn run() -> Result<PathBuf, String> {
    let (mut arch, mut binary, mut out, mut src) = (None, None, None, PathBuf::from("qpkg"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--arch" => arch = Some(val()?),
            "--binary" => binary = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--src" => src = PathBuf::from(val()?),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let arch = arch.ok_or("--arch is required")?;
    let out = out.ok_or("--out is required")?;
    assemble(&arch, &src, binary.as_deref(), &out)
}

fn main() {
    match run() {
        Ok(p) => println!("{}", p.display()),
        Err(e) => {
            eprintln!("depot-qpkg: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_matches_the_published_example() {
        // QDK-Guide's QNAP_HelloWorld_0.6_x86_64.qpkg: 32117 bytes, checksum field 1115267913
        let t = tail("QNAP_HelloWorld", "0.6", 32117);
        assert_eq!(t.len(), 100);
        assert_eq!(&t[40..50], b"1115267913");
        assert_eq!(&t[90..], b"QNAPQPKG  ");
        assert_eq!(&t[60..80], b"QNAP_HelloWorld     ");
    }

    #[test]
    fn header_length_is_self_consistent() {
        let h = header(
            "x=@SCRIPT_LEN@ y=@CTRL_LEN@\n",
            "1",
            "x86_64",
            "x86_64",
            "",
            20480,
            999_999,
        );
        let text = String::from_utf8(h.clone()).unwrap();
        assert_eq!(text, format!("x={} y=20480\n", h.len()));
    }
}
