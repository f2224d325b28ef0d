//! Downloads survive everything: SIGKILL the daemon in the middle of pulling the 505 MB image, start it again,
//! and the pull finishes by itself from the bytes already on disk. A counting proxy between depot and the real
//! registry measures what was transferred.

mod common;

use common::net::Proxy;
use common::*;
use serde_json::Value;
use std::time::Duration;

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

fn ingest_bytes(d: &Depot) -> u64 {
    d.ingests()
        .iter()
        .map(|i| std::fs::metadata(i.join("data")).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[test]
fn sigkill_mid_pull_resumes_from_disk_and_finishes() {
    let p = peers();
    let manifest_raw = registry_get(&p.plain, "/v2/big/manifests/1", ACCEPT_ALL);
    let manifest: Value = serde_json::from_slice(&manifest_raw).unwrap();
    let layers: Vec<(String, u64)> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap()))
        .collect();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let compressed: u64 = layers.iter().map(|l| l.1).sum::<u64>() + manifest["config"]["size"].as_u64().unwrap();
    assert!(
        compressed >= 200 * 1000 * 1000,
        "the resume image must be at least 200 MB, is {compressed}"
    );

    // ~50 MB/s per connection: slow enough to be caught mid-pull, fast enough for CI.
    let proxy = Proxy::start(&p.plain, 50 * 1000 * 1000);
    let mut d = Depot::start(&[]);
    let reference = format!("{}/big:1", proxy.addr);
    let sock = d.sock.clone();
    let pull = std::thread::spawn(move || {
        let from: String = form_urlencoded::byte_serialize(reference.trim_end_matches(":1").as_bytes()).collect();
        request_unix(
            &sock,
            "POST",
            &format!("/images/create?fromImage={from}&tag=1"),
            &[],
            Duration::from_secs(600),
        )
    });
    // Kill once a good part is on disk, but well before the end.
    wait_for(120, "200 MB in the ingests", || ingest_bytes(&d) >= compressed * 2 / 5);
    let on_disk = ingest_bytes(&d);
    d.kill9();
    let _ = pull.join();
    assert!(
        on_disk < compressed,
        "killed before the end ({on_disk} of {compressed})"
    );
    let served_before = proxy.served();
    let db = rusqlite::Connection::open(d.root.join("depot.db")).unwrap();
    let state: String = db.query_row("SELECT state FROM downloads", [], |r| r.get(0)).unwrap();
    assert_eq!(state, "fetching", "the download is recorded as running");
    drop(db);

    // Restart: no client asks again; the daemon resumes on its own.
    proxy.set_rate(0);
    d.restart();
    assert!(d.images().is_empty(), "no partial image is visible while resuming");
    wait_for(180, "the resumed pull to commit", || !d.images().is_empty());
    let served = proxy.served();
    let imgs = d.images();
    assert_eq!(imgs[0]["Id"], config.as_str());
    assert_eq!(
        imgs[0]["RepoTags"],
        serde_json::json!([format!("{}/big:1", proxy.addr)])
    );
    let blobs = d.blobs(); // re-hashed: each equals its name
    for (l, _) in &layers {
        assert!(blobs.contains(l), "layer {l} committed");
    }
    assert!(d.ingests().is_empty(), "ingests are gone after commit");
    let ratio = served as f64 / compressed as f64;
    eprintln!(
        "resume: killed with {on_disk} of {compressed} bytes on disk ({served_before} served before the kill); total served {served} = {ratio:.3}x the compressed size"
    );
    assert!(
        ratio <= 1.1,
        "served {served} bytes for a {compressed}-byte image ({ratio:.3}x)"
    );
    assert!(d.log_text().contains("resuming download"), "{}", d.log_text());

    // Pulling it again transfers no blob data: only the manifest is asked for.
    let before = proxy.served();
    let (s, msgs) = d.pull_api(
        &format!("fromImage={}%2Fbig&tag=1", proxy.addr.replace(':', "%3A")),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        msgs.last().unwrap()["status"],
        format!("Status: Image is up to date for {}/big:1", proxy.addr)
    );
    let again = proxy.served() - before;
    assert!(again < 64 * 1024, "a pull of a present image transferred {again} bytes");
}

/// A private pull killed mid-download keeps its credentials sealed on disk (never in `depot.db`, its WAL or its
/// free pages), and the restarted daemon can still use them to finish.
#[test]
fn credentials_of_a_killed_private_pull_are_never_on_disk_in_plain_text() {
    let p = peers();
    // slow enough that the download is still running when it is killed
    let proxy = Proxy::start(&p.basic, 100 * 1000);
    let mut d = Depot::start(&[]);
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE,
        r#"{"username":"testuser","password":"testpass","serveraddress":"x"}"#,
    );
    let (sock, addr) = (d.sock.clone(), proxy.addr.clone());
    let pull = std::thread::spawn(move || {
        request_unix(
            &sock,
            "POST",
            &format!("/images/create?fromImage={addr}/test&tag=1"),
            &[("X-Registry-Auth", &auth)],
            Duration::from_secs(120),
        )
    });
    wait_for(30, "layer bytes in the ingest", || ingest_bytes(&d) > 0);
    d.kill9();
    let _ = pull.join();
    let db = rusqlite::Connection::open(d.root.join("depot.db")).unwrap();
    let sealed: String = db
        .query_row(
            "SELECT auth FROM downloads WHERE state NOT IN ('committed', 'failed')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sealed.starts_with("v1:"), "sealed, not plain: {sealed}");
    drop(db);
    let root = d.root.clone();
    let grep = |what: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("grep -a -l -e {what} depot.db*"))
            .current_dir(&root)
            .output()
            .unwrap()
    };
    for secret in ["testpass", "testuser"] {
        let out = grep(secret);
        assert!(out.stdout.is_empty(), "{secret} in plain text in {}", stdout(&out));
    }
    let key = d.root.join("credentials.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // the restarted daemon opens them and finishes the private pull by itself
    proxy.set_rate(0);
    d.restart();
    wait_for(60, "the resumed private pull to commit", || !d.images().is_empty());
    let db = rusqlite::Connection::open(d.root.join("depot.db")).unwrap();
    let left: Option<String> = db.query_row("SELECT auth FROM downloads", [], |r| r.get(0)).unwrap();
    assert_eq!(left, None, "credentials go when the download ends");
    drop(db);
    assert!(
        grep("testpass").stdout.is_empty(),
        "the password reached the disk after all"
    );
}
