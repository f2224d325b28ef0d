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
