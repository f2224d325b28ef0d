//! The pull section of the OCI distribution spec (v1.1), requirement by requirement, against depot's LAN registry:
//! one test per section of the spec, named after it. (The Go conformance suite cannot be fetched here: no Go module
//! proxy is reachable.) Each assertion names the requirement it checks.

mod common;

use common::lan::*;
use common::*;
use serde_json::Value;

/// A registry holding `hello:1` (an OCI image manifest), `hello:2` and `hello:0.a_b-c` (the same image), and
/// `multi:1` (an OCI index), with the first layer's digest and size, the manifest's digest and bytes.
struct Held {
    _d: Depot,
    reg: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    index_digest: String,
    layer: String,
    layer_size: u64,
    config: String,
}

fn held() -> Held {
    let p = peers();
    let (d, reg) = registry_depot();
    let test1 = format!("{}/test:1", p.plain);
    let multi = format!("{}/multiarch:1", p.plain);
    for args in [
        vec!["pull", "-q", test1.as_str()],
        vec!["pull", "-q", multi.as_str()],
        vec!["tag", test1.as_str(), "hello:1"],
        vec!["tag", test1.as_str(), "hello:2"],
        vec!["tag", test1.as_str(), "hello:0.a_b-c"],
        vec!["tag", multi.as_str(), "multi:1"],
    ] {
        let o = d.docker(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let (s, head, manifest) = get(&reg, "GET", "/v2/library/hello/manifests/1", &[]);
    assert_eq!(s, 200);
    let manifest_digest = header_of(&head, "docker-content-digest");
    let (_, head, _) = get(&reg, "GET", "/v2/library/multi/manifests/1", &[]);
    let index_digest = header_of(&head, "docker-content-digest");
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    Held {
        _d: d,
        reg,
        layer: m["layers"][0]["digest"].as_str().unwrap().to_string(),
        layer_size: m["layers"][0]["size"].as_u64().unwrap(),
        config: m["config"]["digest"].as_str().unwrap().to_string(),
        manifest,
        manifest_digest,
        index_digest,
    }
}

fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {head}"))
        .trim()
        .to_string()
}

/// The whole answer to a raw HTTP/1.1 request on a connection of its own.
fn raw_request(addr: &str, request: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn sha256_of(b: &[u8]) -> String {
    let dir = tempdir("spec-sha");
    std::fs::write(dir.join("b"), b).unwrap();
    let s = format!("sha256:{}", sha256_file(&dir.join("b")));
    let _ = std::fs::remove_dir_all(&dir);
    s
}

/// "Determining support": `GET /v2/` answers 200 when the registry implements the spec (401 when it asks for
/// authentication: see `tests/registry.rs`), with the API version header Docker's clients look for.
#[test]
fn end_1_determining_support() {
    let h = held();
    let (s, head, _) = get(&h.reg, "GET", "/v2/", &[]);
    assert_eq!(s, 200, "end-1: GET /v2/ MUST be 200 when the spec is implemented");
    assert!(head.contains("docker-distribution-api-version: registry/2.0"), "{head}");
    assert_eq!(
        get(&h.reg, "GET", "/v2", &[]).0,
        200,
        "end-1 without the trailing slash"
    );
}

/// "Pulling manifests" (end-3): by tag or digest; 200 with the manifest byte for byte, `Content-Type` the
/// manifest's media type, `Docker-Content-Digest` its digest; 404 `MANIFEST_UNKNOWN` when it is not there.
#[test]
fn pulling_manifests() {
    let h = held();
    assert_eq!(
        sha256_of(&h.manifest),
        h.manifest_digest,
        "Docker-Content-Digest MUST be the digest of the manifest returned"
    );
    let (s, head, body) = get(
        &h.reg,
        "GET",
        &format!("/v2/library/hello/manifests/{}", h.manifest_digest),
        &[],
    );
    assert_eq!(s, 200, "a reference MAY be a digest");
    assert_eq!(body, h.manifest, "the manifest by digest is the same bytes");
    assert_eq!(header_of(&head, "docker-content-digest"), h.manifest_digest);
    // the media type: the stored one; an OCI manifest without a mediaType field (umoci writes none) is served
    // under the type it was pulled with
    assert_eq!(
        header_of(&head, "content-type"),
        "application/vnd.oci.image.manifest.v1+json",
        "Content-Type MUST be the manifest's media type"
    );
    // a tag of any allowed shape
    let (s, _, body) = get(&h.reg, "GET", "/v2/library/hello/manifests/0.a_b-c", &[]);
    assert_eq!(
        (s, &body),
        (200, &h.manifest),
        "a tag matching [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
    );
    // an index, as an index
    let (s, head, body) = get(&h.reg, "GET", "/v2/library/multi/manifests/1", &[]);
    assert_eq!(s, 200);
    assert_eq!(
        header_of(&head, "content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(sha256_of(&body), h.index_digest);
    let idx: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(idx["mediaType"], "application/vnd.oci.image.index.v1+json");
    // 404 MANIFEST_UNKNOWN: an unknown tag, an unknown digest, a digest held under another name
    for path in [
        "/v2/library/hello/manifests/3".to_string(),
        format!("/v2/library/hello/manifests/sha256:{}", "0".repeat(64)),
        format!("/v2/library/multi/manifests/{}", h.manifest_digest),
    ] {
        let (s, head, body) = get(&h.reg, "GET", &path, &[]);
        assert_eq!((s, code(&body)), (404, "MANIFEST_UNKNOWN".to_string()), "{path}");
        assert!(head.contains("content-type: application/json"), "{path}: {head}");
    }
    // a name that is not one: NAME_INVALID
    let (s, _, body) = get(&h.reg, "GET", "/v2/Library/Hello/manifests/1", &[]);
    assert_eq!((s, code(&body)), (400, "NAME_INVALID".to_string()));
}

/// "Pulling blobs" (end-2): 200 with the blob's bytes and `Docker-Content-Digest`; 404 `BLOB_UNKNOWN` when the
/// repository has no such blob (a blob of another repository is not served under this one).
#[test]
fn pulling_blobs() {
    let h = held();
    let (s, head, body) = get(&h.reg, "GET", &format!("/v2/library/hello/blobs/{}", h.layer), &[]);
    assert_eq!(s, 200);
    assert_eq!(body.len() as u64, h.layer_size);
    assert_eq!(sha256_of(&body), h.layer, "the body MUST be the blob");
    assert_eq!(
        header_of(&head, "docker-content-digest"),
        h.layer,
        "Docker-Content-Digest MUST match the blob"
    );
    for path in [
        format!("/v2/library/hello/blobs/sha256:{}", "0".repeat(64)),
        format!("/v2/library/multi/blobs/{}", h.config),
    ] {
        let (s, _, body) = get(&h.reg, "GET", &path, &[]);
        assert_eq!((s, code(&body)), (404, "BLOB_UNKNOWN".to_string()), "{path}");
    }
    let (s, _, body) = get(&h.reg, "GET", "/v2/library/hello/blobs/sha256:xyz", &[]);
    assert_eq!((s, code(&body)), (400, "DIGEST_INVALID".to_string()));
}

/// "Pulling blobs", range requests (RFC 9110 `Range`, which the spec says registries SHOULD support): 206 with
/// `Content-Range`; 416 for a range outside the blob or one depot does not serve (several ranges).
#[test]
fn pulling_blobs_with_ranges() {
    let h = held();
    let path = format!("/v2/library/hello/blobs/{}", h.layer);
    let (_, _, whole) = get(&h.reg, "GET", &path, &[]);
    let size = h.layer_size;
    for (range, first, last) in [
        ("bytes=0-9".to_string(), 0, 9),
        (format!("bytes={}-", size - 5), size - 5, size - 1),
        ("bytes=-7".to_string(), size - 7, size - 1),
        (format!("bytes=10-{}", size + 100), 10, size - 1),
    ] {
        let (s, head, body) = get(&h.reg, "GET", &path, &[&format!("Range: {range}")]);
        assert_eq!(s, 206, "{range}");
        assert_eq!(body, whole[first as usize..=last as usize], "{range}");
        assert_eq!(
            header_of(&head, "content-range"),
            format!("bytes {first}-{last}/{size}")
        );
        assert_eq!(header_of(&head, "content-length"), (last - first + 1).to_string());
    }
    for range in [
        format!("bytes={size}-"),
        "bytes=5-1".to_string(),
        "bytes=0-1,4-5".to_string(),
        "lines=1-2".to_string(),
        "bytes=-0".to_string(),
    ] {
        let (s, _, body) = get(&h.reg, "GET", &path, &[&format!("Range: {range}")]);
        assert_eq!((s, code(&body)), (416, "RANGE_INVALID".to_string()), "{range}");
    }
}

/// "Checking if content exists in the registry": `HEAD` of a manifest or blob is 200 with `Content-Length` the
/// exact size and `Docker-Content-Digest`, and no body; 404 when it is not there.
#[test]
fn checking_if_content_exists() {
    let h = held();
    for (path, digest, len) in [
        (
            "/v2/library/hello/manifests/1".to_string(),
            h.manifest_digest.clone(),
            h.manifest.len() as u64,
        ),
        (
            format!("/v2/library/hello/manifests/{}", h.manifest_digest),
            h.manifest_digest.clone(),
            h.manifest.len() as u64,
        ),
        (
            format!("/v2/library/hello/blobs/{}", h.layer),
            h.layer.clone(),
            h.layer_size,
        ),
    ] {
        let (s, head, _) = get(&h.reg, "HEAD", &path, &[]);
        assert_eq!(s, 200, "{path}");
        assert_eq!(header_of(&head, "docker-content-digest"), digest, "{path}");
        // the raw answer, on a connection the server closes: nothing after the header
        let raw = raw_request(
            &h.reg,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(raw.len(), end, "a HEAD answer MUST NOT have a body");
        assert_eq!(header_of(&head, "content-length"), len.to_string(), "{path}");
    }
    for path in [
        "/v2/library/hello/manifests/nope".to_string(),
        format!("/v2/library/hello/blobs/sha256:{}", "1".repeat(64)),
    ] {
        assert_eq!(get(&h.reg, "HEAD", &path, &[]).0, 404, "{path}");
    }
}

/// "Listing tags" (end-8a, end-8b): 200 `{"name", "tags"}` in lexical order; `n` the most to return, `last` the
/// tag to start after, a `Link` header (RFC 5988) to the next page while more follow; 404 `NAME_UNKNOWN` for a
/// repository depot does not have; `n` that is not a whole number is refused.
#[test]
fn listing_tags() {
    let h = held();
    let tags = |q: &str| {
        let (s, head, body) = get(&h.reg, "GET", &format!("/v2/library/hello/tags/list{q}"), &[]);
        assert_eq!(s, 200, "{q}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["name"], "library/hello");
        let t: Vec<String> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        (t, head)
    };
    let (all, head) = tags("");
    assert_eq!(all, ["0.a_b-c", "1", "2"], "tags in lexical order");
    assert!(!head.contains("\nlink:"), "no Link when nothing follows: {head}");
    let (first, head) = tags("?n=2");
    assert_eq!(first, ["0.a_b-c", "1"]);
    assert!(
        head.contains("link: </v2/library/hello/tags/list?n=2&last=1>; rel=\"next\""),
        "{head}"
    );
    assert_eq!(tags("?n=2&last=1").0, ["2"]);
    assert_eq!(tags("?last=0.a_b-c").0, ["1", "2"]);
    assert!(tags("?n=0").0.is_empty(), "n=0: an empty list");
    assert!(tags("?last=2").0.is_empty());
    let (s, _, body) = get(&h.reg, "GET", "/v2/library/absent/tags/list", &[]);
    assert_eq!((s, code(&body)), (404, "NAME_UNKNOWN".to_string()));
    for q in ["?n=-1", "?n=x"] {
        let (s, _, body) = get(&h.reg, "GET", &format!("/v2/library/hello/tags/list{q}"), &[]);
        assert_eq!((s, code(&body)), (400, "PAGINATION_NUMBER_INVALID".to_string()), "{q}");
    }
    // the catalog (not in the spec; distribution's) pages the same way
    let (s, _, body) = get(&h.reg, "GET", "/v2/_catalog", &[]);
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["library/hello", "library/multi"]));
}

/// "Listing referrers" (end-12a): 200 with an image index (`Content-Type` the index's) even when nothing refers
/// to the digest, never 404; each manifest of the repository whose `subject` is the digest as a descriptor with
/// its `artifactType` and annotations; `artifactType` filtering, said in `OCI-Filters-Applied`; 400 for a digest
/// that is not one.
#[test]
fn listing_referrers() {
    let h = held();
    for d in [h.manifest_digest.clone(), format!("sha256:{}", "2".repeat(64))] {
        let (s, head, body) = get(&h.reg, "GET", &format!("/v2/library/hello/referrers/{d}"), &[]);
        assert_eq!(s, 200, "{d}: the referrers API MUST NOT answer 404");
        assert_eq!(
            header_of(&head, "content-type"),
            "application/vnd.oci.image.index.v1+json"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["schemaVersion"].as_u64(), v["manifests"].clone()),
            (Some(2), serde_json::json!([]))
        );
    }
    let (s, _, body) = get(&h.reg, "GET", "/v2/library/hello/referrers/sha256:xyz", &[]);
    assert_eq!((s, code(&body)), (400, "DIGEST_INVALID".to_string()));

    // a manifest with a subject (an image of its own, claiming test:1's manifest), pushed beside test:1 in a
    // repository of the peer registry, pulled by depot and tagged with it under one name
    let p = peers();
    let repo = format!(
        "refs{}{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_millis() % 100_000
    );
    let at = |tag: &str| format!("{}/{repo}:{tag}", p.plain);
    let copy = |from: &str, to: &str| {
        let o = std::process::Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{from}"))
            .arg(format!("docker://{to}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    copy(&format!("{}/test:1", p.plain), &at("1"));
    copy(&format!("{}/multi:1", p.plain), &at("base"));
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
    let (_, _, subject) = get(&p.plain, "GET", &format!("/v2/{repo}/manifests/1"), &[accept]);
    let subject_digest = format!("sha256:{}", sha256_hex(&subject));
    assert_eq!(
        subject_digest, h.manifest_digest,
        "test:1 is what depot serves as hello:1"
    );
    let (_, _, base) = get(&p.plain, "GET", &format!("/v2/{repo}/manifests/base"), &[accept]);
    let mut sbom: Value = serde_json::from_slice(&base).unwrap();
    sbom["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    sbom["artifactType"] = "application/vnd.example.sbom+json".into();
    sbom["subject"] = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": subject_digest,
        "size": subject.len(),
    });
    sbom["annotations"] = serde_json::json!({"org.example.kind": "sbom"});
    let sbom = serde_json::to_vec(&sbom).unwrap();
    let dir = tempdir("referrer");
    let body = dir.join("manifest.json");
    std::fs::write(&body, &sbom).unwrap();
    let (s, _, answer) = request(
        &format!("http://{}", p.plain),
        "PUT",
        &format!("/v2/{repo}/manifests/sbom"),
        &["Content-Type: application/vnd.oci.image.manifest.v1+json"],
        &["--data-binary", &format!("@{}", body.display())],
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&answer));
    let _ = std::fs::remove_dir_all(&dir);
    let sbom_digest = format!("sha256:{}", sha256_hex(&sbom));
    for (tag, name) in [("1", "refd:1"), ("sbom", "refd:sbom")] {
        for args in [vec!["pull", "-q", &at(tag)], vec!["tag", &at(tag), name]] {
            let o = h._d.docker(&args);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        }
    }
    let referrers = |repo: &str, query: &str| {
        let (s, head, body) = get(
            &h.reg,
            "GET",
            &format!("/v2/library/{repo}/referrers/{subject_digest}{query}"),
            &[],
        );
        assert_eq!(s, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        (
            v["manifests"].clone(),
            head.contains("oci-filters-applied: artifacttype"),
        )
    };
    let expected = serde_json::json!([{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sbom_digest,
        "size": sbom.len(),
        "artifactType": "application/vnd.example.sbom+json",
        "annotations": {"org.example.kind": "sbom"},
    }]);
    assert_eq!(referrers("refd", ""), (expected.clone(), false));
    assert_eq!(
        referrers("refd", "?artifactType=application/vnd.example.sbom%2Bjson"),
        (expected, true)
    );
    assert_eq!(
        referrers("refd", "?artifactType=application/vnd.example.other"),
        (serde_json::json!([]), true)
    );
    // referrers are the repository's: hello holds the subject, not the manifest referring to it
    assert_eq!(referrers("hello", ""), (serde_json::json!([]), false));
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// "Error codes": every error body is `{"errors": [{"code", "message", "detail"}]}` (JSON) with a code of the
/// spec's table; and the push endpoints this read-only registry does not offer answer in that shape
/// (`UNSUPPORTED`), whatever they carry.
#[test]
fn error_codes_and_push_refused() {
    let h = held();
    let (_, head, body) = get(&h.reg, "GET", "/v2/library/hello/manifests/nope", &[]);
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let e = &v["errors"][0];
    assert!(
        e["code"].is_string() && e["message"].is_string() && e.get("detail").is_some(),
        "{v}"
    );
    for (method, path) in [
        ("POST", "/v2/library/hello/blobs/uploads/"),
        ("POST", "/v2/library/hello/blobs/uploads/?digest=sha256:00"),
        ("PATCH", "/v2/library/hello/blobs/uploads/x"),
        ("PUT", "/v2/library/hello/blobs/uploads/x?digest=sha256:00"),
        ("PUT", "/v2/library/hello/manifests/3"),
        ("DELETE", "/v2/library/hello/manifests/1"),
        ("DELETE", &format!("/v2/library/hello/blobs/{}", h.layer)),
    ] {
        let (s, _, body) = get(&h.reg, method, path, &[]);
        assert_eq!((s, code(&body)), (405, "UNSUPPORTED".to_string()), "{method} {path}");
    }
    // nothing was written: the tag still names the same manifest
    let (_, head, _) = get(&h.reg, "HEAD", "/v2/library/hello/manifests/1", &[]);
    assert_eq!(header_of(&head, "docker-content-digest"), h.manifest_digest);
}
