//! Reading registries without pulling: logins as `docker login` checks them, what a reference resolves to,
//! an image's manifest and config, a repository's tags, searches, and plain downloads through depot's
//! resolver, TLS and proxies. A request that brings no credentials uses the stored ones of its host.

use super::registries::Registries;
use super::{error, pull, ImageError, RemoteDescriptor, RemoteImage, SearchHit};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::Credentials;

impl Registries {
    /// Check `creds` against `server` (a host, a URL, or empty for Docker Hub) as `docker login` does. The
    /// identity token, when the registry issued one.
    pub fn login(&self, server: &str, creds: Credentials) -> Result<Option<String>, ImageError> {
        let host = server
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        let domain = match host {
            "" | "index.docker.io" | "docker.io" | "registry-1.docker.io" => crate::reference::DEFAULT_DOMAIN,
            h => h,
        };
        self.check_login(domain, Some(creds))
    }

    /// Reach `domain`'s `/v2/` with `creds` (or none) as `docker login` does.
    pub(super) fn check_login(&self, domain: &str, creds: Option<Credentials>) -> Result<Option<String>, ImageError> {
        let repo = self.registry.repo(domain, "", creds);
        repo.login().map_err(|e| match e {
            crate::registry::RegistryError::Denied { url, .. }
            | crate::registry::RegistryError::NoCredentials { url } => ImageError::LoginFailed { url },
            e => e.into(),
        })
    }

    /// `reference`'s repository (with the stored credentials of its host when none are given), the reference
    /// with its default tag, and the tag or digest to ask the registry for.
    fn remote(&self, reference: &Reference, creds: Option<Credentials>) -> (crate::registry::Repo, Reference, String) {
        let creds = creds.or_else(|| self.stored_creds(reference.domain()));
        let repo = self.registry.repo(reference.domain(), reference.path(), creds);
        let r = reference.clone().with_default_tag();
        let which = r
            .digest()
            .map(|d| d.to_string())
            .or(r.tag().map(str::to_string))
            .unwrap_or_default();
        (repo, r, which)
    }

    /// What `reference` resolves to in its registry: the manifest's descriptor and the platforms it offers.
    pub fn remote_descriptor(
        &self,
        reference: &Reference,
        creds: Option<Credentials>,
    ) -> Result<RemoteDescriptor, ImageError> {
        let (repo, r, which) = self.remote(reference, creds);
        let fail = |e| error::pull_error(e, &r.familiar(), &r.familiar_name());
        let fm = repo.manifest(&which).map_err(fail)?;
        let (media_type, platforms) = match &fm.manifest {
            crate::registry::manifest::Manifest::Index(idx) => (
                idx.media_type.clone(),
                idx.manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
                    .filter(|p| p.os != "unknown")
                    .collect(),
            ),
            crate::registry::manifest::Manifest::Image(m) => {
                let cfg = repo
                    .blob_bytes(&m.config.digest, pull::MAX_CONFIG_BYTES)
                    .map_err(fail)?;
                let cfg = crate::registry::manifest::parse_config(&cfg)?;
                (m.media_type.clone(), vec![cfg.platform])
            }
        };
        Ok(RemoteDescriptor {
            media_type,
            size: fm.bytes.len() as u64,
            digest: fm.digest,
            platforms,
        })
    }

    /// The image `reference` names for `platform` (the daemon's when `None`), read from its registry without
    /// pulling: its manifest and config documents and the compressed size of what a pull would fetch.
    pub fn remote_image(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
        creds: Option<Credentials>,
    ) -> Result<RemoteImage, ImageError> {
        use crate::registry::manifest::{parse_manifest, Manifest};
        let (repo, r, which) = self.remote(reference, creds);
        let fail = |e| error::pull_error(e, &r.familiar(), &r.familiar_name());
        let want = platform.cloned().unwrap_or_else(|| self.platform.clone());
        let top = repo.manifest(&which).map_err(fail)?;
        let (manifest_digest, bytes, m) = match top.manifest {
            Manifest::Image(m) => (top.digest.clone(), top.bytes, m),
            Manifest::Index(idx) => {
                let entry = idx.select(&want)?;
                let fm = repo.manifest(entry.digest.as_str()).map_err(fail)?;
                match parse_manifest(&fm.bytes, Some(&entry.media_type))? {
                    Manifest::Image(m) => (fm.digest, fm.bytes, m),
                    Manifest::Index(_) => {
                        return Err(ImageError::InvalidParameter(format!(
                            "index {} points at another index",
                            top.digest
                        )))
                    }
                }
            }
        };
        let config = repo
            .blob_bytes(&m.config.digest, pull::MAX_CONFIG_BYTES)
            .map_err(fail)?;
        Ok(RemoteImage {
            digest: top.digest,
            manifest_digest,
            size: m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>(),
            manifest: bytes,
            config,
        })
    }

    /// Search images: a term that starts with a registry host (`registry:5000/foo`) lists that registry's
    /// `_catalog` and keeps the repositories containing the rest; any other term goes to the Docker Hub style
    /// index (`search_index`), `library/` stripped from official names.
    pub fn search(&self, term: &str, limit: u32, creds: Option<Credentials>) -> Result<Vec<SearchHit>, ImageError> {
        let (host, rest) = match term.split_once('/') {
            Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => (Some(h), r),
            _ => (None, term),
        };
        if let Some(host) = host.filter(|h| !matches!(*h, "docker.io" | "index.docker.io")) {
            let want = rest.to_lowercase();
            let repos = self.registry.catalog(host, creds)?;
            return Ok(repos
                .into_iter()
                .filter(|r| r.to_lowercase().contains(&want))
                .take(limit as usize)
                .map(|r| SearchHit {
                    name: format!("{host}/{r}"),
                    description: String::new(),
                    stars: 0,
                    official: false,
                })
                .collect());
        }
        let hits = self.registry.search_index(rest, limit)?;
        Ok(hits
            .into_iter()
            .map(|h| {
                let official = h["is_official"].as_bool().unwrap_or(false);
                let name = h["name"].as_str().unwrap_or("").to_string();
                SearchHit {
                    name: if official {
                        name.strip_prefix("library/").map(str::to_string).unwrap_or(name)
                    } else {
                        name
                    },
                    description: h["description"].as_str().unwrap_or("").to_string(),
                    stars: h["star_count"].as_u64().unwrap_or(0),
                    official,
                }
            })
            .take(limit as usize)
            .collect())
    }

    /// Fetch `url` (http or https, through depot's resolver, TLS and proxies) into the file `path`.
    pub fn download(&self, url: &str, path: &std::path::Path) -> Result<u64, ImageError> {
        let mut f = std::fs::File::create(path).map_err(|source| ImageError::Io {
            context: format!("storing {url}"),
            source,
        })?;
        Ok(self.registry.download(url, &mut f)?)
    }

    /// Every tag of `reference`'s repository, as the registry lists them (`docker pull -a`).
    pub fn remote_tags(&self, reference: &Reference, creds: Option<Credentials>) -> Result<Vec<String>, ImageError> {
        let creds = creds.or_else(|| self.stored_creds(reference.domain()));
        let repo = self.registry.repo(reference.domain(), reference.path(), creds);
        repo.tags()
            .map_err(|e| error::pull_error(e, &reference.familiar(), &reference.familiar_name()))
    }
}
