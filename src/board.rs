//! Board profiles (`board/*.conf`): per-NAS-family defaults, compiled in and loadable from a file. The format is
//! `key = value` lines with `#` comments, simple enough for the QPKG's shell scripts to read too.

use std::collections::BTreeMap;
use std::path::Path;

/// The profiles shipped in `board/`, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("generic", include_str!("../board/generic.conf")),
    ("x86_64", include_str!("../board/x86_64.conf")),
    ("arm_64", include_str!("../board/arm_64.conf")),
    ("arm-x41", include_str!("../board/arm-x41.conf")),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    #[error("{file}:{line}: expected `key = value`")]
    Syntax { file: String, line: usize },
    #[error("{file}:{line}: unknown key {key:?}")]
    UnknownKey { file: String, line: usize, key: String },
    #[error("{file}: bad value for {key}: {value:?} ({why})")]
    Value {
        file: String,
        key: String,
        value: String,
        why: String,
    },
    #[error("no board profile named {0:?} (known: generic, x86_64, arm_64, arm-x41; or give a file path)")]
    Unknown(String),
    #[error("{file}: {msg}")]
    Io { file: String, msg: String },
}

/// Parse `key = value` lines into a map, refusing keys not in `known`.
pub fn parse_kv(text: &str, file: &str, known: &[&str]) -> Result<BTreeMap<String, String>, BoardError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(BoardError::Syntax {
            file: file.into(),
            line: i + 1,
        })?;
        let (k, v) = (k.trim(), v.trim());
        if !known.contains(&k) {
            return Err(BoardError::UnknownKey {
                file: file.into(),
                line: i + 1,
                key: k.into(),
            });
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub const BOARD_KEYS: &[&str] = &[
    "name",
    "cpu",
    "data_root",
    "socket",
    "socket_group",
    "tcp",
    "platform",
    "concurrent_downloads",
    "memory_budget_mb",
    "catalog_url",
    "lxc_sources",
    "log_file",
    "policy",
    "registry",
    "registry_tls_cert",
    "registry_tls_key",
];

/// A parsed profile: its settings as text, applied to a [`crate::config::Config`] by the config layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub name: String,
    pub cpus: Vec<String>,
    pub settings: BTreeMap<String, String>,
}

impl Board {
    pub fn parse(text: &str, file: &str) -> Result<Board, BoardError> {
        let settings = parse_kv(text, file, BOARD_KEYS)?;
        let name = settings.get("name").cloned().unwrap_or_else(|| file.to_string());
        let cpus = settings
            .get("cpu")
            .map(|c| c.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        Ok(Board { name, cpus, settings })
    }

    pub fn builtin(name: &str) -> Result<Board, BoardError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| BoardError::Unknown(name.into()))?;
        Board::parse(text, &format!("board/{name}.conf"))
    }

    /// A name of a built-in profile, or a path to a profile file.
    pub fn load(name_or_path: &str) -> Result<Board, BoardError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".conf") {
            let text = std::fs::read_to_string(name_or_path).map_err(|e| BoardError::Io {
                file: name_or_path.into(),
                msg: e.to_string(),
            })?;
            return Board::parse(&text, name_or_path);
        }
        Board::builtin(name_or_path)
    }

    /// On QTS (it has `/etc/platform.conf` and `/sbin/getcfg` under `root`), the NAS profile whose `cpu` lists
    /// `machine` (`uname -m`); anywhere else, `generic`.
    pub fn detect(root: &Path, machine: &str) -> Board {
        let on_qts = root.join("etc/platform.conf").exists() && root.join("sbin/getcfg").exists();
        if on_qts {
            for (name, _) in BUILTIN.iter().filter(|(n, _)| *n != "generic") {
                if let Ok(b) = Board::builtin(name) {
                    if b.cpus.iter().any(|c| c == machine) {
                        return b;
                    }
                }
            }
        }
        Board::builtin("generic").expect("the generic profile is built in and valid")
    }
}

/// `uname -m` of this machine.
pub fn machine() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_are_complete() {
        for (name, _) in BUILTIN {
            let b = Board::builtin(name).unwrap();
            assert_eq!(&b.name, name);
            for k in BOARD_KEYS {
                assert!(b.settings.contains_key(*k), "{name} lacks {k}");
            }
        }
        assert_eq!(Board::builtin("arm_64").unwrap().settings["concurrent_downloads"], "2");
        assert_eq!(Board::builtin("x86_64").unwrap().settings["concurrent_downloads"], "3");
        assert!(matches!(Board::builtin("arm-x31"), Err(BoardError::Unknown(_))));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(
            Board::parse("# c\nname = x\nbogus line\n", "f"),
            Err(BoardError::Syntax {
                file: "f".into(),
                line: 3
            })
        );
        assert!(matches!(
            Board::parse("colour = red\n", "f"),
            Err(BoardError::UnknownKey { line: 1, .. })
        ));
        let b = Board::parse("name = mine\n  cpu = a, b \n", "f").unwrap();
        assert_eq!(b.cpus, vec!["a", "b"]);
    }

    #[test]
    fn detection() {
        let qts = crate::testutil::tempdir();
        assert_eq!(Board::detect(&qts, "aarch64").name, "generic", "not QTS: generic");
        std::fs::create_dir_all(qts.join("etc")).unwrap();
        std::fs::create_dir_all(qts.join("sbin")).unwrap();
        std::fs::write(qts.join("etc/platform.conf"), "[Platform]\n").unwrap();
        std::fs::write(qts.join("sbin/getcfg"), "").unwrap();
        assert_eq!(Board::detect(&qts, "aarch64").name, "arm_64");
        assert_eq!(Board::detect(&qts, "armv7l").name, "arm-x41");
        assert_eq!(Board::detect(&qts, "x86_64").name, "x86_64");
        assert_eq!(Board::detect(&qts, "mips").name, "generic");
    }

    #[test]
    fn load_from_file() {
        let d = crate::testutil::tempdir();
        let f = d.join("mine.conf");
        std::fs::write(&f, "name = mine\nconcurrent_downloads = 7\n").unwrap();
        let b = Board::load(f.to_str().unwrap()).unwrap();
        assert_eq!(
            (b.name.as_str(), b.settings["concurrent_downloads"].as_str()),
            ("mine", "7")
        );
        assert!(matches!(Board::load("/nonexistent/x.conf"), Err(BoardError::Io { .. })));
    }
}
