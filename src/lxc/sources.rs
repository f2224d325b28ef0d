//! Where LXC templates come from: the configured image servers (`lxc-download` and simplestreams indexes) and
//! the vendor catalog. An index is fetched while a person waits, kept in memory for a while and on disk for
//! when its server is away; every source is asked on a thread of its own.

use super::index::{self, Offer, RemoteFile, TemplateName};
use super::LxcError;
use crate::net::http::{HttpError, Web};
use crate::net::RetryPolicy;
use crate::store::Db;
use crate::sync::Locked;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a fetched index is used before it is fetched again.
const INDEX_FRESH: Duration = Duration::from_secs(300);
/// How long a server that failed is not asked again (its cached index serves meanwhile).
const FAILED_FOR: Duration = Duration::from_secs(60);
/// Indexes are text; a larger one is hostile.
const MAX_INDEX: u64 = 32 << 20;
/// What a source offers now, the state that came in (`fetched`, `cached`, `none`), and why its server was not
/// heard.
type SourceState = (Arc<Vec<Offer>>, &'static str, Option<String>);

/// An index is asked for while a person waits, and a cached copy stands in when its server is away: one retry
/// for a blip, not the transfers' five attempts over seconds of backoff for a server that is down.
const INDEX_RETRY: RetryPolicy = RetryPolicy {
    attempts: 2,
    base: Duration::from_millis(300),
    max_delay: Duration::from_secs(1),
    max_retry_after: Duration::from_secs(2),
};
/// What kind of server a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// `meta/1.0/index-system`, as `lxc-create -t download` reads it.
    Lxc,
    /// `streams/v1/index.json`, as LXD and Incus read it.
    Simplestreams,
    /// The vendor catalog's LXC entries.
    Catalog,
}

/// A configured source: `NAME=lxc:URL` or `NAME=simplestreams:URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub url: String,
}

impl FromStr for SourceConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("LXC source {s:?}: expected NAME=lxc:URL or NAME=simplestreams:URL");
        let (name, rest) = s.split_once('=').ok_or_else(bad)?;
        let (kind, url) = rest.split_once(':').ok_or_else(bad)?;
        let kind = match kind {
            "lxc" => SourceKind::Lxc,
            "simplestreams" => SourceKind::Simplestreams,
            _ => return Err(bad()),
        };
        let name = name.trim();
        if name.is_empty()
            || name == "catalog"
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "LXC source {s:?}: a name of letters, digits, - _ . (not \"catalog\")"
            ));
        }
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("LXC source {s:?}: the URL must be http(s)://"));
        }
        Ok(SourceConfig {
            name: name.to_string(),
            kind,
            url,
        })
    }
}

/// A source's offers and where they came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: SourceKind,
    pub url: String,
    pub offers: usize,
    /// `fetched`, `cached` (the server did not answer: the copy on disk), or `none`.
    pub state: &'static str,
    pub error: Option<String>,
}

/// One offer of one source, as listed.
#[derive(Debug, Clone)]
pub struct Available {
    pub source: String,
    pub offer: Offer,
    /// The same build is kept.
    pub installed: bool,
}

type Fetched = (Instant, Arc<Vec<Offer>>);

/// The sources and what they offer.
pub struct Sources {
    db: Arc<Db>,
    web: Web,
    /// The configured servers, in the order they are asked; the catalog comes last.
    configured: Vec<SourceConfig>,
    /// This NAS's architecture in the servers' naming.
    arch: String,
    /// Index caches: `<data root>/lxc/`.
    cache: PathBuf,
    catalog: Option<Arc<crate::catalog::Catalog>>,
    /// Per source: when its index was fetched, and its offers.
    indexes: Mutex<HashMap<String, Fetched>>,
    /// Per source: when its server last failed, and why.
    failed: Mutex<HashMap<String, (Instant, String)>>,
}

impl Sources {
    pub fn new(
        db: Arc<Db>,
        web: Web,
        configured: Vec<SourceConfig>,
        arch: String,
        cache: PathBuf,
        catalog: Option<Arc<crate::catalog::Catalog>>,
    ) -> Sources {
        Sources {
            db,
            web,
            configured,
            arch,
            cache,
            catalog,
            indexes: Mutex::default(),
            failed: Mutex::default(),
        }
    }

    /// Whether `source` is a configured `lxc-download` server, whose `SHA256SUMS` vouch for its files.
    pub(super) fn has_sums(&self, source: &str) -> bool {
        self.configured
            .iter()
            .any(|s| s.name == source && s.kind == SourceKind::Lxc)
    }

    fn cache_file(&self, source: &str) -> PathBuf {
        self.cache.join("index").join(format!("{source}.json"))
    }

    /// Fetch a source's offers from its server.
    fn fetch_offers(&self, s: &SourceConfig) -> Result<Vec<Offer>, HttpError> {
        let get = |path: &str| {
            self.web
                .fetch_with(&format!("{}/{path}", s.url), MAX_INDEX, &INDEX_RETRY)
        };
        match s.kind {
            SourceKind::Lxc => {
                // lxc-download asks for the compat level's index first
                let text = match get("meta/1.0/index-system.7") {
                    Ok(t) => t,
                    Err(HttpError::NotFound { .. }) => get("meta/1.0/index-system")?,
                    Err(e) => return Err(e),
                };
                Ok(index::parse_lxc_index(&String::from_utf8_lossy(&text), &s.url))
            }
            SourceKind::Simplestreams => {
                let idx = get("streams/v1/index.json")?;
                let bad = |e: index::IndexError| HttpError::Transport {
                    url: s.url.clone(),
                    msg: e.to_string(),
                };
                let mut out = Vec::new();
                for path in index::parse_streams_index(&idx).map_err(bad)? {
                    if path.contains("..") || path.contains("://") {
                        continue;
                    }
                    let images = get(&path)?;
                    out.extend(index::parse_images_json(&images, &s.url).map_err(bad)?);
                }
                Ok(out)
            }
            SourceKind::Catalog => Ok(Vec::new()),
        }
    }

    /// A source's offers: fresh from memory, else fetched (and cached on disk), else the copy on disk when the
    /// server does not answer (the catalog has its own refresh). Returns the state it came in, and why the
    /// server was not heard.
    fn offers_of(&self, s: &SourceConfig, refresh: bool) -> SourceState {
        if s.kind == SourceKind::Catalog {
            let (o, state) = self.catalog_offers();
            return (Arc::new(o), state, None);
        }
        if !refresh {
            if let Some((at, o)) = self.indexes.locked().get(&s.name) {
                if at.elapsed() < INDEX_FRESH {
                    return (o.clone(), "fetched", None);
                }
            }
            // a server that just failed is not asked again at once (a name that does not resolve can take
            // seconds to fail): its cached copy serves meanwhile
            if let Some((at, e)) = self.failed.locked().get(&s.name) {
                if at.elapsed() < FAILED_FOR {
                    let (o, state) = self.cached_offers(s);
                    return (o, state, Some(e.clone()));
                }
            }
        }
        match self.fetch_offers(s) {
            Ok(o) => {
                let o = Arc::new(o);
                let stored: Vec<StoredOffer> = o.iter().map(StoredOffer::from).collect();
                let path = self.cache_file(&s.name);
                let saved = serde_json::to_vec(&stored)
                    .map_err(std::io::Error::other)
                    .and_then(|b| {
                        crate::fsutil::create_dir_durable(path.parent().expect("in a dir"))?;
                        // crash-safe: the old cache or the new one, whole
                        crate::fsutil::write_atomic(&path, &b, 0o644)
                    });
                if let Err(e) = saved {
                    log::warn!("caching the index of LXC source {}: {e}", s.name);
                }
                self.indexes
                    .locked()
                    .insert(s.name.clone(), (Instant::now(), o.clone()));
                (o, "fetched", None)
            }
            Err(e) => {
                log::warn!("LXC source {}: {e}", s.name);
                self.failed
                    .locked()
                    .insert(s.name.clone(), (Instant::now(), e.to_string()));
                let (o, state) = self.cached_offers(s);
                (o, state, Some(e.to_string()))
            }
        }
    }

    /// The copy of a source's index on disk: `cached`, or `none` when there is none.
    fn cached_offers(&self, s: &SourceConfig) -> (Arc<Vec<Offer>>, &'static str) {
        let cached = std::fs::read(self.cache_file(&s.name))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<StoredOffer>>(&b).ok())
            .map(|v| v.into_iter().filter_map(|o| o.into_offer()).collect::<Vec<_>>());
        match cached {
            Some(o) => (Arc::new(o), "cached"),
            None => (Arc::new(Vec::new()), "none"),
        }
    }

    /// Every source, or the one named `source`.
    fn named(&self, source: Option<&str>) -> Result<Vec<SourceConfig>, LxcError> {
        let sources: Vec<SourceConfig> = self
            .all()
            .into_iter()
            .filter(|s| source.is_none_or(|n| n == s.name))
            .collect();
        match source {
            Some(n) if sources.is_empty() => Err(LxcError::UnknownSource(n.to_string())),
            _ => Ok(sources),
        }
    }

    /// What source `s` offers now (see [`Sources::offers_of`]).
    fn offers(&self, s: &SourceConfig, refresh: bool) -> Arc<Vec<Offer>> {
        self.offers_of(s, refresh).0
    }

    /// [`Sources::offers_of`] of several sources, each asked on a thread of its own: whoever lists them waits
    /// for the slowest server, not for all of them in turn. In the order given.
    fn offers_of_all(&self, sources: &[SourceConfig], refresh: bool) -> Vec<SourceState> {
        std::thread::scope(|scope| {
            let asked: Vec<_> = sources
                .iter()
                .map(|s| scope.spawn(move || self.offers_of(s, refresh)))
                .collect();
            asked
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (Arc::new(Vec::new()), "none", Some("the index could not be read".into())))
                })
                .collect()
        })
    }

    /// The first source (in the configured order, the catalog last) that offers `name`, asked one at a time.
    pub(super) fn find(&self, name: &TemplateName, source: Option<&str>) -> Result<Available, LxcError> {
        let sources = self.named(source)?;
        for s in sources {
            let offers = self.offers(&s, false);
            if let Some(o) = offers.iter().find(|o| &o.name == name) {
                return Ok(Available {
                    source: s.name.clone(),
                    offer: o.clone(),
                    installed: false,
                });
            }
        }
        Err(LxcError::NoOffer {
            name: name.to_string(),
            source_name: source.map(str::to_string),
        })
    }

    fn catalog_source(&self) -> Option<SourceConfig> {
        self.catalog.as_ref().map(|_| SourceConfig {
            name: "catalog".into(),
            kind: SourceKind::Catalog,
            url: String::new(),
        })
    }

    fn catalog_offers(&self) -> (Vec<Offer>, &'static str) {
        let Some(c) = &self.catalog else {
            return (Vec::new(), "none");
        };
        let web = self.web.clone();
        let fetch: Arc<crate::catalog::Fetch> = Arc::new(move |url: &str, path: &Path| {
            let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
            web.download(url, &mut f).map_err(|e| e.to_string())
        });
        let (entries, source) = c.entries(fetch);
        let state = match source {
            crate::catalog::Source::Fetched => "fetched",
            _ => "cached",
        };
        (index::catalog_offers(&entries), state)
    }

    fn all(&self) -> Vec<SourceConfig> {
        let mut v = self.configured.clone();
        v.extend(self.catalog_source());
        v
    }

    /// Every source with how many templates it offers (its index fetched, or the cached copy).
    pub fn list(&self, refresh: bool) -> Vec<SourceStatus> {
        let sources = self.all();
        let states = self.offers_of_all(&sources, refresh);
        sources
            .into_iter()
            .zip(states)
            .map(|(s, (o, state, error))| SourceStatus {
                name: s.name,
                kind: s.kind,
                url: s.url,
                offers: o.len(),
                state,
                error,
            })
            .collect()
    }

    /// What the sources offer for `arch` (`None`: this NAS's; `Some("all")`: every one), optionally from one
    /// source only.
    pub fn available(
        &self,
        arch: Option<&str>,
        source: Option<&str>,
        refresh: bool,
    ) -> Result<Vec<Available>, LxcError> {
        let arch = arch.unwrap_or(&self.arch).to_string();
        let sources = self.named(source)?;
        let kept: HashMap<String, String> = self
            .db
            .templates()
            .lxc_templates()?
            .into_iter()
            .map(|t| (t.name, t.build))
            .collect();
        let mut out = Vec::new();
        let offers = self.offers_of_all(&sources, refresh);
        for (s, (offers, _, _)) in sources.iter().zip(offers) {
            for o in offers.iter().cloned() {
                if arch != "all" && o.name.arch != arch {
                    continue;
                }
                let installed = kept.get(&o.name.to_string()) == Some(&o.build);
                out.push(Available {
                    source: s.name.clone(),
                    offer: o,
                    installed,
                });
            }
        }
        out.sort_by(|a, b| (&a.offer.name, &a.source).cmp(&(&b.offer.name, &b.source)));
        Ok(out)
    }
}

/// An offer as the index cache keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredOffer {
    name: String,
    build: String,
    rootfs: RemoteFile,
    meta: Option<RemoteFile>,
    title: String,
}

impl From<&Offer> for StoredOffer {
    fn from(o: &Offer) -> Self {
        StoredOffer {
            name: o.name.to_string(),
            build: o.build.clone(),
            rootfs: o.rootfs.clone(),
            meta: o.meta.clone(),
            title: o.title.clone(),
        }
    }
}

impl StoredOffer {
    fn into_offer(self) -> Option<Offer> {
        Some(Offer {
            name: self.name.parse().ok()?,
            build: self.build,
            rootfs: self.rootfs,
            meta: self.meta,
            title: self.title,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        let s: SourceConfig = "images=simplestreams:https://images.example/".parse().unwrap();
        assert_eq!(
            (s.name.as_str(), s.kind, s.url.as_str()),
            ("images", SourceKind::Simplestreams, "https://images.example")
        );
        assert_eq!(
            "lab=lxc:http://127.0.0.1:8080".parse::<SourceConfig>().unwrap().kind,
            SourceKind::Lxc
        );
        for bad in [
            "images",
            "images=ftp:x",
            "catalog=lxc:https://x",
            "a b=lxc:https://x",
            "x=lxc:file:///etc",
        ] {
            assert!(bad.parse::<SourceConfig>().is_err(), "{bad}");
        }
    }
}
