//! What LXC image servers publish, parsed (pure, no I/O): the `lxc-download` index and `SHA256SUMS`,
//! simplestreams' `index.json` and `images.json`, and the LXC entries of the vendor catalog. Each yields
//! [`Offer`]s: a template build with the URLs of its files and what is known to check them by.

use crate::digest::Digest;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// `dist/release/arch/variant`, each part `[A-Za-z0-9._+~-]`, 1–64 characters, not starting with `.`: safe as a
/// path component and in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName {
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("template name {0:?}: expected DIST/RELEASE/ARCH[/VARIANT]")]
    Shape(String),
    #[error("template name {name:?}: {part:?} is not a valid name part (letters, digits, . _ + ~ -; at most 64)")]
    Part { name: String, part: String },
}

fn part_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && !p.starts_with('.')
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
}

impl TemplateName {
    pub fn new(dist: &str, release: &str, arch: &str, variant: &str) -> Result<TemplateName, NameError> {
        let name = format!("{dist}/{release}/{arch}/{variant}");
        for p in [dist, release, arch, variant] {
            if !part_ok(p) {
                return Err(NameError::Part {
                    name,
                    part: p.to_string(),
                });
            }
        }
        Ok(TemplateName {
            dist: dist.to_lowercase(),
            release: release.to_string(),
            arch: arch.to_string(),
            variant: variant.to_string(),
        })
    }
}

impl FromStr for TemplateName {
    type Err = NameError;
    /// `DIST/RELEASE/ARCH[/VARIANT]`; the variant defaults to `default`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [d, r, a] => TemplateName::new(d, r, a, "default"),
            [d, r, a, v] => TemplateName::new(d, r, a, v),
            _ => Err(NameError::Shape(s.to_string())),
        }
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.dist, self.release, self.arch, self.variant)
    }
}

/// One file to fetch, with what the server published to check it by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteFile {
    pub url: String,
    pub sha256: Option<Digest>,
    pub size: Option<u64>,
}

/// A template build a source offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub name: TemplateName,
    /// The build serial (`20260904_07:42`), or the catalog's version.
    pub build: String,
    pub rootfs: RemoteFile,
    /// `meta.tar.xz` (lxc-download), `lxd.tar.xz`/`incus.tar.xz` (simplestreams); none in the vendor catalog.
    pub meta: Option<RemoteFile>,
    /// What a person reads: the catalog's title, simplestreams' `release_title`.
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {msg}")]
pub struct IndexError {
    pub what: String,
    pub msg: String,
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// A path from a server's index, as a URL under `base`: relative, no `..`, no scheme, nothing odd (a hostile
/// index must not send the download elsewhere).
fn safe_path(base: &str, path: &str) -> Option<String> {
    let ok = !path.contains("://")
        && !path.split('/').any(|c| c == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\\\"'<>`#?%".contains(&b));
    ok.then(|| join(base, path))
}

/// The `lxc-download` index (`meta/1.0/index-system`): `dist;release;arch;variant;build;path` lines. Lines with
/// an empty build or path, or malformed ones, are skipped as `lxc-download` skips them. `sums` is applied later
/// per build (see [`parse_sha256sums`]).
pub fn parse_lxc_index(text: &str, base: &str) -> Vec<Offer> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split(';').collect();
        if f.len() < 6 || f[4].is_empty() || f[5].is_empty() {
            continue;
        }
        let Ok(name) = TemplateName::new(f[0], f[1], f[2], f[3]) else {
            continue;
        };
        let dir = f[5].trim_end_matches('/');
        let (Some(rootfs), Some(meta)) = (
            safe_path(base, &format!("{dir}/rootfs.tar.xz")),
            safe_path(base, &format!("{dir}/meta.tar.xz")),
        ) else {
            continue;
        };
        out.push(Offer {
            title: format!("{} {}", f[0], f[1]),
            name,
            build: f[4].to_string(),
            rootfs: RemoteFile {
                url: rootfs,
                sha256: None,
                size: None,
            },
            meta: Some(RemoteFile {
                url: meta,
                sha256: None,
                size: None,
            }),
        });
    }
    out
}

/// `SHA256SUMS`: `<hex>  <file>` (or `<hex> *<file>`) lines; file name → digest. Bad lines are skipped.
pub fn parse_sha256sums(text: &str) -> HashMap<String, Digest> {
    text.lines()
        .filter_map(|l| {
            let (hex, file) = l.trim().split_once(char::is_whitespace)?;
            let file = file.trim().trim_start_matches('*');
            let d = Digest::from_sha256_hex(&hex.to_ascii_lowercase()).ok()?;
            Some((file.rsplit('/').next()?.to_string(), d))
        })
        .collect()
}

/// The URL of the `SHA256SUMS` beside an offer's rootfs.
pub fn sums_url(rootfs_url: &str) -> String {
    match rootfs_url.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/SHA256SUMS"),
        None => "SHA256SUMS".into(),
    }
}

/// Simplestreams `streams/v1/index.json`: the paths of its `image-downloads` product files.
pub fn parse_streams_index(bytes: &[u8]) -> Result<Vec<String>, IndexError> {
    let err = |msg: String| IndexError {
        what: "streams/v1/index.json".into(),
        msg,
    };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    let index = v
        .get("index")
        .and_then(|i| i.as_object())
        .ok_or_else(|| err("no index object".into()))?;
    let mut out: Vec<String> = index
        .values()
        .filter(|e| e.get("datatype").and_then(|d| d.as_str()) == Some("image-downloads"))
        .filter(|e| {
            e.get("products")
                .and_then(|p| p.as_array())
                .is_some_and(|p| !p.is_empty())
        })
        .filter_map(|e| e.get("path").and_then(|p| p.as_str()).map(str::to_string))
        .collect();
    out.sort();
    Ok(out)
}

/// A file of a simplestreams version (`images.json`).
#[derive(serde::Deserialize)]
struct Item {
    ftype: String,
    path: String,
    sha256: Option<String>,
    size: Option<u64>,
}
#[derive(serde::Deserialize)]
struct Version {
    #[serde(default)]
    items: HashMap<String, Item>,
}
#[derive(serde::Deserialize)]
struct Product {
    os: Option<String>,
    release: Option<String>,
    arch: Option<String>,
    variant: Option<String>,
    release_title: Option<String>,
    #[serde(default)]
    versions: HashMap<String, Version>,
}
/// Simplestreams' `images.json`: products (a template in every version built) by `os:release:arch:variant`.
#[derive(serde::Deserialize)]
struct Products {
    products: HashMap<String, Product>,
}

/// Simplestreams `images.json`: per product, its newest version with a `root.tar.xz` item (the rootfs) and its
/// metadata item (`incus.tar.xz` or `lxd.tar.xz`), each with its `sha256` and `size`.
pub fn parse_images_json(bytes: &[u8], base: &str) -> Result<Vec<Offer>, IndexError> {
    let err = |msg: String| IndexError {
        what: "images.json".into(),
        msg,
    };
    let p: Products = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    let file = |i: &Item| -> Option<RemoteFile> {
        Some(RemoteFile {
            url: safe_path(base, &i.path)?,
            sha256: match &i.sha256 {
                Some(h) => Some(Digest::from_sha256_hex(&h.to_ascii_lowercase()).ok()?),
                None => None,
            },
            size: i.size,
        })
    };
    let mut out = Vec::new();
    for (key, prod) in p.products {
        // `<os>:<release>:<arch>:<variant>` is the key; the fields win where present
        let k: Vec<&str> = key.split(':').collect();
        let get = |f: &Option<String>, i: usize| f.clone().or_else(|| k.get(i).map(|s| s.to_string()));
        let (Some(os), Some(release), Some(arch)) = (get(&prod.os, 0), get(&prod.release, 1), get(&prod.arch, 2))
        else {
            continue;
        };
        let variant = get(&prod.variant, 3).unwrap_or_else(|| "default".into());
        let Ok(name) = TemplateName::new(&os, &release, &arch, &variant) else {
            continue;
        };
        let mut versions: Vec<(&String, &Version)> = prod.versions.iter().collect();
        versions.sort_by(|a, b| b.0.cmp(a.0));
        for (serial, v) in versions {
            let root = v.items.values().find(|i| i.ftype == "root.tar.xz").and_then(file);
            let meta = v
                .items
                .values()
                .find(|i| i.ftype == "incus.tar.xz")
                .or_else(|| v.items.values().find(|i| i.ftype == "lxd.tar.xz"))
                .and_then(file);
            if let Some(rootfs) = root {
                out.push(Offer {
                    name: name.clone(),
                    build: serial.clone(),
                    rootfs,
                    meta,
                    title: prod
                        .release_title
                        .clone()
                        .map(|t| format!("{os} {t}"))
                        .unwrap_or_else(|| format!("{os} {release}")),
                });
                break;
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The LXC entries of the vendor catalog: one rootfs tarball each (`.tar.gz`, `.tar.xz`, `.tar.zst`), named
/// `<name>/<version>/<arch>/default`.
pub fn catalog_offers(entries: &[crate::catalog::Entry]) -> Vec<Offer> {
    entries
        .iter()
        .filter(|e| e.kind == crate::catalog::Kind::Lxc && e.location.contains("://"))
        .filter_map(|e| {
            let release = if e.version.is_empty() { "latest" } else { &e.version };
            let name = TemplateName::new(&e.name, release, &e.arch, "default").ok()?;
            Some(Offer {
                name,
                build: release.to_string(),
                rootfs: RemoteFile {
                    url: e.location.clone(),
                    sha256: None,
                    size: None,
                },
                meta: None,
                title: e.title.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_refuse_unsafe_parts() {
        let n: TemplateName = "debian/bookworm/amd64".parse().unwrap();
        assert_eq!(n.to_string(), "debian/bookworm/amd64/default");
        assert_eq!(
            "Alpine/3.20/arm64/cloud".parse::<TemplateName>().unwrap().to_string(),
            "alpine/3.20/arm64/cloud"
        );
        for bad in [
            "debian/../amd64",
            "debian/bookworm",
            "a/b/c/d/e",
            "debian/.hidden/amd64",
            "debian/book worm/amd64",
            "debian//amd64",
            "debian/bookworm/amd64/x;rm",
        ] {
            assert!(bad.parse::<TemplateName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lxc_index_lines() {
        let text =
            "debian;bookworm;amd64;default;20260904_05:24;/images/debian/bookworm/amd64/default/20260904_05:24/\n\
                    ubuntu;noble;arm64;default;;/images/x/\n\
                    broken line\n\
                    evil;x;amd64;default;1;/images/../../etc/\n\
                    alpine;3.20;amd64;default;20260904_13:00;/images/alpine/3.20/amd64/default/20260904_13:00\n";
        let o = parse_lxc_index(text, "https://srv/");
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(o[0].name.to_string(), "debian/bookworm/amd64/default");
        assert_eq!(o[0].build, "20260904_05:24");
        assert_eq!(
            o[0].rootfs.url,
            "https://srv/images/debian/bookworm/amd64/default/20260904_05:24/rootfs.tar.xz"
        );
        assert_eq!(
            o[1].meta.as_ref().unwrap().url,
            "https://srv/images/alpine/3.20/amd64/default/20260904_13:00/meta.tar.xz"
        );
    }

    #[test]
    fn sums_files() {
        let h = "a".repeat(64);
        let s = parse_sha256sums(&format!(
            "{h}  rootfs.tar.xz\n{}  *meta.tar.xz\nnonsense\n",
            "B".repeat(64)
        ));
        assert_eq!(s["rootfs.tar.xz"].to_string(), format!("sha256:{h}"));
        assert_eq!(s["meta.tar.xz"].to_string(), format!("sha256:{}", "b".repeat(64)));
        assert_eq!(s.len(), 2);
        assert_eq!(sums_url("http://x/a/b/rootfs.tar.xz"), "http://x/a/b/SHA256SUMS");
    }

    #[test]
    fn simplestreams() {
        let idx = br#"{"format":"index:1.0","index":{"images":{"datatype":"image-downloads","path":"streams/v1/images.json","products":["debian:bookworm:amd64:default"]},"other":{"datatype":"content-download","path":"x.json","products":["a"]}}}"#;
        assert_eq!(parse_streams_index(idx).unwrap(), vec!["streams/v1/images.json"]);
        let h = "c".repeat(64);
        let images = format!(
            r#"{{"products":{{"debian:bookworm:amd64:default":{{"arch":"amd64","os":"Debian","release":"bookworm","release_title":"12","variant":"default","versions":{{
            "20260901_05:24":{{"items":{{"root.tar.xz":{{"ftype":"root.tar.xz","path":"images/debian/old/rootfs.tar.xz","sha256":"{h}","size":10}}}}}},
            "20260903_05:24":{{"items":{{"root.tar.xz":{{"ftype":"root.tar.xz","path":"images/debian/new/rootfs.tar.xz","sha256":"{h}","size":20}},
                                       "incus.tar.xz":{{"ftype":"incus.tar.xz","path":"images/debian/new/incus.tar.xz","sha256":"{h}","size":3}},
                                       "squashfs":{{"ftype":"squashfs","path":"images/debian/new/rootfs.squashfs","size":9}}}}}}}}}},
            "evil:1:amd64:default":{{"versions":{{"1":{{"items":{{"r":{{"ftype":"root.tar.xz","path":"../../etc/passwd","size":1}}}}}}}}}}}}}}"#
        );
        let o = parse_images_json(images.as_bytes(), "http://srv").unwrap();
        assert_eq!(o.len(), 1, "the hostile path is left out: {o:?}");
        assert_eq!(o[0].name.to_string(), "debian/bookworm/amd64/default");
        assert_eq!(o[0].build, "20260903_05:24", "the newest version");
        assert_eq!(o[0].rootfs.url, "http://srv/images/debian/new/rootfs.tar.xz");
        assert_eq!(o[0].rootfs.size, Some(20));
        assert_eq!(o[0].meta.as_ref().unwrap().size, Some(3));
        assert_eq!(o[0].title, "Debian 12");
        assert!(parse_images_json(b"[]", "x").is_err());
    }
}
