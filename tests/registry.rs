//! The LAN registry: depot's store served read-only over the OCI distribution API on a listener of its own, to
//! real clients (skopeo, the docker CLI through dockerd's `registry-mirrors` and by direct name, containerd's
//! `ctr`, a second depot using the first as its `--registry-mirror`), with the spec's answers to what a client
//! gets wrong; by default over TLS with a certificate depot issues, to holders of an API token.

mod common;

use common::lan::*;
use common::*;
use std::process::Command;

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
    stdout(o)
}

#[test]
fn the_store_is_served_to_real_clients() {
    let p = peers();
    let (d, reg) = registry_depot();
    let test1 = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &test1]));
    ok(&d.docker(&["pull", "-q", &format!("{}/multiarch:1", p.plain)]));
    ok(&d.docker(&["tag", &test1, "hello:1"]));
    ok(&d.docker(&["tag", &test1, "someone/app:2"]));
    let id = d.images().iter().find(|i| i["RepoTags"][0] == test1.as_str()).unwrap()["Id"].clone();

    let (s, head, _) = get(&reg, "GET", "/v2/", &[]);
    assert_eq!(s, 200);
    assert!(head.contains("docker-distribution-api-version: registry/2.0"), "{head}");
    // skopeo: inspect and copy (every blob verified by skopeo against its digest)
    let img = format!("docker://{reg}/library/hello:1");
    let o = ok(&Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &img])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let copied = tempdir("reg-copy");
    ok(&Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", &img])
        .arg(format!("dir:{}", copied.display()))
        .output()
        .unwrap());
    // the manifest as stored: its digest is the one depot pulled
    let (s, head, body) = get(&reg, "GET", "/v2/library/hello/manifests/1", &[]);
    assert_eq!(s, 200);
    let digest = head
        .lines()
        .find_map(|l| l.strip_prefix("docker-content-digest: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(v["Digest"].as_str().unwrap(), digest);
    assert!(
        head.contains("content-type: application/vnd.oci.image.manifest.v1+json"),
        "{head}"
    );
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["config"]["digest"], id);
    // by digest, and HEAD
    let (s, head, _) = get(&reg, "HEAD", &format!("/v2/library/hello/manifests/{digest}"), &[]);
    assert_eq!(s, 200);
    assert!(head.contains(&format!("docker-content-digest: {digest}")), "{head}");
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    // another registry's image, as containerd's mirror requests name it
    let plain_port = p.plain.split(':').nth(1).unwrap();
    let (s, _, _) = get(
        &reg,
        "GET",
        &format!("/v2/test/manifests/1?ns=127.0.0.1:{plain_port}"),
        &[],
    );
    assert_eq!(s, 200);
    // a layer, whole and by range
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let size = m["layers"][0]["size"].as_u64().unwrap();
    let (s, head, body) = get(&reg, "GET", &format!("/v2/library/hello/blobs/{layer}"), &[]);
    assert_eq!((s, body.len() as u64), (200, size));
    assert!(head.contains(&format!("docker-content-digest: {layer}")), "{head}");
    let (s, head, body) = get(
        &reg,
        "GET",
        &format!("/v2/library/hello/blobs/{layer}"),
        &["Range: bytes=10-19"],
    );
    assert_eq!((s, body.len()), (206, 10));
    assert!(head.contains(&format!("content-range: bytes 10-19/{size}")), "{head}");
    // tags and the catalog, paged
    let (s, head, body) = get(&reg, "GET", "/v2/_catalog?n=1", &[]);
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["library/hello"]));
    assert!(
        head.contains("link: </v2/_catalog?n=1&last=library/hello>; rel=\"next\""),
        "{head}"
    );
    let (_, _, body) = get(&reg, "GET", "/v2/_catalog?n=1&last=library/hello", &[]);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["someone/app"]),
        "a registry with a port is reached by ns"
    );
    let (_, _, body) = get(&reg, "GET", "/v2/someone/app/tags/list", &[]);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, serde_json::json!({"name": "someone/app", "tags": ["2"]}));

    // the docker CLI, through dockerd with depot as its registry mirror: Docker Hub is unreachable here, so the
    // image can only come from depot
    let dockerd = Dockerd::start_with(&[
        "--registry-mirror",
        &format!("http://{reg}"),
        "--insecure-registry",
        &reg,
    ]);
    ok(&dockerd.docker(&["pull", "hello:1"]));
    let o = ok(&dockerd.docker(&["image", "inspect", "hello:1", "--format", "{{.Id}}"]));
    assert_eq!(o.trim(), id.as_str().unwrap());
    // and by direct name, depot as the registry
    let direct = format!("{reg}/someone/app:2");
    ok(&dockerd.docker(&["pull", &direct]));
    let o = ok(&dockerd.docker(&["image", "inspect", &direct, "--format", "{{.Id}}"]));
    assert_eq!(o.trim(), id.as_str().unwrap());
    // a second depot with the first as its mirror: the fleet shares one download
    let second = Depot::start(&[
        "--registry-mirror",
        &format!("http://{reg}"),
        "--insecure-registry",
        &reg,
    ]);
    ok(&second.docker(&["pull", "-q", "someone/app:2"]));
    assert_eq!(second.images()[0]["Id"], id);
    let _ = std::fs::remove_dir_all(&copied);
}

/// Only the registry answers on its listener; 10,000 clients sending a HEAD at once (more than its connection
/// share: the rest wait in the kernel's backlog) are all answered, while the unix socket keeps being served. The
/// spec's own answers are `tests/registry_spec.rs`'s.
#[test]
fn nothing_else_answers_there_and_10000_heads_at_once_are_all_answered() {
    let (d, reg) = registry_depot();
    let p = peers();
    ok(&d.docker(&["pull", "-q", &format!("{}/test:1", p.plain)]));
    ok(&d.docker(&["tag", &format!("{}/test:1", p.plain), "hello:1"]));
    // neither the Engine API, the station API nor the page answer on the registry's listener
    for path in [
        "/_ping",
        "/v1.41/images/json",
        "/api/v1/image?category=local",
        "/",
        "/index.html",
    ] {
        assert_eq!(get(&reg, "GET", path, &[]).0, 404, "{path}");
    }
    // the unix socket is served throughout: a ping every 50 ms while the HEADs come
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let (sock, stop) = (d.sock.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut n, mut slowest) = (0, std::time::Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = std::time::Instant::now();
                let (s, _, _) = request_unix(&sock, "GET", "/_ping", &[], std::time::Duration::from_secs(10));
                assert_eq!(s, 200, "the socket answers while the LAN registry is flooded");
                slowest = slowest.max(t.elapsed());
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            (n, slowest)
        })
    };
    let (answered, took) = heads_at_once(&reg, "/v2/library/hello/manifests/1", 10_000);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (pings, slowest) = pinger.join().unwrap();
    println!("10,000 HEADs at once: {answered} answered 200 in {took:?}; {pings} pings, slowest {slowest:?}");
    assert_eq!(answered, 10_000);
    assert_eq!(get(&reg, "GET", "/v2/", &[]).0, 200);
}

/// `n` HEAD requests of `path`, each on a connection of its own, all opened at once: how many were answered 200,
/// and how long all took.
fn heads_at_once(addr: &str, path: &str, n: usize) -> (usize, std::time::Duration) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard as usize > n + 100,
        "the test needs {n} descriptors (hard limit {hard})"
    );
    let request = format!("HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let t = std::time::Instant::now();
    let ok = smol::block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let request = request.clone();
                smol::spawn(async move {
                    let one = async {
                        let mut s = async_net::TcpStream::connect(addr).await.ok()?;
                        s.write_all(request.as_bytes()).await.ok()?;
                        let mut answer = Vec::new();
                        s.read_to_end(&mut answer).await.ok()?;
                        Some(answer.starts_with(b"HTTP/1.1 200"))
                    };
                    let deadline = async {
                        async_io::Timer::after(std::time::Duration::from_secs(120)).await;
                        None
                    };
                    futures_lite::future::or(one, deadline).await == Some(true)
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            ok += usize::from(task.await);
        }
        ok
    });
    (ok, t.elapsed())
}

/// A token made with `depot token create` over the unix socket.
fn api_token(d: &Depot, name: &str) -> String {
    let o = ok(&Command::new(bin())
        .arg("-H")
        .arg(&d.sock)
        .args(["token", "create", name])
        .output()
        .unwrap());
    o.trim().to_string()
}

fn json_of(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// By default the registry is served over TLS with a certificate depot issues (clients trust its CA), to
/// holders of an API token: as Basic's password, or traded at the token endpoint (GET with Basic, dockerd's and
/// skopeo's; POST with the OAuth2 form, containerd's) for a pull token that dies with the API token.
#[test]
fn by_default_pulls_need_a_token_and_travel_over_tls() {
    let p = peers();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("https://{addr}");
    let d = Depot::start(&["--registry", &addr]);
    let ca = d.root.join("registry-tls/ca.crt");
    let ca_arg = ca.display().to_string();
    let tls = ["--cacert", ca_arg.as_str()];
    wait_for(20, "the registry to answer over TLS", || {
        ca.exists() && request(&base, "GET", "/v2/", &[], &tls).0 == 401
    });
    let test1 = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &test1]));
    ok(&d.docker(&["tag", &test1, "hello:1"]));
    let id = d.images()[0]["Id"].clone();
    let token = api_token(&d, "lan");
    let manifest = "/v2/library/hello/manifests/1";

    // the challenge names the token endpoint as the client reached it, the service and the scope
    let (s, head, body) = request(&base, "GET", manifest, &[], &tls);
    assert_eq!((s, code(&body)), (401, "UNAUTHORIZED".to_string()));
    assert!(
        head.contains(&format!(
            "www-authenticate: bearer realm=\"https://{addr}/v2/token\",service=\"depot\",scope=\"repository:library/hello:pull\""
        )),
        "{head}"
    );
    // plain HTTP gets no answer there, and nothing but the issued CA is trusted
    assert_ne!(get(&addr, "GET", "/v2/", &[]).0, 200);
    assert_eq!(
        request(&base, "GET", "/v2/", &[], &[]).0,
        0,
        "curl's own roots do not know depot's CA"
    );
    // the API token as Basic's password
    let basic = format!("x:{token}");
    let with_basic = ["--cacert", ca_arg.as_str(), "-u", basic.as_str()];
    assert_eq!(request(&base, "GET", manifest, &[], &with_basic).0, 200);
    let wrong = ["--cacert", ca_arg.as_str(), "-u", "x:dpt_0000"];
    assert_eq!(request(&base, "GET", manifest, &[], &wrong).0, 401);
    // the token flow: GET with Basic, then the pull token as a bearer
    let (s, _, body) = request(
        &base,
        "GET",
        "/v2/token?service=depot&scope=repository:library/hello:pull",
        &[],
        &with_basic,
    );
    assert_eq!(s, 200);
    let v = json_of(&body);
    let pull = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["access_token"], v["token"]);
    assert!(pull.starts_with("dpr_") && v["expires_in"].as_u64().unwrap() > 0, "{v}");
    let bearer = format!("Authorization: Bearer {pull}");
    assert_eq!(request(&base, "GET", manifest, &[&bearer], &tls).0, 200);
    assert_eq!(
        request(&base, "GET", "/v2/token", &[], &tls).0,
        401,
        "no token for nothing"
    );
    assert_eq!(request(&base, "GET", "/v2/token", &[], &wrong).0, 401);
    // containerd's OAuth2 form
    let form =
        format!("grant_type=password&username=x&password={token}&service=depot&scope=repository:library/hello:pull");
    let (s, _, body) = request(&base, "POST", "/v2/token", &[], &["--cacert", &ca_arg, "-d", &form]);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let oauth = json_of(&body)["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        request(
            &base,
            "GET",
            manifest,
            &[&format!("Authorization: Bearer {oauth}")],
            &tls
        )
        .0,
        200
    );
    let bad_form = "grant_type=password&username=x&password=dpt_0&service=depot";
    assert_eq!(
        request(&base, "POST", "/v2/token", &[], &["--cacert", &ca_arg, "-d", bad_form]).0,
        401
    );

    // skopeo: the CA by --cert-dir, the token as the password (it follows the challenge to the token endpoint)
    let certs = tempdir("reg-certs");
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let img = format!("docker://{addr}/library/hello:1");
    let inspect = |creds: Option<&str>| {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--cert-dir"]).arg(&certs);
        if let Some(creds) = creds {
            c.args(["--creds", creds]);
        }
        c.arg(&img).output().unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&ok(&inspect(Some(&basic)))).unwrap();
    assert!(v["Digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(!inspect(None).status.success(), "skopeo without credentials");

    // containerd's ctr: the CA in its hosts directory, the token as the password
    let c = Containerd::start();
    let hosts = c.dir.join("hosts").join(&addr);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"{base}\"\n[host.\"{base}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{ca_arg}\"\n"
        ),
    )
    .unwrap();
    let hosts_dir = c.dir.join("hosts").display().to_string();
    let reference = format!("{addr}/library/hello:1");
    ok(&c.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        &hosts_dir,
        "--user",
        &basic,
        "--snapshotter",
        "native",
        &reference,
    ]));
    let listed = ok(&c.ctr(&["images", "ls"]));
    assert!(listed.contains(&reference), "{listed}");
    assert!(!c
        .ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            &hosts_dir,
            "--snapshotter",
            "native",
            &reference
        ])
        .status
        .success());
    drop(c);

    // a second depot: the CA in its certs.d, the token by `docker login` (the token flow of depot's own client)
    let second_certs = tempdir("reg-certs2");
    std::fs::create_dir_all(second_certs.join(&addr)).unwrap();
    std::fs::copy(&ca, second_certs.join(&addr).join("ca.crt")).unwrap();
    let second = Depot::start(&["--certs-dir", &second_certs.display().to_string()]);
    ok(&second.docker(&["login", &addr, "-u", "x", "-p", &token]));
    ok(&second.docker(&["pull", "-q", &reference]));
    assert_eq!(second.images()[0]["Id"], id);

    // revoking the API token ends what it bought at once
    ok(&Command::new(bin())
        .arg("-H")
        .arg(&d.sock)
        .args(["token", "rm", "1"])
        .output()
        .unwrap());
    assert_eq!(request(&base, "GET", manifest, &[&bearer], &tls).0, 401);
    assert_eq!(request(&base, "GET", manifest, &[], &with_basic).0, 401);
    let _ = std::fs::remove_dir_all(&certs);
    let _ = std::fs::remove_dir_all(&second_certs);
}

/// What depot lacks is pulled by its own pull (kept, as `docker pull` keeps it) and served while it runs: a layer
/// reaches its clients as its bytes arrive, every client following the one download; Docker Hub's names go
/// through depot's own mirror settings, another registry's by containerd's `ns`.
#[test]
fn what_depot_lacks_is_pulled_through_and_followed_as_it_arrives() {
    let p = peers();
    // Docker Hub's images come from the plain registry, depot's Docker Hub mirror here
    ok(&Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:1", p.images.join("oci-test").display()))
        .arg(format!("docker://{}/library/ptest:1", p.plain))
        .output()
        .unwrap());
    let mirror = format!("http://{}", p.plain);
    let (d, reg) = registry_depot_with(&[
        "--registry-mirror",
        &mirror,
        "--insecure-registry",
        &p.plain,
        "--bandwidth-limit",
        "100M",
    ]);
    // dockerd with depot as its mirror: depot holds nothing yet
    let dockerd = Dockerd::start_with(&[
        "--registry-mirror",
        &format!("http://{reg}"),
        "--insecure-registry",
        &reg,
    ]);
    ok(&dockerd.docker(&["pull", "ptest:1"]));
    let names: Vec<String> = d
        .images()
        .iter()
        .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert_eq!(names, vec!["ptest:1".to_string()], "the pulled-through image is kept");
    let ns = format!("?ns={}", p.plain);
    // a tag the registry does not have: its answer, in the spec's shape
    let (s, _, body) = get(&reg, "GET", &format!("/v2/test/manifests/absent{ns}"), &[]);
    assert_eq!((s, code(&body)), (404, "MANIFEST_UNKNOWN".to_string()));
    // Docker Hub itself is out of reach here: after the mirror's 404, the last answer is a gateway's
    let (s, _, body) = get(&reg, "GET", "/v2/library/ptest/manifests/absent", &[]);
    assert_eq!(
        (s, code(&body)),
        (502, "UNKNOWN".to_string()),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // another registry's big image (four 125 MiB layers) by containerd's ns: the manifest is served once the
    // pull has stored it, and two clients follow its first layer while it downloads
    let (s, head, body) = get(&reg, "GET", &format!("/v2/big/manifests/1{ns}"), &[]);
    assert_eq!(s, 200, "{head}");
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let size = m["layers"][0]["size"].as_u64().unwrap();
    let out = tempdir("reg-through");
    let followers: Vec<_> = (0..2)
        .map(|i| {
            Command::new("curl")
                .args(["-s", "-f", "--max-time", "300", "-o"])
                .arg(out.join(format!("layer{i}")))
                .arg(format!("http://{reg}/v2/big/blobs/{layer}{ns}"))
                .spawn()
                .unwrap()
        })
        .collect();
    let committed = d.root.join("blobs/sha256").join(layer.trim_start_matches("sha256:"));
    let received = |i: usize| std::fs::metadata(out.join(format!("layer{i}"))).map_or(0, |m| m.len());
    wait_for(120, "the first bytes of the layer to reach both clients", || {
        received(0) > 0 && received(1) > 0
    });
    assert!(
        !committed.exists(),
        "bytes reach the clients while the layer arrives, not once it is whole"
    );
    for mut f in followers {
        assert!(f.wait().unwrap().success());
    }
    for i in 0..2 {
        let got = out.join(format!("layer{i}"));
        assert_eq!(std::fs::metadata(&got).unwrap().len(), size);
        assert_eq!(format!("sha256:{}", sha256_file(&got)), layer);
    }
    // the pull goes on to its end and keeps the image
    let big = format!("{}/big:1", p.plain);
    wait_for(300, "the pulled-through image to be kept", || {
        d.images().iter().any(|i| i["RepoTags"][0] == big.as_str())
    });
    // kept, the layer is sent from the store by sendfile
    sent_by_sendfile(&d, &reg, &format!("/v2/big/blobs/{layer}{ns}"), &layer, size);
    let _ = std::fs::remove_dir_all(&out);
}

/// The page's switch: `PUT /api/v1/lan-registry` turns the registry off and on while the daemon runs, the
/// choice outlives a restart (and wins over the configuration), and the CA clients trust is offered for download.
#[test]
fn the_owner_turns_the_registry_off_and_on_and_the_choice_is_kept() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = Depot::start(&["--registry", &addr]);
    let sock = d.sock.display().to_string();
    let station = |method: &str, body: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "--unix-socket", &sock, "-X", method, "-w", "\n%{http_code}"]);
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "-d", b]);
        }
        let out = stdout(&c.arg("http://x/api/v1/lan-registry").output().unwrap());
        let (body, code) = out.rsplit_once('\n').unwrap();
        (
            code.parse::<u16>().unwrap(),
            serde_json::from_str::<serde_json::Value>(body).unwrap_or_default(),
        )
    };
    let listening = || std::net::TcpStream::connect(&addr).is_ok();
    let (s, v) = station("GET", None);
    assert_eq!(s, 200);
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(
        (v["address"].as_str(), v["scheme"].as_str()),
        (Some(addr.as_str()), Some("https"))
    );
    let fingerprint = v["ca_fingerprint"].as_str().unwrap().to_string();
    assert!(listening());
    // the CA, as the page offers it: the issued one
    let ca = Command::new("curl")
        .args(["-s", "--unix-socket", &sock, "http://x/api/v1/lan-registry/ca.crt"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(ca, std::fs::read(d.root.join("registry-tls/ca.crt")).unwrap());
    // off: the listener closes at once
    let (s, v) = station("PUT", Some(r#"{"enabled": false}"#));
    assert_eq!((s, v["enabled"].as_bool()), (200, Some(false)), "{v}");
    wait_for(10, "the listener to close", || !listening());
    // the choice wins over the configuration at the next start
    d.restart();
    assert!(!listening());
    assert_eq!(station("GET", None).1["enabled"], false);
    // on again, with the same CA
    let (s, v) = station("PUT", Some(r#"{"enabled": true}"#));
    assert_eq!((s, v["enabled"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(v["ca_fingerprint"].as_str(), Some(fingerprint.as_str()));
    assert!(listening());
    // malformed settings are refused in words
    let (s, v) = station("PUT", Some(r#"{"enabled": "yes"}"#));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("malformed"), "{v}");
}

/// dockerd's own token flow (`docker login`, then a pull by direct name) against a registry that needs a token,
/// over plain HTTP as `insecure-registries` allows (dockerd trusts a CA only from /etc/docker/certs.d, which a
/// test does not touch).
#[test]
fn dockerd_logs_in_with_a_token_and_pulls() {
    let p = peers();
    let addr = format!("127.0.0.1:{}", free_port());
    let d = Depot::start(&["--registry", &addr, "--registry-plain-http", "true"]);
    wait_for(20, "the registry to answer", || get(&addr, "GET", "/v2/", &[]).0 == 401);
    let test1 = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &test1]));
    ok(&d.docker(&["tag", &test1, "hello:1"]));
    let token = api_token(&d, "dockerd");
    let dockerd = Dockerd::start_with(&["--insecure-registry", &addr]);
    let image = format!("{addr}/library/hello:1");
    assert!(
        !dockerd.docker(&["pull", &image]).status.success(),
        "no pull without the token"
    );
    assert!(!dockerd
        .docker(&["login", &addr, "-u", "x", "-p", "dpt_wrong"])
        .status
        .success());
    ok(&dockerd.docker(&["login", &addr, "-u", "x", "-p", &token]));
    ok(&dockerd.docker(&["pull", &image]));
    let o = ok(&dockerd.docker(&["image", "inspect", &image, "--format", "{{.Id}}"]));
    assert_eq!(o.trim(), d.images()[0]["Id"].as_str().unwrap());
}

/// dockerd over TLS, checking the certificate: with depot's issued CA in its `certs.d`, `docker login` with an API token and a pull by
/// direct name; and a depot serving anonymously over TLS as its `registry-mirrors` entry.
#[test]
fn dockerd_trusts_the_issued_ca_and_pulls_over_tls() {
    let p = peers();
    let test1 = format!("{}/test:1", p.plain);
    // under a name dockerd resolves to ::1 (in its own /etc/hosts): it takes every registry in 127.0.0.0/8 for an
    // insecure one and would not check the certificate, and docker references cannot hold an IPv6 address
    let start = |name: &str, extra: &[&str]| {
        let port = std::net::TcpListener::bind("[::1]:0")
            .expect("the test needs ::1")
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("[::1]:{port}");
        let mut args = vec!["--registry", listen.as_str(), "--registry-tls-name", name];
        args.extend_from_slice(extra);
        let d = Depot::start(&args);
        let ca = d.root.join("registry-tls/ca.crt");
        let tls = ["--cacert".to_string(), ca.display().to_string()];
        let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
        wait_for(20, "the registry to answer over TLS", || {
            ca.exists() && request(&format!("https://{listen}"), "GET", "/v2/", &[], &tls).0 != 0
        });
        ok(&d.docker(&["pull", "-q", &test1]));
        ok(&d.docker(&["tag", &test1, "hello:1"]));
        (d, format!("{name}:{port}"), ca)
    };
    let (d, addr, ca) = start("depot-lan.test", &[]);
    let (open, open_addr, open_ca) = start("open-lan.test", &["--registry-anonymous", "true"]);
    let token = api_token(&d, "dockerd");
    let dockerd = Dockerd::start_trusting(
        &[(&addr, &ca), (&open_addr, &open_ca)],
        &["depot-lan.test", "open-lan.test"],
        &["--registry-mirror", &format!("https://{open_addr}")],
    );
    let image = format!("{addr}/library/hello:1");
    assert!(
        !dockerd.docker(&["pull", &image]).status.success(),
        "no pull without the token"
    );
    ok(&dockerd.docker(&["login", &addr, "-u", "x", "-p", &token]));
    ok(&dockerd.docker(&["pull", &image]));
    let o = ok(&dockerd.docker(&["image", "inspect", &image, "--format", "{{.Id}}"]));
    assert_eq!(o.trim(), d.images()[0]["Id"].as_str().unwrap());
    // Docker Hub is out of reach: hello:1 can only come from the mirror
    ok(&dockerd.docker(&["pull", "hello:1"]));
    let o = ok(&dockerd.docker(&["image", "inspect", "hello:1", "--format", "{{.Id}}"]));
    assert_eq!(o.trim(), open.images()[0]["Id"].as_str().unwrap());
}

/// Pull-through obeys the signature policy: an image the policy refuses is answered 403 `DENIED` before any of
/// it is served, and nothing of it is kept.
#[test]
fn a_pull_through_the_policy_refuses_is_denied_and_nothing_kept() {
    let p = peers();
    let dir = tempdir("reg-policy");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.json");
    std::fs::write(&policy, r#"{"default": [{"type": "reject"}]}"#).unwrap();
    let (d, reg) = registry_depot_with(&["--policy", &policy.display().to_string()]);
    let (s, _, body) = get(&reg, "GET", &format!("/v2/test/manifests/1?ns={}", p.plain), &[]);
    assert_eq!(
        (s, code(&body)),
        (403, "DENIED".to_string()),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(d.images().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Read syscalls the process made so far (`/proc/PID/io`'s `syscr`, every thread's).
fn read_calls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// What a raw connection receives for `request` until the server closes it (or 20 s pass).
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// `path`, a stored `size`-byte blob `layer`, goes from the page cache to the socket by `sendfile`: whole (with under
/// half the read calls 64 KiB reads would take) and by range; clients that go away in the middle of it (the
/// socket closed under `sendfile`) leave the registry serving.
fn sent_by_sendfile(d: &Depot, reg: &str, path: &str, layer: &str, size: u64) {
    let out = tempdir("reg-sendfile");
    let whole = out.join("whole");
    let before = read_calls(d.pid());
    let o = ok(&Command::new("curl")
        .args(["-s", "-f", "-w", "%{size_download}", "-o"])
        .arg(&whole)
        .arg(format!("http://{reg}{path}"))
        .output()
        .unwrap());
    let reads = read_calls(d.pid()) - before;
    assert_eq!(o.trim(), size.to_string());
    assert_eq!(format!("sha256:{}", sha256_file(&whole)), layer);
    let chunked_reads = size / (64 * 1024);
    println!("{size} bytes served with {reads} read calls (64 KiB chunks: {chunked_reads})");
    assert!(
        reads < chunked_reads / 2,
        "{reads} read calls for {size} bytes: the blob was read, not sent by sendfile"
    );
    // a range from the middle is the same bytes as the whole's
    let (from, to) = (size / 3, size / 3 + 10 * 1024 * 1024);
    let (s, head, part) = get(reg, "GET", path, &[&format!("Range: bytes={from}-{to}")]);
    assert_eq!(s, 206, "{head}");
    assert!(
        head.contains(&format!("content-range: bytes {from}-{to}/{size}")),
        "{head}"
    );
    let all = std::fs::read(&whole).unwrap();
    assert!(part == all[from as usize..=to as usize], "the range's bytes differ");
    drop(all);
    let _ = std::fs::remove_dir_all(&out);
    // clients that go away in the middle of a blob (the socket closed under `sendfile`) leave the server serving
    for _ in 0..8 {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(reg).unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: r\r\n\r\n").as_bytes())
            .unwrap();
        let mut some = [0u8; 64 * 1024];
        c.read_exact(&mut some).unwrap();
    }
    assert_eq!(get(reg, "GET", "/v2/", &[]).0, 200);
}

/// The registry's listener speaks HTTP/1.1 through a small server of its own (stored blobs by `sendfile`: see
/// [`sent_by_sendfile`]): requests are taken in order on a kept-alive connection; malformed, oversized and
/// too-long requests get the spec's error shape and the connection is closed without reading what it did not ask
/// for.
#[test]
fn the_listener_keeps_to_http_1_1() {
    let p = peers();
    let (d, reg) = registry_depot();
    let test1 = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &test1]));
    ok(&d.docker(&["tag", &test1, "hello:1"]));
    let (s, _, body) = get(&reg, "GET", "/v2/library/hello/manifests/1", &[]);
    assert_eq!(s, 200);

    // two requests sent at once on one connection are answered in order; the HEAD's answer has the length and
    // no body; `Connection: close` ends the connection
    let manifest = "/v2/library/hello/manifests/1";
    let a = raw_exchange(
        &reg,
        format!("GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\nHEAD {manifest} HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let answers: Vec<&str> = a.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 2, "{a}");
    assert!(answers[0].starts_with("200") && answers[1].starts_with("200"), "{a}");
    assert!(
        a.to_lowercase().contains(&format!("content-length: {}", body.len())),
        "{a}"
    );
    assert!(a.ends_with("\r\n\r\n"), "no body after the HEAD's answer: {a}");
    // HTTP/1.0: answered, then closed; every answer says when it was made (an HTTP date)
    let a = raw_exchange(&reg, b"GET /v2/ HTTP/1.0\r\n\r\n");
    let date = a
        .lines()
        .find_map(|l| l.strip_prefix("date: "))
        .unwrap_or_else(|| panic!("no date: {a}"));
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(date.trim(), &fmt).unwrap().assume_utc();
    assert!(
        (time::OffsetDateTime::now_utc() - at).whole_seconds().abs() < 60,
        "{date}"
    );
    assert!(
        a.starts_with("HTTP/1.1 200") && a.to_lowercase().contains("connection: close"),
        "{a}"
    );
    // malformed: the spec's error shape, then closed
    let a = raw_exchange(&reg, b"GET /v2/ HTTP/1.1\r\nHost: r\r\nno colon here\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 400") && a.contains("\"errors\""), "{a}");
    let a = raw_exchange(
        &reg,
        b"GET /v2/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 400"), "two lengths: {a}");
    // a head larger than 64 KiB
    let a = raw_exchange(
        &reg,
        format!(
            "GET /v2/ HTTP/1.1\r\nHost: r\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        )
        .as_bytes(),
    );
    assert!(a.starts_with("HTTP/1.1 431") && a.contains("\"errors\""), "{a}");
    // a push of 100 MB is refused without waiting for (or reading) its body
    let t = std::time::Instant::now();
    let a = raw_exchange(
        &reg,
        b"PUT /v2/library/hello/blobs/uploads/x HTTP/1.1\r\nHost: r\r\nContent-Length: 100000000\r\n\r\nsome",
    );
    assert!(a.starts_with("HTTP/1.1 405") && a.contains("UNSUPPORTED"), "{a}");
    assert!(a.to_lowercase().contains("connection: close"), "{a}");
    println!("the 100 MB push was refused in {:?}", t.elapsed());
    // a small body with `Expect: 100-continue` is asked for, read, answered, and the connection carries on
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(&reg).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    c.write_all(
        b"PUT /v2/library/hello/manifests/2 HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 25];
    c.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"{}GET /v2/ HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = String::new();
    let _ = c.read_to_string(&mut rest);
    let answers: Vec<&str> = rest.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 2, "{rest}");
    assert!(answers[0].starts_with("405") && answers[1].starts_with("200"), "{rest}");
}
