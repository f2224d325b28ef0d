//! A template's metadata (`meta.tar.xz` of the `lxc-download` format, or depot's own for a converted image)
//! and the container config assembled from it as `lxc-download` assembles it: the distribution's `config`
//! (the `-user` one for an unprivileged container, the `.7` compat level when there is one), `lxc.uts.name`,
//! `lxc.rootfs.path`, `lxc.mount.fstab` when an `fstab` comes with it, and the `LXC_*` substitutions in the
//! config, the fstab and every rootfs file the `templates` list names.

use std::collections::BTreeMap;
use std::io::Read;

/// The compat level `lxc-download` asks for.
pub const COMPAT_LEVEL: u32 = 7;
/// Metadata files are small text; anything larger in a meta tarball is not read.
const MAX_META_FILE: u64 = 1 << 20;

/// What a template's metadata says. Stored as JSON beside the template.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// `config`, `config.N`, `config-user`, `config-user.N`: file name → content.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// Rootfs paths whose content gets the `LXC_*` substitutions.
    #[serde(default)]
    pub templates: Vec<String>,
    #[serde(default)]
    pub create_message: Option<String>,
    /// Unix seconds after which the server considers the build stale.
    #[serde(default)]
    pub expiry: Option<i64>,
    /// Paths to leave out of an unprivileged unpack (device nodes).
    #[serde(default)]
    pub excludes_user: Vec<String>,
    #[serde(default)]
    pub fstab: Option<String>,
    /// A converted Docker image: what it runs (`Entrypoint` + `Cmd`), its `Env` and `WorkingDir`.
    #[serde(default)]
    pub init: Option<Init>,
    /// simplestreams metadata (`metadata.yaml` of an `incus.tar.xz`/`lxd.tar.xz`), kept as it is.
    #[serde(default)]
    pub metadata_yaml: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Init {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata archive: {0}")]
    Broken(std::io::Error),
}

/// Read a (decoded) metadata tarball. Unknown files are ignored; so are directories and links.
pub fn parse(r: impl Read) -> Result<Meta, MetaError> {
    let mut m = Meta::default();
    let mut a = tar::Archive::new(r);
    for e in a.entries().map_err(MetaError::Broken)? {
        let mut e = e.map_err(MetaError::Broken)?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let name = path.trim_start_matches("./").trim_start_matches('/').to_string();
        let mut text = String::new();
        (&mut e)
            .take(MAX_META_FILE)
            .read_to_string(&mut text)
            .map_err(MetaError::Broken)?;
        let lines = |t: &str| -> Vec<String> {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        match name.as_str() {
            n if n == "config" || n.starts_with("config.") || n.starts_with("config-user") => {
                m.configs.insert(n.to_string(), text);
            }
            "templates" => m.templates = lines(&text),
            "create-message" => m.create_message = Some(text),
            "expiry" => m.expiry = text.trim().parse().ok(),
            "excludes-user" => m.excludes_user = lines(&text),
            "fstab" => m.fstab = Some(text),
            "metadata.yaml" => m.metadata_yaml = Some(text),
            "depot-init.json" => m.init = serde_json::from_str(&text).ok(),
            _ => {}
        }
    }
    Ok(m)
}

/// Where a container lives, for the substitutions.
#[derive(Debug, Clone)]
pub struct Place {
    pub name: String,
    /// The container's directory (`/var/lib/lxc/NAME`).
    pub path: String,
    /// Its rootfs (`PATH/rootfs`).
    pub rootfs: String,
    /// LXC's shared config directory (`/usr/share/lxc/config`).
    pub template_config: String,
    pub hook_dir: String,
}

impl Place {
    /// The container directory `dest` (named by its last component), with LXC's shared config and hooks where
    /// the distribution's LXC keeps them.
    pub fn at(dest: &std::path::Path) -> Place {
        Place {
            name: dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: dest.display().to_string(),
            rootfs: dest.join("rootfs").display().to_string(),
            template_config: "/usr/share/lxc/config".into(),
            hook_dir: "/usr/share/lxc/hooks".into(),
        }
    }

    pub fn substitute(&self, text: &str) -> String {
        text.replace("LXC_NAME", &self.name)
            .replace("LXC_PATH", &self.path)
            .replace("LXC_ROOTFS", &self.rootfs)
            .replace("LXC_TEMPLATE_CONFIG", &self.template_config)
            .replace("LXC_HOOK_DIR", &self.hook_dir)
    }
}

impl Meta {
    /// `lxc-download`'s `relevant_file`: `NAME-user` for an unprivileged container when it exists, then its
    /// `.COMPAT` variant when that exists.
    fn relevant(&self, name: &str, user: bool) -> Option<&String> {
        let mut key = name.to_string();
        if user && self.configs.contains_key(&format!("{name}-user")) {
            key = format!("{name}-user");
        }
        let compat = format!("{key}.{COMPAT_LEVEL}");
        if self.configs.contains_key(&compat) {
            key = compat;
        }
        self.configs.get(&key)
    }

    /// The container's `config`.
    pub fn container_config(&self, place: &Place, user: bool, template: &str) -> String {
        let mut out = format!("# Template used to create this container: depot ({template})\n");
        if let Some(c) = self.relevant("config", user) {
            out.push_str("\n# Distribution configuration\n");
            out.push_str(&place.substitute(c));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        if let Some(init) = &self.init {
            out.push_str("\n# What the Docker image runs\n");
            if !init.cmd.is_empty() {
                out.push_str(&format!("lxc.init.cmd = {}\n", shell_words(&init.cmd)));
            }
            for e in &init.env {
                out.push_str(&format!("lxc.environment = {e}\n"));
            }
            if let Some(cwd) = &init.cwd {
                out.push_str(&format!("lxc.init.cwd = {cwd}\n"));
            }
            if let Some((u, g)) = init.user.as_deref().and_then(numeric_user) {
                out.push_str(&format!("lxc.init.uid = {u}\nlxc.init.gid = {g}\n"));
            }
        }
        out.push_str("\n# Container specific configuration\n");
        out.push_str(&format!("lxc.rootfs.path = dir:{}\n", place.rootfs));
        if self.fstab.is_some() {
            out.push_str(&format!("lxc.mount.fstab = {}/fstab\n", place.path));
        }
        out.push_str(&format!("lxc.uts.name = {}\n", place.name));
        out
    }
}

/// `uid[:gid]` when both are numbers (a name needs the image's `/etc/passwd`, which LXC reads itself).
fn numeric_user(u: &str) -> Option<(u32, u32)> {
    let (a, b) = u.split_once(':').unwrap_or((u, u));
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Words joined for `lxc.init.cmd`, quoted where they need it.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// depot's own metadata tarball for `m` (a converted image): `config`, `create-message` and `templates`
/// files as `lxc-download` would find them.
pub fn build_tar(m: &Meta, mtime: u64) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, text: &str| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, text.as_bytes())
    };
    for (k, v) in &m.configs {
        add(k, v)?;
    }
    if let Some(msg) = &m.create_message {
        add("create-message", msg)?;
    }
    if !m.templates.is_empty() {
        add("templates", &(m.templates.join("\n") + "\n"))?;
    }
    if let Some(init) = &m.init {
        add("depot-init.json", &serde_json::to_string(init).unwrap_or_default())?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_tar(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, t) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(t.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, n, t.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn place() -> Place {
        Place {
            name: "web".into(),
            path: "/var/lib/lxc/web".into(),
            rootfs: "/var/lib/lxc/web/rootfs".into(),
            template_config: "/usr/share/lxc/config".into(),
            hook_dir: "/usr/share/lxc/hooks".into(),
        }
    }

    #[test]
    fn reads_the_lxc_download_files() {
        let t = meta_tar(&[
            (
                "config",
                "lxc.include = LXC_TEMPLATE_CONFIG/debian.common.conf\nlxc.arch = x86_64\n",
            ),
            (
                "config.7",
                "lxc.include = LXC_TEMPLATE_CONFIG/debian.common.conf\n# compat 7\n",
            ),
            ("config-user", "lxc.include = LXC_TEMPLATE_CONFIG/debian.userns.conf\n"),
            ("templates", "/etc/hostname\n/etc/hosts\n"),
            ("create-message", "You just created a Debian container\n"),
            ("expiry", "1790000000\n"),
            ("excludes-user", "./dev/null\n./dev/zero\n"),
            ("fstab", "proc proc proc nodev 0 0\n"),
            ("unknown", "ignored"),
        ]);
        let m = parse(&t[..]).unwrap();
        assert_eq!(m.configs.len(), 3);
        assert_eq!(m.templates, vec!["/etc/hostname", "/etc/hosts"]);
        assert_eq!(m.expiry, Some(1_790_000_000));
        assert_eq!(m.excludes_user, vec!["./dev/null", "./dev/zero"]);
        let c = m.container_config(&place(), false, "debian/bookworm/amd64/default");
        assert!(
            c.contains("/usr/share/lxc/config/debian.common.conf\n# compat 7"),
            "{c}"
        );
        assert!(c.contains("lxc.rootfs.path = dir:/var/lib/lxc/web/rootfs"));
        assert!(c.contains("lxc.uts.name = web"));
        assert!(c.contains("lxc.mount.fstab = /var/lib/lxc/web/fstab"));
        let u = m.container_config(&place(), true, "x");
        assert!(u.contains("debian.userns.conf"), "{u}");
        assert!(!u.contains("debian.common.conf"));
    }

    #[test]
    fn a_converted_image_runs_its_command() {
        let m = Meta {
            init: Some(Init {
                cmd: vec!["/bin/sh".into(), "-c".into(), "echo it's up".into()],
                env: vec!["PATH=/usr/bin:/bin".into()],
                cwd: Some("/srv".into()),
                user: Some("1000:100".into()),
            }),
            ..Default::default()
        };
        let c = m.container_config(&place(), false, "docker");
        assert!(c.contains(r"lxc.init.cmd = /bin/sh -c 'echo it'\''s up'"), "{c}");
        assert!(c.contains("lxc.environment = PATH=/usr/bin:/bin"));
        assert!(c.contains("lxc.init.cwd = /srv\nlxc.init.uid = 1000\nlxc.init.gid = 100"));
        let back = parse(&build_tar(&m, 0).unwrap()[..]).unwrap();
        assert_eq!(back, m);
    }
}
