//! What every outgoing request shares, whatever it fetches (a registry blob, an LXC rootfs): the resolver (never
//! glibc's NSS), TLS with the system roots plus `certs.d`, proxies from the environment, connect and stall
//! timeouts, and the one retry policy.

pub mod http;
pub mod resolve;
pub mod retry;

pub use retry::{Budget, Retry, RetryPolicy};

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct NetOptions {
    /// dockerd-style `certs.d`: `<dir>/<host[:port]>/ca.crt` (extra roots), `client.cert` + `client.key`.
    pub certs_dir: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Longest silence tolerated while reading a response: a stalled server fails after this.
    pub read_timeout: Duration,
    pub retry: RetryPolicy,
    pub user_agent: String,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            certs_dir: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            user_agent: format!("depot/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Builds HTTP agents; the system roots are read once.
pub struct Net {
    pub opts: NetOptions,
    system_roots: OnceLock<Vec<ureq::tls::Certificate<'static>>>,
}

/// Whether `host` (`name`, `name:port`, `[v6]:port`) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let h = match host.strip_prefix('[') {
        Some(r) => r.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

impl Net {
    pub fn new(opts: NetOptions) -> Net {
        Net {
            opts,
            system_roots: OnceLock::new(),
        }
    }

    /// An agent for `host` (`name[:port]`, the `certs.d` key): redirects are left to the caller (credentials
    /// must not follow them to another host), and HTTP error statuses are answers, not errors.
    pub fn agent_for(&self, host: &str) -> ureq::Agent {
        use ureq::tls::{Certificate, PrivateKey, RootCerts, TlsConfig};
        let roots = self.system_roots.get_or_init(|| {
            let res = rustls_native_certs::load_native_certs();
            res.certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect()
        });
        let dir = self.opts.certs_dir.as_ref().map(|d| d.join(host));
        let mut extra = Vec::new();
        let mut client_cert = None;
        if let Some(dir) = &dir {
            if let Ok(pem) = std::fs::read(dir.join("ca.crt")) {
                for item in ureq::tls::parse_pem(&pem).flatten() {
                    if let ureq::tls::PemItem::Certificate(c) = item {
                        extra.push(c);
                    }
                }
            }
            if let (Ok(cert), Ok(key)) = (
                std::fs::read(dir.join("client.cert")),
                std::fs::read(dir.join("client.key")),
            ) {
                let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert)
                    .flatten()
                    .filter_map(|i| match i {
                        ureq::tls::PemItem::Certificate(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                match PrivateKey::from_pem(&key) {
                    Ok(k) if !chain.is_empty() => client_cert = Some(ureq::tls::ClientCert::new_with_certs(&chain, k)),
                    _ => log::warn!(
                        "{}: unusable client.cert/client.key, connecting without a client certificate",
                        dir.display()
                    ),
                }
            }
        }
        let root_certs = if roots.is_empty() && extra.is_empty() {
            RootCerts::WebPki
        } else {
            let mut all = roots.clone();
            all.extend(extra);
            RootCerts::Specific(Arc::new(all))
        };
        let tls = TlsConfig::builder()
            .root_certs(root_certs)
            .client_cert(client_cert)
            .build();
        let cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(self.opts.connect_timeout))
            .timeout_recv_response(Some(self.opts.read_timeout))
            .timeout_per_read(Some(self.opts.read_timeout))
            .user_agent(self.opts.user_agent.as_str())
            .proxy(ureq::Proxy::try_from_env())
            .max_idle_connections_per_host(8)
            .tls_config(tls)
            .build();
        // Our own resolver, never glibc's getaddrinfo: see `resolve`.
        ureq::Agent::with_parts(
            cfg,
            ureq::unversioned::transport::DefaultConnector::default(),
            resolve::Resolver::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in [
            "127.0.0.1:5000",
            "127.9.9.9",
            "localhost",
            "localhost:1",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "example.com",
            "localhost.evil.com",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
