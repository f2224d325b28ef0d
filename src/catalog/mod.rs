//! The curated catalog of the station's `qnap` and `official` categories, in the vendor's `list.json` format
//! (spec/container-station-api.md §1.5).
//!
//! Three sources, best first: a copy fetched from the board's `catalog_url` (refreshed in the background when
//! older than [`MAX_AGE`], never on a listing's time), the copy cached on disk by the last fetch, and the copy
//! shipped in the binary. A listing never waits for the network.

use crate::platform::Platform;
use crate::sync::Locked;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The catalog shipped with depot.
const SHIPPED: &str = include_str!("../../catalog/list.json");
/// A fetched catalog is refreshed after this long.
pub const MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// A catalog larger than this is refused (the vendor's is ~30 KB).
const MAX_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Lxc,
    App,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Lxc => "lxc",
            Kind::App => "app",
        }
    }
}

/// One entry of `list.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    pub title: String,
    pub description: String,
    pub icon: String,
    /// `dockerhub` or `qnap` (then `location` is the rootfs URL).
    pub repository: String,
    /// `amd64`, `arm64` or `armhf`.
    pub arch: String,
    pub location: String,
    pub inspect: String,
    pub kernel_version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog: {0}")]
    Malformed(String),
}

/// `list.json`: an array of entries. An entry without a name, or of an unknown type, is left out (the vendor's
/// list grows new kinds); anything but an array is refused.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, CatalogError> {
    let v: Vec<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| CatalogError::Malformed(format!("not a JSON array of entries: {e}")))?;
    let text = |e: &serde_json::Value, k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("").trim().to_string();
    Ok(v.iter()
        .filter_map(|e| {
            let kind = match e.get("type")?.as_str()? {
                "docker" => Kind::Docker,
                "lxc" => Kind::Lxc,
                "app" => Kind::App,
                _ => return None,
            };
            let name = text(e, "name");
            if name.is_empty() {
                return None;
            }
            let title = [text(e, "displayName"), text(e, "title")]
                .into_iter()
                .find(|t| !t.is_empty())
                .unwrap_or_else(|| name.clone());
            Some(Entry {
                kind,
                name,
                version: text(e, "version"),
                title,
                description: text(e, "description"),
                icon: text(e, "icon"),
                repository: text(e, "repository"),
                arch: text(e, "arch"),
                location: text(e, "location"),
                inspect: match e.get("inspect") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                kernel_version: Some(text(e, "kernelVersion")).filter(|k| !k.is_empty()),
            })
        })
        .collect())
}

/// The catalog's name for a platform's CPU.
pub fn arch_of(p: &Platform) -> &'static str {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("amd64", _) => "amd64",
        ("arm64", _) => "arm64",
        ("arm", _) => "armhf",
        ("386", _) => "i386",
        _ => "unknown",
    }
}

/// Where the entries came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Fetched,
    Cached,
    Shipped,
}

struct Held {
    entries: Arc<Vec<Entry>>,
    source: Source,
    /// When the source was fetched (the cache file's age counts).
    fetched: Option<Instant>,
}

/// Fetches `url` into a file; the image service's client (proxies, TLS roots) in the daemon.
pub type Fetch = dyn Fn(&str, &std::path::Path) -> Result<u64, String> + Send + Sync;

pub struct Catalog {
    url: Option<String>,
    cache: PathBuf,
    held: Mutex<Held>,
    refreshing: Arc<AtomicBool>,
}

impl Catalog {
    /// The catalog of `url` (none: only the shipped one), cached at `cache`.
    pub fn new(url: Option<String>, cache: PathBuf) -> Catalog {
        let cached = std::fs::read(&cache).ok().and_then(|b| parse(&b).ok());
        let age = std::fs::metadata(&cache)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let held = match (cached, &url) {
            (Some(e), Some(_)) => Held {
                entries: Arc::new(e),
                source: Source::Cached,
                fetched: age.and_then(|a| Instant::now().checked_sub(a)),
            },
            _ => Held {
                entries: Arc::new(parse(SHIPPED.as_bytes()).expect("the shipped catalog parses")),
                source: Source::Shipped,
                fetched: None,
            },
        };
        Catalog {
            url,
            cache,
            held: Mutex::new(held),
            refreshing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The entries now, and where they came from; starts a refresh in the background when they are stale.
    pub fn entries(self: &Arc<Self>, fetch: Arc<Fetch>) -> (Arc<Vec<Entry>>, Source) {
        let (entries, source, stale) = {
            let h = self.held.locked();
            let stale = h.fetched.is_none_or(|t| t.elapsed() > MAX_AGE);
            (h.entries.clone(), h.source, stale)
        };
        if stale && self.url.is_some() && !self.refreshing.swap(true, Ordering::SeqCst) {
            let me = self.clone();
            let spawned = std::thread::Builder::new().name("catalog".into()).spawn(move || {
                me.refresh(&*fetch);
                me.refreshing.store(false, Ordering::SeqCst);
            });
            if spawned.is_err() {
                self.refreshing.store(false, Ordering::SeqCst);
            }
        }
        (entries, source)
    }

    /// Fetch the catalog now; on success it is held and cached (crash-safe: the old cache or the new one).
    pub fn refresh(&self, fetch: &Fetch) -> bool {
        let Some(url) = &self.url else { return false };
        let tmp = self.cache.with_extension("json.part");
        let r = (|| -> Result<Vec<Entry>, String> {
            if let Some(dir) = self.cache.parent() {
                crate::fsutil::create_dir_durable(dir).map_err(|e| e.to_string())?;
            }
            let n = fetch(url, &tmp)?;
            if n > MAX_BYTES {
                return Err(format!("{n} bytes, over the limit of {MAX_BYTES}"));
            }
            let bytes = std::fs::read(&tmp).map_err(|e| e.to_string())?;
            let entries = parse(&bytes).map_err(|e| e.to_string())?;
            crate::fsutil::write_atomic(&self.cache, &bytes, 0o644).map_err(|e| e.to_string())?;
            Ok(entries)
        })();
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(entries) => {
                log::info!("catalog: {} entries from {url}", entries.len());
                *self.held.locked() = Held {
                    entries: Arc::new(entries),
                    source: Source::Fetched,
                    fetched: Some(Instant::now()),
                };
                true
            }
            Err(e) => {
                log::warn!(
                    "catalog: fetching {url}: {e}; keeping the {} copy",
                    match self.held.locked().source {
                        Source::Fetched => "fetched",
                        Source::Cached => "cached",
                        Source::Shipped => "shipped",
                    }
                );
                // try again after a while, not at every listing
                let mut h = self.held.locked();
                if h.fetched.is_none() {
                    h.fetched = Instant::now().checked_sub(MAX_AGE - Duration::from_secs(300));
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_parses_and_covers_each_arch() {
        let e = parse(SHIPPED.as_bytes()).unwrap();
        for arch in ["amd64", "arm64", "armhf"] {
            assert!(e.iter().any(|x| x.arch == arch && x.kind == Kind::Docker), "{arch}");
        }
    }

    #[test]
    fn vendor_format_entries() {
        let e = parse(
            br#"[{"type":"lxc","name":"ubuntu-bionic","version":"18.04","displayName":"Ubuntu","arch":"amd64",
                  "repository":"qnap","location":"http://x/ubuntu.tar.gz","inspect":{},"kernelVersion":"4.2.8",
                  "icon":"i.png","description":"d"},
                 {"type":"docker","name":"nginx","arch":"armhf","repository":"dockerhub"},
                 {"type":"vm","name":"future"}, {"type":"docker"}]"#,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].kind, Kind::Lxc);
        assert_eq!(e[0].inspect, "{}");
        assert_eq!(e[0].kernel_version.as_deref(), Some("4.2.8"));
        assert_eq!(e[1].title, "nginx");
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
    }
}
