//! TLS with per-registry CAs (`certs.d`, as dockerd keeps them) and HTTP proxies from the environment.

mod common;

use common::net::ForwardProxy;
use common::*;

#[test]
fn tls_registry_with_ca_from_certs_d() {
    let p = peers();
    // without the CA: a clear TLS error, and no silent fallback to plain HTTP against a TLS server
    let d = Depot::start(&[]);
    let (s, m) = d.pull_api(&format!("fromImage={}/test&tag=1", p.tls), None);
    assert_eq!(s, 503, "{m:?}");
    let msg = m[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("https://{}/v2/", p.tls)) && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    // with certs.d/<host:port>/ca.crt under the data root
    let root = tempdir("depot-tls");
    let dir = root.join("certs.d").join(&p.tls);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&p.tls_ca, dir.join("ca.crt")).unwrap();
    let d = Depot::start_at(root, &[]);
    let (s, m) = d.pull_api(&format!("fromImage={}/test&tag=1", p.tls), None);
    assert_eq!(s, 200, "{m:?}");
    assert_eq!(d.images().len(), 1);
    // and with --certs-dir somewhere else
    let certs = tempdir("certs");
    std::fs::create_dir_all(certs.join(&p.tls)).unwrap();
    std::fs::copy(&p.tls_ca, certs.join(&p.tls).join("ca.crt")).unwrap();
    let d = Depot::start(&["--certs-dir", certs.to_str().unwrap()]);
    assert_eq!(d.pull_api(&format!("fromImage={}/test&tag=1", p.tls), None).0, 200);
}

#[test]
fn http_proxy_from_the_environment_and_no_proxy() {
    let p = peers();
    let proxy = ForwardProxy::start();
    let url = format!("http://{}", proxy.addr);
    let d = Depot::start_env(&[], &[("HTTP_PROXY", &url), ("HTTPS_PROXY", &url), ("NO_PROXY", "")]);
    let (s, m) = d.pull_api(&format!("fromImage={}/test&tag=1", p.plain), None);
    assert_eq!(s, 200, "{m:?}");
    let seen = proxy.requests.lock().unwrap().clone();
    // ureq tunnels both schemes with CONNECT: one for the TLS attempt, one for plain HTTP after it
    let tunnels = seen
        .iter()
        .filter(|r| r.starts_with(&format!("CONNECT {} ", p.plain)))
        .count();
    assert!(tunnels >= 2, "{seen:?}");
    // NO_PROXY exempts the registry
    let proxy2 = ForwardProxy::start();
    let url2 = format!("http://{}", proxy2.addr);
    let d2 = Depot::start_env(
        &[],
        &[("HTTP_PROXY", &url2), ("HTTPS_PROXY", &url2), ("NO_PROXY", "127.0.0.1")],
    );
    let (s, m) = d2.pull_api(&format!("fromImage={}/test&tag=1", p.plain), None);
    assert_eq!(s, 200, "{m:?}");
    assert!(
        proxy2.requests.lock().unwrap().is_empty(),
        "{:?}",
        proxy2.requests.lock().unwrap()
    );
}

#[test]
fn registry_by_host_name_resolves_without_glibc() {
    // `localhost` comes from /etc/hosts through depot's own resolver (the static NAS binaries never call
    // getaddrinfo); it is loopback, so plain HTTP is allowed after TLS fails.
    let p = peers();
    let port = p.plain.rsplit(':').next().unwrap();
    let d = Depot::start(&[]);
    let (s, m) = d.pull_api(&format!("fromImage=localhost%3A{port}%2Ftest&tag=1"), None);
    assert_eq!(s, 200, "{m:?}");
    assert_eq!(d.images()[0]["RepoTags"][0], format!("localhost:{port}/test:1"));
    let (s, m) = d.pull_api("fromImage=no-such-host.invalid%2Ftest&tag=1", None);
    assert_ne!(s, 200);
    assert!(
        m[0]["message"].as_str().unwrap().contains("no-such-host.invalid"),
        "{m:?}"
    );
}
