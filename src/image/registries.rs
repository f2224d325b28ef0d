//! Private registries and the station's private image records (the Tutum-style resources of the station API).
//!
//! A registry's password is sealed with the data root's credentials key before it reaches the database and is
//! never returned; every pull from the registry's host that brings no credentials of its own uses the stored
//! ones. A record is verified against the registry when it is saved.

/// `meta` key: Docker Hub's mirrors as set through the API (JSON list of URLs).
const META_HUB_MIRRORS: &str = "hub_mirrors";

use super::ImageError;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::Credentials;
use crate::registry::Registry;
use crate::store::db::{PrivateImageRow, RegistryRow};
use crate::store::DownloadState;
use crate::store::{Db, Sealer};
use std::sync::Arc;

/// A registry as the API shows it: never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryInfo {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub host: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub insecure: bool,
}

/// A change to a registry: `None` leaves a field as it is (a new one starts empty).
#[derive(Debug, Clone, Default)]
pub struct RegistryPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    /// `Some(None)` clears it.
    pub username: Option<Option<String>>,
    /// Write-only; `Some(None)` clears it.
    pub password: Option<Option<String>>,
    pub insecure: Option<bool>,
}

/// What a private image record shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateImage {
    pub row: PrivateImageRow,
    pub registry: Option<RegistryInfo>,
    pub state: ImageState,
    /// Its local tags.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageState {
    Empty,
    Success,
    Downloading,
    Failed,
}

impl ImageState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Empty => "Empty",
            ImageState::Success => "Success",
            ImageState::Downloading => "Downloading",
            ImageState::Failed => "Failed",
        }
    }
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidParameter(msg.into())
}

/// `https://host[:port][/]`, `http://…` or a bare `host[:port]` (https) → (URL, host).
pub fn parse_registry_url(url: &str) -> Result<(String, String), ImageError> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", r)) => ("https", r),
        Some(("http", r)) => ("http", r),
        Some((other, _)) => {
            return Err(invalid(format!(
                "registry URL {url:?}: scheme {other} (expected https or http)"
            )))
        }
        None => ("https", url),
    };
    let ok = !rest.is_empty()
        && !rest.contains('/')
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    // what a reference's domain can be
    if !ok
        || Reference::parse(&format!("{rest}/x"))
            .map(|r| r.domain() != rest)
            .unwrap_or(true)
    {
        return Err(invalid(format!("registry URL {url:?}: expected https://host[:port]")));
    }
    Ok((format!("{scheme}://{rest}"), rest.to_string()))
}

/// Registry records and what reads registries on their behalf; the image service pulls with the credentials
/// kept here.
pub struct Registries {
    pub(super) db: Arc<Db>,
    pub(super) registry: Arc<Registry>,
    /// Seals the stored passwords.
    sealer: Arc<Sealer>,
    /// What a registry is read for when the caller names no platform.
    pub(super) platform: Platform,
}

impl Registries {
    pub fn new(db: Arc<Db>, registry: Arc<Registry>, sealer: Arc<Sealer>, platform: Platform) -> Registries {
        Registries {
            db,
            registry,
            sealer,
            platform,
        }
    }

    fn info(&self, r: &RegistryRow) -> RegistryInfo {
        RegistryInfo {
            id: r.id,
            name: r.name.clone(),
            url: r.url.clone(),
            host: r.host.clone(),
            username: r.username.clone(),
            has_password: r.password_sealed.is_some(),
            insecure: r.insecure,
        }
    }

    pub fn list(&self) -> Result<Vec<RegistryInfo>, ImageError> {
        Ok(self
            .db
            .registry_records()
            .registries()?
            .iter()
            .map(|r| self.info(r))
            .collect())
    }

    pub fn get(&self, id: i64) -> Result<RegistryInfo, ImageError> {
        let r = self
            .db
            .registry_records()
            .registry(id)?
            .ok_or(ImageError::NoRecord { what: "registry", id })?;
        Ok(self.info(&r))
    }

    fn creds_of(&self, r: &RegistryRow) -> Result<Option<Credentials>, ImageError> {
        let password = match &r.password_sealed {
            None => String::new(),
            Some(s) => String::from_utf8_lossy(&self.sealer.open(s).map_err(|e| {
                ImageError::InvalidParameter(format!(
                    "registry {}: the stored password cannot be read ({e}); save it again",
                    r.name
                ))
            })?)
            .into_owned(),
        };
        Ok(r.username.as_ref().map(|u| Credentials::basic(u, &password)))
    }

    /// The stored credentials for pulls from `domain`, if a registry record has some.
    pub(crate) fn stored_creds(&self, domain: &str) -> Option<Credentials> {
        let r = self.db.registry_records().registry_for_host(domain).ok().flatten()?;
        match self.creds_of(&r) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{e}");
                None
            }
        }
    }

    /// Create (`id` None) or change a registry, after checking it answers with these credentials.
    pub fn save(&self, id: Option<i64>, p: RegistryPatch) -> Result<RegistryInfo, ImageError> {
        let mut row = match id {
            Some(id) => self
                .db
                .registry_records()
                .registry(id)?
                .ok_or(ImageError::NoRecord { what: "registry", id })?,
            None => RegistryRow {
                id: 0,
                name: String::new(),
                url: String::new(),
                host: String::new(),
                username: None,
                password_sealed: None,
                insecure: false,
            },
        };
        if let Some(n) = p.name {
            row.name = n.trim().to_string();
        }
        if row.name.is_empty() || row.name.len() > 100 || row.name.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid("a registry name is 1 to 100 printable characters, no '/'"));
        }
        if let Some(u) = p.url {
            (row.url, row.host) = parse_registry_url(&u)?;
        }
        if row.url.is_empty() {
            return Err(invalid("a registry needs a url"));
        }
        if let Some(u) = p.username {
            row.username = u.filter(|u| !u.is_empty());
        }
        if let Some(pw) = p.password {
            row.password_sealed = pw.filter(|p| !p.is_empty()).map(|p| self.sealer.seal(p.as_bytes()));
        }
        if let Some(i) = p.insecure {
            row.insecure = i;
        }
        if row.url.starts_with("http://") {
            row.insecure = true;
        }
        // verified against the registry before it is kept
        self.registry.set_insecure(&row.host, row.insecure);
        let creds = self.creds_of(&row)?;
        self.check_login(&row.host, creds)?;
        let id = self.db.registry_records().put_registry(&row)?;
        row.id = id;
        Ok(self.info(&row))
    }

    pub fn delete(&self, id: i64) -> Result<(), ImageError> {
        let host = self.db.registry_records().registry(id)?.map(|r| r.host);
        if !self.db.registry_records().delete_registry(id)? {
            return Err(ImageError::NoRecord { what: "registry", id });
        }
        if let Some(h) = host {
            self.registry.set_insecure(&h, false);
        }
        Ok(())
    }

    /// Let the registry client use plain HTTP for the hosts records mark insecure (at start).
    pub fn restore(&self) -> Result<(), ImageError> {
        for r in self.db.registry_records().registries()? {
            if r.insecure {
                self.registry.set_insecure(&r.host, true);
            }
        }
        if let Some(urls) = self.db.settings().meta(META_HUB_MIRRORS)? {
            let urls: Vec<String> = serde_json::from_str(&urls).unwrap_or_default();
            self.apply_hub_mirrors(&urls)?;
        }
        Ok(())
    }

    /// Docker Hub's mirrors as URLs, in the order they are tried (set through the API, else configured).
    pub fn hub_mirrors(&self) -> Vec<String> {
        let insecure = &self.registry.options().insecure;
        self.registry
            .mirrors_of(crate::reference::DEFAULT_DOMAIN)
            .into_iter()
            .map(|h| {
                let scheme = if insecure.contains(&h) || crate::net::is_loopback(&h) {
                    "http"
                } else {
                    "https"
                };
                format!("{scheme}://{h}")
            })
            .collect()
    }

    /// Set Docker Hub's mirrors (registry root URLs, `http://` ones reached over plain HTTP), at once and
    /// across restarts; an empty list means none.
    pub fn set_hub_mirrors(&self, urls: &[String]) -> Result<Vec<String>, ImageError> {
        self.apply_hub_mirrors(urls)?;
        self.db
            .settings()
            .set_meta(META_HUB_MIRRORS, &serde_json::to_string(urls).expect("strings"))?;
        Ok(self.hub_mirrors())
    }

    fn apply_hub_mirrors(&self, urls: &[String]) -> Result<(), ImageError> {
        let mut hosts = Vec::new();
        for u in urls {
            let (plain, rest) = match (u.strip_prefix("http://"), u.strip_prefix("https://")) {
                (Some(r), _) => (true, r),
                (_, Some(r)) => (false, r),
                _ => {
                    return Err(ImageError::InvalidParameter(format!(
                        "mirror {u:?}: expected an http(s) URL"
                    )))
                }
            };
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
                return Err(ImageError::InvalidParameter(format!(
                    "mirror {u:?}: a mirror is a registry's root URL"
                )));
            }
            if plain {
                self.registry.set_insecure(host, true);
            }
            hosts.push(host.to_string());
        }
        self.registry.set_hub_mirrors(Some(hosts));
        Ok(())
    }

    /// The full reference name of a record: its registry's host before its name.
    fn record_name(&self, row: &PrivateImageRow) -> Result<String, ImageError> {
        Ok(match row.registry_id {
            Some(rid) => {
                let r = self.db.registry_records().registry(rid)?.ok_or(ImageError::NoRecord {
                    what: "registry",
                    id: rid,
                })?;
                format!("{}/{}", r.host, row.name)
            }
            None => row.name.clone(),
        })
    }

    fn private_image(&self, row: PrivateImageRow) -> Result<PrivateImage, ImageError> {
        let full = Reference::parse(&self.record_name(&row)?)?;
        let tags: Vec<String> = self
            .db
            .images()
            .repo_tags(&full.name())?
            .into_iter()
            .filter_map(|(n, _)| Reference::parse(&n).ok()?.tag().map(str::to_string))
            .collect();
        let last = self
            .db
            .downloads()
            .recent_downloads(200)?
            .into_iter()
            .rev()
            .find(|d| Reference::parse(&d.reference).is_ok_and(|r| r.name() == full.name()));
        let state = match last.as_ref().map(|d| d.state) {
            Some(s) if !s.is_terminal() => ImageState::Downloading,
            _ if !tags.is_empty() => ImageState::Success,
            Some(DownloadState::Failed) => ImageState::Failed,
            _ => ImageState::Empty,
        };
        let registry = match row.registry_id {
            Some(id) => Some(self.get(id)?),
            None => None,
        };
        Ok(PrivateImage {
            row,
            registry,
            state,
            tags,
        })
    }

    pub fn private_images(&self) -> Result<Vec<PrivateImage>, ImageError> {
        self.db
            .registry_records()
            .private_images()?
            .into_iter()
            .map(|r| self.private_image(r))
            .collect()
    }

    pub fn private_image_info(&self, id: i64) -> Result<PrivateImage, ImageError> {
        let row = self
            .db
            .registry_records()
            .private_image(id)?
            .ok_or(ImageError::NoRecord { what: "image", id })?;
        self.private_image(row)
    }

    /// Create (`row.id` 0) or replace a record; the name must make a valid reference in its registry.
    pub fn save_private_image(&self, row: PrivateImageRow) -> Result<PrivateImage, ImageError> {
        if row.id != 0 && self.db.registry_records().private_image(row.id)?.is_none() {
            return Err(ImageError::NoRecord {
                what: "image",
                id: row.id,
            });
        }
        if let Some(rid) = row.registry_id {
            self.db.registry_records().registry(rid)?.ok_or(ImageError::NoRecord {
                what: "registry",
                id: rid,
            })?;
        }
        let full = self.record_name(&row)?;
        let r = Reference::parse(&full)?;
        if r.tag().is_some() || r.digest().is_some() || full.ends_with(":latest") {
            return Err(invalid(format!(
                "image name {:?}: a repository, without a tag",
                row.name
            )));
        }
        let id = self.db.registry_records().put_private_image(&row)?;
        self.private_image_info(id)
    }

    pub fn delete_private_image(&self, id: i64) -> Result<(), ImageError> {
        if self.db.registry_records().delete_private_image(id)? {
            Ok(())
        } else {
            Err(ImageError::NoRecord { what: "image", id })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls() {
        assert_eq!(
            parse_registry_url("https://reg.example:5000/").unwrap(),
            ("https://reg.example:5000".into(), "reg.example:5000".into())
        );
        assert_eq!(
            parse_registry_url("127.0.0.1:5000").unwrap(),
            ("https://127.0.0.1:5000".into(), "127.0.0.1:5000".into())
        );
        assert_eq!(parse_registry_url("http://10.0.0.2:80").unwrap().1, "10.0.0.2:80");
        for bad in ["", "ftp://x", "https://", "https://a/b", "https://a b", "localhostonly"] {
            assert!(parse_registry_url(bad).is_err(), "{bad}");
        }
    }
}
