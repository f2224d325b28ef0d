//! The LAN registry's listener, turned on and off while the daemon runs: at start as the owner last chose on the
//! page (else as the configuration says: `registry = ADDRESS:PORT` is on, `none` off), and from the page's switch
//! (`PUT /api/v1/lan-registry`), the choice kept in the database. Turning it on binds the listener (the
//! configured address, else [`DEFAULT_LISTEN`]) and, unless plain HTTP is configured, loads the NAS's certificate
//! or issues one; turning it off closes the listener (requests in flight finish).

use crate::auth::Auth;
use crate::http::{self, Handler};
use crate::image::ImageService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where the registry listens when the page turns it on and the configuration names no address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5443";

/// How the registry is served when it is on (from the configuration).
#[derive(Debug, Clone)]
pub struct LanOptions {
    /// The configured listener; `None`: off unless the page turns it on (then at [`DEFAULT_LISTEN`]).
    pub listen: Option<SocketAddr>,
    pub anonymous: bool,
    pub plain_http: bool,
    pub pull_through: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_names: Vec<String>,
    /// Where depot keeps the certificate it issues (`<data root>/registry-tls`).
    pub tls_dir: PathBuf,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The registry's state, as the page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LanStatus {
    pub enabled: bool,
    /// Where it listens (or would).
    pub address: String,
    /// `https` or `http`.
    pub scheme: &'static str,
    pub anonymous: bool,
    pub pull_through: bool,
    /// The SHA-256 fingerprint of the CA LAN clients trust, when depot issued the certificate.
    pub ca_fingerprint: Option<String>,
}

struct Running {
    address: SocketAddr,
    issued_ca: Option<PathBuf>,
    /// Dropping it closes the listener.
    _serving: smol::Task<()>,
}

/// See the module.
pub struct Lan {
    opts: LanOptions,
    images: Arc<ImageService>,
    auth: Arc<Auth>,
    running: Mutex<Option<Running>>,
}

impl Lan {
    pub fn new(opts: LanOptions, images: Arc<ImageService>, auth: Arc<Auth>) -> Lan {
        Lan {
            opts,
            images,
            auth,
            running: Mutex::default(),
        }
    }

    /// At start: on when the owner last turned it on, or when the configuration names a listener and the owner
    /// never turned it off. A listener that cannot be bound or a certificate that cannot be read is an error.
    pub fn start(&self) -> Result<(), String> {
        let chosen = self.images.lan_registry_chosen().map_err(|e| e.to_string())?;
        if chosen.unwrap_or(self.opts.listen.is_some()) {
            self.turn_on()?;
        }
        Ok(())
    }

    /// Turn it on or off, and keep the choice. Turning on what is on (or off what is off) changes nothing.
    pub fn set(&self, on: bool) -> Result<LanStatus, String> {
        match on {
            true => self.turn_on()?,
            false => {
                if let Some(r) = crate::sync::Locked::locked(&self.running).take() {
                    log::info!("registry {}: turned off", r.address);
                }
            }
        }
        self.images.choose_lan_registry(on).map_err(|e| e.to_string())?;
        Ok(self.status())
    }

    pub fn status(&self) -> LanStatus {
        let running = crate::sync::Locked::locked(&self.running);
        let address = match &*running {
            Some(r) => r.address.to_string(),
            None => self.address().map(|a| a.to_string()).unwrap_or_default(),
        };
        let ca = running.as_ref().and_then(|r| r.issued_ca.as_ref());
        LanStatus {
            enabled: running.is_some(),
            address,
            scheme: if self.opts.plain_http { "http" } else { "https" },
            anonymous: self.opts.anonymous,
            pull_through: self.opts.pull_through,
            ca_fingerprint: ca.and_then(|p| crate::http::tls::fingerprint(p).ok()),
        }
    }

    /// The CA LAN clients trust (PEM), while the registry serves with a certificate depot issued.
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        let running = crate::sync::Locked::locked(&self.running);
        std::fs::read(running.as_ref()?.issued_ca.as_ref()?).ok()
    }

    fn address(&self) -> Result<SocketAddr, String> {
        match self.opts.listen {
            Some(a) => Ok(a),
            None => DEFAULT_LISTEN.parse().map_err(|e| format!("{DEFAULT_LISTEN}: {e}")),
        }
    }

    fn turn_on(&self) -> Result<(), String> {
        let mut running = crate::sync::Locked::locked(&self.running);
        if running.is_some() {
            return Ok(());
        }
        let a = self.address()?;
        let (tls, issued_ca) = match self.opts.plain_http {
            true => (None, None),
            false => {
                let (config, ca) = self.tls(a)?;
                (Some(config), ca)
            }
        };
        let l = http::bind_tcp(a).map_err(|e| format!("binding the registry on {a}: {e}"))?;
        let address = l.local_addr().unwrap_or(a);
        log::info!(
            "registry {}://{address}: what depot holds, read-only{}, {}",
            if tls.is_some() { "https" } else { "http" },
            if self.opts.pull_through {
                " and what it pulls through"
            } else {
                ""
            },
            if self.opts.anonymous {
                "to anyone who can reach it"
            } else {
                "to holders of an API token"
            }
        );
        let api: Arc<dyn Handler> = Arc::new(super::super::Api::registry(
            super::Registry::new(
                self.images.clone(),
                self.auth.clone(),
                self.opts.anonymous,
                self.opts.pull_through,
            ),
            self.auth.clone(),
            self.opts.anonymous,
        ));
        let how = http::Serving {
            policy: None,
            max_connections: self.opts.max_connections,
            server: http::Server::Registry { tls },
        };
        let serving = smol::spawn(http::serve_tcp(l, api, how));
        *running = Some(Running {
            address,
            issued_ca,
            _serving: serving,
        });
        Ok(())
    }

    /// The server configuration: the certificate the configuration or board names when its file is there, else
    /// the one depot issues itself (for the machine's names and addresses and `registry_tls_names`), with the
    /// path of the CA LAN clients trust.
    fn tls(&self, a: SocketAddr) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), String> {
        use crate::http::tls;
        let tls_err = |e: std::io::Error| format!("registry {a}: {e}");
        if let Some(cert) = self.opts.tls_cert.as_ref().filter(|c| c.exists()) {
            let key = self.opts.tls_key.as_ref().unwrap_or(cert);
            let config = tls::server_config(cert, key).map_err(tls_err)?;
            log::info!("registry: TLS with {}", cert.display());
            return Ok((config, None));
        }
        if let Some(missing) = &self.opts.tls_cert {
            log::warn!(
                "registry: no certificate at {}: serving with one depot issues itself",
                missing.display()
            );
        }
        let mut extra = self.opts.tls_names.clone();
        if !a.ip().is_unspecified() {
            extra.push(a.ip().to_string());
        }
        let issued = tls::ensure_issued(&self.opts.tls_dir, &tls::local_names(&extra)).map_err(tls_err)?;
        log::info!(
            "registry: TLS with a certificate depot issued for {}; LAN clients trust its CA {} (SHA-256 {})",
            issued.names.join(", "),
            issued.ca.display(),
            tls::fingerprint(&issued.ca).unwrap_or_default()
        );
        let config = tls::server_config(&issued.cert, &issued.key).map_err(tls_err)?;
        Ok((config, Some(issued.ca)))
    }
}
