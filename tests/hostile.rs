//! A hostile registry of the tests' own, for what no real registry does. Each case must end in a clear error (or,
//! where recovery is possible, success), with nothing unverified in `blobs/` and the daemon still answering.

mod common;

use common::net::{Hostile, Reply, Request};
use common::*;
use depot::digest::Digest;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A one-layer image, served by the hostile registry as `repo:1`.
#[derive(Clone)]
struct Img {
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: Digest,
    layer: Vec<u8>,
    layer_digest: Digest,
}

fn image(content_len: usize, gzip: bool, diff_override: Option<Digest>) -> Img {
    let content: Vec<u8> = (0..content_len).map(|i| (i * 7 % 251) as u8).collect();
    let diff = diff_override.unwrap_or_else(|| Digest::of(&content));
    let layer = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&content).unwrap();
        e.finish().unwrap()
    } else {
        content
    };
    let layer_digest = Digest::of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]}
    }))
    .unwrap();
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": if gzip { LAYER_GZIP } else { LAYER_TAR }, "digest": layer_digest.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    Img {
        manifest,
        config,
        config_digest,
        layer,
        layer_digest,
    }
}

/// Serve `img` normally, except where `layer` says otherwise for the layer blob (given the request and its count).
fn serve(img: Img, layer: impl Fn(&Request, u32, &Img) -> Reply + Send + Sync + 'static) -> Hostile {
    let n = Arc::new(AtomicU32::new(0));
    Hostile::start(move |r| {
        let path = r.path.split('?').next().unwrap_or("");
        if path == "/v2/" {
            return Reply::ok(b"{}".to_vec(), "application/json");
        }
        if path == "/v2/repo/manifests/1" {
            return Reply::ok(img.manifest.clone(), OCI_MANIFEST);
        }
        if path == format!("/v2/repo/blobs/{}", img.config_digest) {
            return Reply::ok(img.config.clone(), "application/octet-stream");
        }
        if path == format!("/v2/repo/blobs/{}", img.layer_digest) {
            return layer(r, n.fetch_add(1, Ordering::SeqCst), &img);
        }
        Reply::status(404, r#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#)
    })
}

fn ranged(r: &Request, body: &[u8]) -> Reply {
    match r
        .headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(from) => Reply::Full {
            status: 206,
            headers: vec![(
                "Content-Range".into(),
                format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
            )],
            body: body[from..].to_vec(),
        },
        None => Reply::ok(body.to_vec(), "application/octet-stream"),
    }
}

fn fast_depot() -> Depot {
    Depot::start(&[
        "--retries",
        "3",
        "--retry-delay-ms",
        "50",
        "--read-timeout",
        "2",
        "--connect-timeout",
        "2",
    ])
}

/// Pull `repo:1` from `h`; returns the HTTP status and the last message (error or status).
fn pull(d: &Depot, h: &Hostile, auth: Option<&str>) -> (u16, String) {
    let (s, msgs) = d.pull_api(&format!("fromImage={}/repo&tag=1", h.addr), auth);
    let last = msgs.last().cloned().unwrap_or_default();
    let text = last
        .get("error")
        .or(last.get("message"))
        .or(last.get("status"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if s == 200 && last.get("error").is_some() {
        assert_eq!(last["errorDetail"]["message"], last["error"], "both error fields");
        return (599, text);
    }
    (s, text)
}

/// After a failure: the daemon answers, nothing unverified or partial is visible.
fn healthy_and_clean(d: &Depot, img: &Img) {
    assert_eq!(d.get("/_ping"), (200, b"OK".to_vec()));
    assert!(d.images().is_empty(), "no image is visible after a failed pull");
    let blobs = d.blobs(); // each blob re-hashed against its name
    assert!(
        !blobs.contains(&img.layer_digest.to_string()),
        "the bad layer never reaches blobs/"
    );
}

#[test]
fn wrong_blob_digest() {
    let img = image(100_000, false, None);
    let h = serve(img.clone(), |_, _, img| {
        let mut evil = img.layer.clone();
        evil[500] ^= 0xff;
        Reply::ok(evil, "application/octet-stream")
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(
        msg.contains(&format!("blob digest mismatch: expected {}", img.layer_digest)),
        "{msg}"
    );
    healthy_and_clean(&d, &img);
}

#[test]
fn wrong_diff_id() {
    let img = image(100_000, true, Some(Digest::of(b"something else")));
    let h = serve(img.clone(), |r, _, img| ranged(r, &img.layer));
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(
        msg.contains("uncompressed content has digest") && msg.contains("but the image config says"),
        "{msg}"
    );
    healthy_and_clean(&d, &img);
    assert!(d
        .ingests()
        .iter()
        .all(|i| std::fs::metadata(i.join("data")).map(|m| m.len()).unwrap_or(0) == 0));
}

#[test]
fn corrupt_gzip_stream() {
    let img = image(200_000, true, None);
    let h = serve(img.clone(), |_, _, img| {
        let mut evil = img.layer.clone();
        for b in &mut evil[20..200] {
            *b = 0;
        }
        Reply::ok(evil, "application/octet-stream")
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(msg.contains("corrupt") || msg.contains("digest mismatch"), "{msg}");
    healthy_and_clean(&d, &img);
}

#[test]
fn truncated_once_then_resumed_with_range() {
    let img = image(300_000, true, None);
    let h = serve(img.clone(), |r, n, img| {
        if n == 0 {
            Reply::Truncated {
                declared: img.layer.len() as u64,
                body: img.layer[..img.layer.len() / 2].to_vec(),
            }
        } else {
            ranged(r, &img.layer)
        }
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(
        (s, msg.starts_with("Status: Downloaded newer image")),
        (200, true),
        "{msg}"
    );
    let gets: Vec<Request> = h
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(&img.layer_digest.to_string()))
        .collect();
    assert_eq!(gets.len(), 2);
    assert_eq!(
        gets[1].headers.get("range").map(String::as_str),
        Some(format!("bytes={}-", img.layer.len() / 2).as_str())
    );
    assert!(d.blobs().contains(&img.layer_digest.to_string()));
}

#[test]
fn always_truncated_fails_after_bounded_retries() {
    let img = image(300_000, true, None);
    let h = serve(img.clone(), |_, _, img| Reply::Truncated {
        declared: img.layer.len() as u64,
        body: img.layer[..1000].to_vec(),
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(msg.contains("download incomplete after 3 attempts"), "{msg}");
    healthy_and_clean(&d, &img);
}

#[test]
fn endless_body_is_cut_at_the_declared_size() {
    let img = image(50_000, false, None);
    let h = serve(img.clone(), |_, _, img| Reply::Endless {
        prefix: img.layer.clone(),
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(
        msg.contains("sent more than the 50000 bytes the manifest declares"),
        "{msg}"
    );
    healthy_and_clean(&d, &img);
    let on_disk: u64 = d
        .ingests()
        .iter()
        .map(|i| std::fs::metadata(i.join("data")).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(on_disk, 0, "nothing past the declared size is kept");
}

#[test]
fn manifest_over_the_cap() {
    let big = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","pad":"{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let h = Hostile::start(move |r| match r.path.as_str() {
        "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
        _ => Reply::ok(big.clone().into_bytes(), OCI_MANIFEST),
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 500);
    assert!(msg.contains("larger than the limit of 4194304 bytes"), "{msg}");
    assert!(d.blobs().is_empty());
    assert_eq!(d.get("/_ping").0, 200);
}

#[test]
fn schema1_is_refused_clearly() {
    let h = Hostile::start(|r| match r.path.as_str() {
        "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
        _ => Reply::ok(
            br#"{"schemaVersion":1,"name":"repo","tag":"1","fsLayers":[],"history":[]}"#.to_vec(),
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 500);
    assert!(msg.contains("Docker schema 1"), "{msg}");
}

#[test]
fn redirect_to_another_host_gets_no_credentials() {
    let img = image(100_000, true, None);
    let cdn = serve(img.clone(), |r, _, img| ranged(r, &img.layer));
    let cdn_addr = cdn.addr.clone();
    let layer_path = format!("/v2/repo/blobs/{}", img.layer_digest);
    let inner = img.clone();
    let reg = Hostile::start(move |r| {
        let authed = r.headers.get("authorization").map(String::as_str) == Some("Basic dXNlcjpzM2NyM3Q=");
        if !authed {
            return Reply::Full {
                status: 401,
                headers: vec![("WWW-Authenticate".into(), r#"Basic realm="hostile""#.into())],
                body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
            };
        }
        match r.path.as_str() {
            "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
            "/v2/repo/manifests/1" => Reply::ok(inner.manifest.clone(), OCI_MANIFEST),
            p if p == layer_path => Reply::Full {
                status: 307,
                headers: vec![("Location".into(), format!("http://{cdn_addr}{p}?signed=1"))],
                body: vec![],
            },
            p if p.ends_with(&inner.config_digest.to_string()) => {
                Reply::ok(inner.config.clone(), "application/octet-stream")
            }
            _ => Reply::status(404, "{}"),
        }
    });
    let d = fast_depot();
    use base64::Engine;
    let auth = base64::engine::general_purpose::URL_SAFE.encode(r#"{"username":"user","password":"s3cr3t"}"#);
    let (s, msg) = pull(&d, &reg, Some(&auth));
    assert_eq!(s, 200, "{msg}");
    let cdn_reqs = cdn.requests();
    assert!(!cdn_reqs.is_empty(), "the blob came from the redirect target");
    assert!(
        cdn_reqs.iter().all(|r| !r.headers.contains_key("authorization")),
        "credentials leaked: {cdn_reqs:?}"
    );
    assert!(cdn_reqs[0].path.ends_with("?signed=1"));
    assert!(reg.requests().iter().any(|r| r.headers.contains_key("authorization")));
    assert!(d.blobs().contains(&img.layer_digest.to_string()));
}

#[test]
fn rate_limit_names_the_limit() {
    let h = Hostile::start(|r| match r.path.as_str() {
        "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
        _ => Reply::Full {
            status: 429,
            headers: vec![
                ("ratelimit-limit".into(), "100;w=21600".into()),
                ("ratelimit-remaining".into(), "0;w=21600".into()),
            ],
            body: br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#
                .to_vec(),
        },
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 429);
    assert!(
        msg.contains("rate limit") && msg.contains("ratelimit-remaining: 0;w=21600"),
        "{msg}"
    );
    assert!(msg.contains("You have reached your pull rate limit"), "{msg}");
    assert_eq!(
        h.requests().iter().filter(|r| r.path.contains("manifests")).count(),
        1,
        "a 429 is not hammered with retries"
    );
}

#[test]
fn stalled_server_times_out() {
    let img = image(200_000, false, None);
    let h = serve(img.clone(), |_, _, img| Reply::Stall {
        declared: img.layer.len() as u64,
        prefix: img.layer[..1000].to_vec(),
        secs: 30,
    });
    let d = fast_depot();
    let t = Instant::now();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "a stall is detected by the read timeout, not by the server giving up"
    );
    assert!(msg.contains("timeout") || msg.contains("timed out"), "{msg}");
    healthy_and_clean(&d, &img);
}

#[test]
fn server_errors_are_retried() {
    let img = image(100_000, true, None);
    let h = serve(img.clone(), |r, n, img| {
        if n < 2 {
            Reply::status(503, "{}")
        } else {
            ranged(r, &img.layer)
        }
    });
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 200, "{msg}");
    assert!(d.blobs().contains(&img.layer_digest.to_string()));
}

#[test]
fn an_always_503_blob_spends_one_budget_and_names_the_status() {
    let img = image(100_000, true, None);
    let h = serve(img.clone(), |_, _, _| Reply::Full {
        status: 503,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"\nupstream overloaded, come back later\nsecond line\n".to_vec(),
    });
    // the default policy: 5 attempts in all, 0.5 s doubling backoff with jitter
    let d = Depot::start(&[]);
    let t = Instant::now();
    let (s, msg) = pull(&d, &h, None);
    let took = t.elapsed();
    assert_eq!(s, 599);
    let layer_requests = h
        .requests()
        .iter()
        .filter(|r| r.path.contains(&img.layer_digest.to_string()))
        .count();
    eprintln!("always-503 blob: {layer_requests} requests in {took:?}: {msg}");
    assert_eq!(
        layer_requests, 5,
        "one budget of 5 attempts, not retries inside retries"
    );
    assert!(
        msg.contains("download incomplete after 5 attempts")
            && msg.contains("registry answered 503 Service Unavailable: upstream overloaded, come back later"),
        "{msg}"
    );
    assert!(
        took < Duration::from_secs(15),
        "backoff 0.25-0.5, 0.5-1, 1-2, 2-4 s: {took:?}"
    );
    healthy_and_clean(&d, &img);
}

#[test]
fn retry_after_is_honoured_for_503_and_429() {
    let img = image(50_000, true, None);
    let manifests = Arc::new(AtomicU32::new(0));
    let layers = AtomicU32::new(0);
    let (m2, img2) = (manifests.clone(), img.clone());
    let h = Hostile::start(move |r| {
        let path = r.path.split('?').next().unwrap_or("");
        let later = |secs: &str, status: u16| Reply::Full {
            status,
            headers: vec![("Retry-After".into(), secs.into())],
            body: Vec::new(),
        };
        if path == "/v2/" {
            Reply::ok(b"{}".to_vec(), "application/json")
        } else if path == "/v2/repo/manifests/1" {
            // the first manifest request is rate limited, saying when to come back
            match m2.fetch_add(1, Ordering::SeqCst) {
                0 => later("1", 429),
                _ => Reply::ok(img2.manifest.clone(), OCI_MANIFEST),
            }
        } else if path == format!("/v2/repo/blobs/{}", img2.config_digest) {
            Reply::ok(img2.config.clone(), "application/octet-stream")
        } else if path == format!("/v2/repo/blobs/{}", img2.layer_digest) {
            match layers.fetch_add(1, Ordering::SeqCst) {
                0 => later("1", 503),
                _ => ranged(r, &img2.layer),
            }
        } else {
            Reply::status(404, "{}")
        }
    });
    let d = fast_depot();
    let t = Instant::now();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 200, "{msg}");
    assert!(t.elapsed() >= Duration::from_secs(2), "both waits of 1 s were kept");
    assert_eq!(manifests.load(Ordering::SeqCst), 2);
    assert!(d.blobs().contains(&img.layer_digest.to_string()));
    // a Retry-After beyond the cap (60 s) fails at once, saying when
    let h = Hostile::start(|r| match r.path.as_str() {
        "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
        _ => Reply::Full {
            status: 429,
            headers: vec![("Retry-After".into(), "3600".into())],
            body: Vec::new(),
        },
    });
    let t = Instant::now();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 429);
    assert!(msg.contains("retry after 3600 s"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn manifest_not_matching_the_requested_digest() {
    let img = image(10_000, true, None);
    let other = image(20_000, true, None);
    let wanted = Digest::of(&img.manifest);
    let h = Hostile::start(move |r| match r.path.as_str() {
        "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
        _ => Reply::ok(other.manifest.clone(), OCI_MANIFEST),
    });
    let d = fast_depot();
    let (s, msgs) = d.pull_api(&format!("fromImage={}/repo&tag={wanted}", h.addr), None);
    assert_eq!(s, 500, "{msgs:?}");
    assert!(
        msgs[0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("digest mismatch: expected {wanted}")),
        "{msgs:?}"
    );
    assert!(d.blobs().is_empty());
}

#[test]
fn config_with_fewer_diff_ids_than_layers() {
    let mut img = image(10_000, true, None);
    let cfg: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    let mut cfg2 = cfg.clone();
    cfg2["rootfs"]["diff_ids"] = serde_json::json!([]);
    img.config = serde_json::to_vec(&cfg2).unwrap();
    img.config_digest = Digest::of(&img.config);
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    m["config"]["digest"] = img.config_digest.to_string().into();
    m["config"]["size"] = img.config.len().into();
    img.manifest = serde_json::to_vec(&m).unwrap();
    let h = serve(img.clone(), |r, _, img| ranged(r, &img.layer));
    let d = fast_depot();
    let (s, msg) = pull(&d, &h, None);
    assert_eq!(s, 599);
    assert!(
        msg.contains("image config has 0 diff_ids but the manifest has 1 layers"),
        "{msg}"
    );
    healthy_and_clean(&d, &img);
}

#[test]
fn two_pulls_of_one_layer_never_share_an_ingest() {
    // repo:1 and repo:2 are different manifests over the same layer. The registry ignores Range, so a second
    // writer of the same ingest would restart it from zero under the first. A throttling proxy makes them overlap.
    let img = image(3_000_000, false, None);
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    m["annotations"] = serde_json::json!({"tag": "2"});
    let manifest2 = serde_json::to_vec(&m).unwrap();
    let inner = img.clone();
    let h = Hostile::start(move |r| {
        let path = r.path.split('?').next().unwrap_or("");
        match path {
            "/v2/" => Reply::ok(b"{}".to_vec(), "application/json"),
            "/v2/repo/manifests/1" => Reply::ok(inner.manifest.clone(), OCI_MANIFEST),
            "/v2/repo/manifests/2" => Reply::ok(manifest2.clone(), OCI_MANIFEST),
            p if p.ends_with(&inner.config_digest.to_string()) => {
                Reply::ok(inner.config.clone(), "application/octet-stream")
            }
            p if p.ends_with(&inner.layer_digest.to_string()) => {
                Reply::ok(inner.layer.clone(), "application/octet-stream")
            }
            _ => Reply::status(404, "{}"),
        }
    });
    let proxy = common::net::Proxy::start(&h.addr, 3_000_000);
    let d = fast_depot();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| d.pull_api(&format!("fromImage={}%2Frepo&tag=1", proxy.addr), None));
        let partial = || {
            d.ingests().iter().any(|i| {
                std::fs::metadata(i.join("data"))
                    .map(|m| m.len() > 1_000_000)
                    .unwrap_or(false)
            })
        };
        wait_for(30, "the first pull to be part-way", partial);
        let b = s.spawn(|| d.pull_api(&format!("fromImage={}%2Frepo&tag=2", proxy.addr), None));
        (a.join().unwrap(), b.join().unwrap())
    });
    for (s, msgs) in [&a, &b] {
        assert_eq!(*s, 200, "{msgs:?}");
        let last = msgs.last().unwrap();
        assert!(last.get("error").is_none(), "{last}");
    }
    assert!(d.blobs().contains(&img.layer_digest.to_string()));
    let layer_gets = h
        .requests()
        .iter()
        .filter(|r| r.path.contains(&img.layer_digest.to_string()))
        .count();
    assert_eq!(layer_gets, 1, "the second pull waits for the first and reuses its blob");
}
