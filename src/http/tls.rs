//! TLS for a TCP listener (the LAN registry's). Either the NAS's own certificate and key (PEM files the config
//! or the board names), or a certificate depot issues itself at first start from a CA of its own kept beside it:
//! a LAN machine trusts that CA's file once (`/etc/docker/certs.d/HOST:PORT/ca.crt`, containerd's `ca`, skopeo's
//! `--src-cert-dir`) and keeps trusting when the NAS's addresses change, since only the server certificate is
//! issued again then.
//!
//! The handshake has the same deadline as a request's header: a client that connects and says nothing holds its
//! connection slot no longer than one that sends no request.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A request's extension: it came over our own TLS.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// How long a server certificate depot issues is valid; the CA lasts twice as long.
const ISSUED_DAYS: i64 = 5 * 365;

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The server configuration of a certificate chain and its key in PEM files.
pub fn server_config(cert: &Path, key_path: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!("{}: no certificate in it", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| invalid(format!("{}: {e}", key_path.display())))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(format!("{} and {}: {e}", cert.display(), key_path.display())))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The files of a certificate depot issued: the CA clients trust, the server's chain and key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The names and addresses the server certificate holds.
    pub names: Vec<String>,
}

/// The names a LAN client may reach this machine by: its host name (and `.local`, mDNS's), `localhost`, and
/// every address of its interfaces (loopback included), besides `extra`.
pub fn local_names(extra: &[String]) -> Vec<String> {
    let mut names = BTreeSet::new();
    names.insert("localhost".to_string());
    if let Ok(h) = nix::unistd::gethostname() {
        if let Some(h) = h.to_str().filter(|h| !h.is_empty() && *h != "localhost") {
            names.insert(h.to_ascii_lowercase());
            if !h.contains('.') {
                names.insert(format!("{}.local", h.to_ascii_lowercase()));
            }
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let ip: Option<IpAddr> = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            });
            // a link-local IPv6 address needs its zone, which no URL a client writes carries
            if let Some(ip) = ip.filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)) {
                names.insert(ip.to_string());
            }
        }
    }
    names.insert("127.0.0.1".into());
    names.insert("::1".into());
    names.extend(
        extra
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty()),
    );
    names.into_iter().collect()
}

/// The certificate depot issued itself in `dir`, for `names`: made at the first start (the CA and a server
/// certificate signed by it), and the server certificate issued again from the kept CA when `names` holds one
/// the kept certificate lacks. Each file is written whole (temp, fsync, rename, fsync the directory) and the
/// server certificate last: a crash leaves the previous set or the new one, and at worst a CA whose certificate
/// is issued again at the next start.
pub fn ensure_issued(dir: &Path, names: &[String]) -> io::Result<Issued> {
    use crate::fsutil::write_atomic;
    let files = Issued {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        names: names.to_vec(),
    };
    let ca_key_path = dir.join("ca.key");
    let names_path = dir.join("server.names");
    crate::fsutil::create_dir_durable(dir)?;
    let held: BTreeSet<String> = std::fs::read_to_string(&names_path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let complete = [&files.ca, &ca_key_path, &files.cert, &files.key]
        .iter()
        .all(|p| p.exists());
    if complete && names.iter().all(|n| held.contains(n)) {
        return Ok(Issued {
            names: held.into_iter().collect(),
            ..files
        });
    }
    let now = time::OffsetDateTime::now_utc();
    let ca_key = match rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(&ca_key_path) {
        Ok(der) if files.ca.exists() => rcgen::KeyPair::try_from(der.secret_pkcs8_der()).map_err(invalid)?,
        _ => {
            let key = rcgen::KeyPair::generate().map_err(invalid)?;
            let mut params = ca_params(&key)?;
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(2 * ISSUED_DAYS);
            let ca = params.self_signed(&key).map_err(invalid)?;
            // the key first: a CA certificate on disk always has its key beside it
            write_atomic(&ca_key_path, pem("PRIVATE KEY", &key.serialize_der()).as_bytes(), 0o600)?;
            write_atomic(&files.ca, pem("CERTIFICATE", ca.der()).as_bytes(), 0o644)?;
            key
        }
    };
    let issuer = rcgen::Issuer::new(ca_params(&ca_key)?, ca_key);
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(invalid)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("depot"),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(ISSUED_DAYS);
    let key = rcgen::KeyPair::generate().map_err(invalid)?;
    let cert = params.signed_by(&key, &issuer).map_err(invalid)?;
    let ca_pem = std::fs::read_to_string(&files.ca)?;
    write_atomic(&files.key, pem("PRIVATE KEY", &key.serialize_der()).as_bytes(), 0o600)?;
    // the chain a client is sent: the server's certificate, then the CA's
    write_atomic(
        &files.cert,
        format!("{}{ca_pem}", pem("CERTIFICATE", cert.der())).as_bytes(),
        0o644,
    )?;
    write_atomic(&names_path, names.join("\n").as_bytes(), 0o644)?;
    Ok(files)
}

/// `der` in PEM (RFC 7468) under `label`: what every TLS client and `openssl` read.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The CA's parameters, the same at every start (its name comes from its key), so that a server certificate
/// issued again names the kept CA as its issuer.
fn ca_params(key: &rcgen::KeyPair) -> io::Result<rcgen::CertificateParams> {
    let id = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
    let short: String = id.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("depot registry CA {short}"));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as `AB:CD:…` (what a browser shows), for
/// the log.
pub fn fingerprint(pem: &Path) -> io::Result<String> {
    let der = CertificateDer::from_pem_file(pem).map_err(|e| invalid(format!("{}: {e}", pem.display())))?;
    let d = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA is made once; a new address issues a new server certificate from the same CA, and both chains
    /// load as a server configuration.
    #[test]
    fn issued_once_and_again_for_a_new_name_from_the_kept_ca() {
        let dir = crate::testutil::tempdir().join("tls");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = ensure_issued(&dir, &names).unwrap();
        let ca = std::fs::read(&first.ca).unwrap();
        let cert = std::fs::read(&first.cert).unwrap();
        server_config(&first.cert, &first.key).unwrap();
        // the same names: nothing is issued
        ensure_issued(&dir, &names[..1]).unwrap();
        assert_eq!(std::fs::read(&first.cert).unwrap(), cert);
        // a new address: the server certificate again, the CA kept
        let more = vec!["localhost".to_string(), "192.0.2.7".to_string()];
        let second = ensure_issued(&dir, &more).unwrap();
        assert_eq!(std::fs::read(&second.ca).unwrap(), ca);
        assert_ne!(std::fs::read(&second.cert).unwrap(), cert);
        server_config(&second.cert, &second.key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the CA's key is the owner's alone");
        assert_eq!(fingerprint(&first.ca).unwrap().len(), 32 * 3 - 1);
        assert!(server_config(&first.ca, &dir.join("missing.key")).is_err());
    }
}
