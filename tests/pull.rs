//! Pulls from the real distribution registry (plain, htpasswd, bearer token) through depot's Engine API, with the
//! real docker CLI as the client where it matters. Images are built with umoci and pushed with skopeo.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The registry's view of an image: manifest digest, config digest and layer digests.
fn registry_image(addr: &str, repo: &str, reference: &str, arch: Option<&str>) -> (String, String, Vec<String>) {
    let raw = registry_get(addr, &format!("/v2/{repo}/manifests/{reference}"), ACCEPT_ALL);
    let mut m: Value = serde_json::from_slice(&raw).unwrap();
    let mut digest = format!("sha256:{}", sha256_hex(&raw));
    if let Some(list) = m.get("manifests").and_then(|x| x.as_array()).cloned() {
        let want = arch.unwrap_or("amd64");
        let entry = list.iter().find(|e| e["platform"]["architecture"] == want).unwrap();
        digest = entry["digest"].as_str().unwrap().to_string();
        m = serde_json::from_slice(&registry_get(
            addr,
            &format!("/v2/{repo}/manifests/{digest}"),
            ACCEPT_ALL,
        ))
        .unwrap();
    }
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (digest, m["config"]["digest"].as_str().unwrap().to_string(), layers)
}

fn sha256_hex(b: &[u8]) -> String {
    depot::digest::Digest::of(b).hex().to_string()
}

fn statuses(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["status"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Size of a layer's uncompressed tar, computed independently of depot.
fn uncompressed_size(addr: &str, repo: &str, digest: &str) -> u64 {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("curl -sf http://{addr}/v2/{repo}/blobs/{digest} | (zstdcat 2>/dev/null || gzip -dc 2>/dev/null || cat) | wc -c"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn docker_cli_pulls_oci_image_and_stream_matches_dockerd() {
    let p = peers();
    let d = Depot::start(&[]);
    let r = format!("{}/test:1", p.plain);
    let out = d.docker(&["pull", &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mdigest, config, layers) = registry_image(&p.plain, "test", "1", None);
    let short = &layers[0][7..19];
    let want = format!(
        "1: Pulling from test\n{short}: Pulling fs layer\n{short}: Verifying Checksum\n{short}: Download complete\n{short}: Pull complete\nDigest: {mdigest}\nStatus: Downloaded newer image for {r}\n{r}\n"
    );
    assert_eq!(stdout(&out), want);
    // what the store holds is exactly the registry's content
    let mut want_blobs = vec![mdigest.clone(), config.clone(), layers[0].clone()];
    want_blobs.sort();
    assert_eq!(d.blobs(), want_blobs);
    assert!(d.ingests().is_empty(), "no ingest is left after a successful pull");
    let imgs = d.images();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["Id"], config.as_str());
    assert_eq!(imgs[0]["RepoTags"], serde_json::json!([r]));
    assert_eq!(
        imgs[0]["RepoDigests"],
        serde_json::json!([format!("{}/test@{mdigest}", p.plain)])
    );
    assert_eq!(
        imgs[0]["Size"].as_u64().unwrap(),
        uncompressed_size(&p.plain, "test", &layers[0])
    );
    assert_eq!(imgs[0]["Labels"]["org.example.test"], "1");
    // second pull: nothing downloaded, Docker's "up to date" stream
    let (s, msgs) = d.pull_api(&format!("fromImage={}/test&tag=1", p.plain), Some("e30="));
    assert_eq!(s, 200);
    assert_eq!(
        statuses(&msgs),
        vec![
            "Pulling from test".to_string(),
            format!("Digest: {mdigest}"),
            format!("Status: Image is up to date for {r}")
        ]
    );
    // `docker images` renders our listing
    let out = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_eq!(stdout(&out).trim(), format!("{}/test:1 {}", p.plain, &config[7..19]));
}

#[test]
fn raw_stream_has_progress_and_exact_message_shapes() {
    let p = peers();
    let d = Depot::start(&[]);
    let (s, msgs) = d.pull_api(&format!("fromImage={}/multi&tag=1", p.plain), None);
    assert_eq!(s, 200);
    let (_, _, layers) = registry_image(&p.plain, "multi", "1", None);
    assert_eq!(msgs[0], serde_json::json!({"status": "Pulling from multi", "id": "1"}));
    // "Pulling fs layer" for every layer, in manifest order, before any download message
    let fs: Vec<&str> = msgs
        .iter()
        .filter(|m| m["status"] == "Pulling fs layer")
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = layers.iter().map(|l| &l[7..19]).collect();
    assert_eq!(fs, want);
    for l in &want {
        let mine: Vec<&Value> = msgs.iter().filter(|m| m["id"] == *l).collect();
        let last_dl = mine
            .iter()
            .rev()
            .find(|m| m["status"] == "Downloading")
            .expect("a Downloading message");
        let total = last_dl["progressDetail"]["total"].as_u64().unwrap();
        assert_eq!(
            last_dl["progressDetail"]["current"].as_u64().unwrap(),
            total,
            "final progress equals total"
        );
        assert!(last_dl["progress"]
            .as_str()
            .unwrap()
            .starts_with("[=================================================="));
        let order: Vec<&str> = mine
            .iter()
            .map(|m| m["status"].as_str().unwrap())
            .filter(|s| *s != "Downloading" && *s != "Waiting")
            .collect();
        assert_eq!(
            order,
            vec![
                "Pulling fs layer",
                "Verifying Checksum",
                "Download complete",
                "Pull complete"
            ],
            "{l}"
        );
        for m in &mine {
            if m["status"] != "Downloading" {
                assert_eq!(m["progressDetail"], serde_json::json!({}), "{m}");
            }
        }
    }
    // 4 layers to fetch (the base is shared with nothing here but counted), 3 download slots: the rest wait
    let waiting = msgs.iter().filter(|m| m["status"] == "Waiting").count();
    assert_eq!(
        waiting,
        want.len() - 3,
        "layers beyond the 3 slots are reported as Waiting"
    );
    assert!(msgs.iter().all(|m| m.get("error").is_none()));
    let img = &d.images()[0];
    assert_eq!(img["Labels"]["stage"], "multi");
    let total: u64 = layers.iter().map(|l| uncompressed_size(&p.plain, "multi", l)).sum();
    assert_eq!(
        img["Size"].as_u64().unwrap(),
        total,
        "Size is the sum of uncompressed layers"
    );
}

#[test]
fn docker_schema2_zstd_and_shared_layers() {
    let p = peers();
    let d = Depot::start(&[]);
    for tag in ["1-v2s2", "1-zstd"] {
        let out = d.docker(&["pull", &format!("{}/test:{tag}", p.plain)]);
        assert!(out.status.success(), "{tag}: {}", stderr(&out));
    }
    // The zstd variant has another layer blob but the same config (same diff_ids): one image, two tags.
    let imgs = d.images();
    assert_eq!(imgs.len(), 1, "{imgs:?}");
    let mut tags: Vec<String> = imgs[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![format!("{}/test:1-v2s2", p.plain), format!("{}/test:1-zstd", p.plain)]
    );
    // A fresh store pulls the zstd layer itself and verifies its diff_id through the zstd decoder.
    let d2 = Depot::start(&[]);
    let out = d2.docker(&["pull", &format!("{}/test:1-zstd", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, _, layers) = registry_image(&p.plain, "test", "1-zstd", None);
    assert!(d2.blobs().contains(&layers[0]));
    assert_eq!(d2.images()[0]["Size"], imgs[0]["Size"]);
}

#[test]
fn multiarch_index_and_manifest_list() {
    let p = peers();
    let d = Depot::start(&[]);
    // default platform (this machine: amd64) from an OCI index
    let out = d.docker(&["pull", &format!("{}/multiarch:1", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let idx = format!(
        "sha256:{}",
        sha256_hex(&registry_get(&p.plain, "/v2/multiarch/manifests/1", ACCEPT_ALL))
    );
    assert!(
        stdout(&out).contains(&format!("Digest: {idx}")),
        "the digest line names the index"
    );
    let (_, amd_cfg, _) = registry_image(&p.plain, "multiarch", "1", Some("amd64"));
    // --platform linux/arm64 from a Docker manifest list
    let out = d.docker(&[
        "pull",
        "--platform",
        "linux/arm64",
        &format!("{}/multiarch:1-v2s2", p.plain),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, arm_cfg, arm_layers) = registry_image(&p.plain, "multiarch", "1-v2s2", Some("arm64"));
    let imgs = d.images();
    let by_id = |id: &str| {
        imgs.iter()
            .find(|i| i["Id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {imgs:?}"))
    };
    let arm = by_id(&arm_cfg);
    assert_eq!(
        arm["RepoTags"],
        serde_json::json!([format!("{}/multiarch:1-v2s2", p.plain)])
    );
    let list_digest = format!(
        "sha256:{}",
        sha256_hex(&registry_get(&p.plain, "/v2/multiarch/manifests/1-v2s2", ACCEPT_ALL))
    );
    assert_eq!(
        arm["RepoDigests"],
        serde_json::json!([format!("{}/multiarch@{list_digest}", p.plain)]),
        "RepoDigest is the list's"
    );
    by_id(&amd_cfg);
    assert!(d.blobs().contains(&arm_layers[0]));
    // a platform the index does not have
    let (s, msgs) = d.pull_api(
        &format!("fromImage={}/multiarch&tag=1&platform=linux%2Fs390x", p.plain),
        None,
    );
    assert_eq!(s, 404, "{msgs:?}");
    assert!(
        msgs[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("no matching manifest for linux/s390x"),
        "{msgs:?}"
    );
    // a malformed platform
    let (s, _) = d.pull_api(&format!("fromImage={}/multiarch&tag=1&platform=linux", p.plain), None);
    assert_eq!(s, 400);
}

#[test]
fn pull_by_digest_sets_only_a_digest_ref() {
    let p = peers();
    let d = Depot::start(&[]);
    let (mdigest, config, _) = registry_image(&p.plain, "test", "1", None);
    let r = format!("{}/test@{mdigest}", p.plain);
    let out = d.docker(&["pull", &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    let imgs = d.images();
    assert_eq!(imgs[0]["Id"], config.as_str());
    assert_eq!(imgs[0]["RepoTags"], serde_json::json!([]));
    assert_eq!(imgs[0]["RepoDigests"], serde_json::json!([r]));
}

#[test]
fn missing_tag_and_repo_are_docker_errors_before_any_output() {
    let p = peers();
    let d = Depot::start(&[]);
    let out = d.docker(&["pull", &format!("{}/test:nope", p.plain)]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "Error response from daemon: manifest for {}/test:nope not found: manifest unknown: manifest unknown",
            p.plain
        )
    );
    let (s, m) = d.pull_api(&format!("fromImage={}/nope&tag=1", p.plain), None);
    assert_eq!(s, 404);
    let msg = m[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "pull access denied for {}/nope, repository does not exist",
            p.plain
        )) || msg.starts_with(&format!("manifest for {}/nope:1 not found", p.plain)),
        "{msg}"
    );
    let (s, m) = d.pull_api("fromImage=scratch&tag=latest", None);
    assert_eq!(
        (s, m[0]["message"].as_str().unwrap()),
        (403, "'scratch' is a reserved name")
    );
    let (s, m) = d.pull_api("fromImage=Bad%2FName&tag=1", None);
    assert_eq!(s, 400);
    assert_eq!(
        m[0]["message"],
        "invalid reference format: repository name (Name) must be lowercase"
    );
    assert!(d.images().is_empty());
    assert!(d.blobs().is_empty(), "a failed resolution stores nothing");
}

#[test]
fn basic_auth_registry() {
    let p = peers();
    let d = Depot::start(&[]);
    let q = format!("fromImage={}/test&tag=1", p.basic);
    let (s, m) = d.pull_api(&q, Some("e30="));
    // dockerd's answer: 500, not a 401 that would make the docker CLI prompt for a login
    assert_eq!(s, 500, "{m:?}");
    assert!(
        m[0]["message"].as_str().unwrap().ends_with("no basic auth credentials"),
        "{m:?}"
    );
    // the docker CLI with an open stdin (a script's pipe) fails at once instead of waiting at a prompt
    let mut docker = Command::new("docker")
        .args(["pull", &format!("{}/test:1", p.basic)])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.root.join(".docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _open_stdin = docker.stdin.take();
    let t = Instant::now();
    let status = loop {
        if let Some(st) = docker.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = docker.kill();
            panic!("docker pull waits for a login prompt");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(docker.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("no basic auth credentials"), "{err}");
    let bad = base64url(r#"{"username":"testuser","password":"wrong"}"#);
    let (s, m) = d.pull_api(&q, Some(&bad));
    assert_eq!(s, 404, "{m:?}");
    assert!(
        m[0]["message"].as_str().unwrap().starts_with("pull access denied"),
        "{m:?}"
    );
    let good = base64url(r#"{"username":"testuser","password":"testpass","serveraddress":"x"}"#);
    let (s, m) = d.pull_api(&q, Some(&good));
    assert_eq!(s, 200, "{m:?}");
    assert_eq!(d.images().len(), 1);
}

fn base64url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE.encode(s)
}

fn token_log(p: &Peers, name: &str) -> Vec<Value> {
    log_lines(&p.dir.join(name).join("requests.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bearer_token_registry_get_flow_and_token_cache() {
    let p = peers();
    let d = Depot::start(&[]);
    // anonymous: public repositories only
    let (s, m) = d.pull_api(&format!("fromImage={}/public/test&tag=1", p.token), None);
    assert_eq!(s, 200, "{m:?}");
    let (s, m) = d.pull_api(&format!("fromImage={}/test&tag=1", p.token), None);
    assert_eq!(s, 404, "{m:?}");
    assert!(
        m[0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pull access denied for {}/test", p.token)),
        "{m:?}"
    );
    // with credentials: the token is fetched with GET + Basic and reused for the manifest, config and layer
    let before = token_log(&p, "token").len();
    let creds = base64url(r#"{"username":"testuser","password":"testpass"}"#);
    let d2 = Depot::start(&[]);
    let (s, m) = d2.pull_api(&format!("fromImage={}/test&tag=1", p.token), Some(&creds));
    assert_eq!(s, 200, "{m:?}");
    let log = token_log(&p, "token");
    let mine: Vec<&Value> = log[before..]
        .iter()
        .filter(|r| r["method"] == "GET" && r["basic"] == true)
        .collect();
    assert_eq!(mine.len(), 1, "one token for the whole pull: {:?}", &log[before..]);
    assert_eq!(mine[0]["scope"], serde_json::json!(["repository:test:pull"]));
    assert_eq!(d2.images().len(), 1);
    // wrong password: the token endpoint refuses
    let d3 = Depot::start(&[]);
    let bad = base64url(r#"{"username":"testuser","password":"nope"}"#);
    let (s, m) = d3.pull_api(&format!("fromImage={}/test&tag=1", p.token), Some(&bad));
    assert_ne!(s, 200);
    assert!(m[0]["message"].as_str().unwrap().contains("401"), "{m:?}");
}

#[test]
fn bearer_token_oauth2_post_form_and_identity_token() {
    let p = peers();
    let d = Depot::start(&[]);
    let before = token_log(&p, "token2").len();
    let creds = base64url(r#"{"username":"testuser","password":"testpass"}"#);
    let (s, m) = d.pull_api(&format!("fromImage={}/test&tag=1", p.token2), Some(&creds));
    assert_eq!(s, 200, "{m:?}");
    let log = token_log(&p, "token2");
    let posts: Vec<&Value> = log[before..].iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(posts.len(), 1, "{:?}", &log[before..]);
    assert_eq!(posts[0]["grant_type"], "password");
    assert_eq!(posts[0]["client_id"], "depot");
    // an identity token (refresh token) goes straight to the POST form
    let rt = std::fs::read_to_string(p.dir.join("token2/refresh_token")).unwrap();
    let d2 = Depot::start(&[]);
    let before = token_log(&p, "token2").len();
    let (s, m) = d2.pull_api(
        &format!("fromImage={}/test&tag=1", p.token2),
        Some(&base64url(&format!(r#"{{"identitytoken":"{rt}"}}"#))),
    );
    assert_eq!(s, 200, "{m:?}");
    let log = token_log(&p, "token2");
    assert!(
        log[before..].iter().any(|r| r["grant_type"] == "refresh_token"),
        "{:?}",
        &log[before..]
    );
}

#[test]
fn rm_untags_then_deletes_and_frees_blobs() {
    let p = peers();
    let d = Depot::start(&[]);
    for r in ["test:1", "multi:1"] {
        let out = d.docker(&["pull", &format!("{}/{r}", p.plain)]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let shared_layer = registry_image(&p.plain, "test", "1", None).2[0].clone();
    let (mdigest, config, _) = registry_image(&p.plain, "test", "1", None);
    let out = d.docker(&["rmi", &format!("{}/test:1", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "Untagged: {0}/test:1\nUntagged: {0}/test@{mdigest}\nDeleted: {config}\n",
            p.plain
        ),
        "the base layer is shared with multi:1, so no layer is deleted"
    );
    let blobs = d.blobs();
    assert!(blobs.contains(&shared_layer), "a layer another image uses stays");
    assert!(!blobs.contains(&config) && !blobs.contains(&mdigest));
    // deleting multi:1 now frees everything, reporting the layer chain ids
    let out = d.docker(&["rmi", &format!("{}/multi:1", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().filter(|l| l.starts_with("Deleted: ")).count(),
        1 + 5
    );
    assert!(d.blobs().is_empty(), "{:?}", d.blobs());
    assert!(d.images().is_empty());
    // errors
    let out = d.docker(&["rmi", "nope"]);
    assert_eq!(
        stderr(&out).trim(),
        "Error response from daemon: No such image: nope:latest"
    );
    let (s, v) = d.json("DELETE", "/images/");
    assert_eq!((s, v["message"].as_str().unwrap()), (400, "image name cannot be blank"));
}

#[test]
fn rm_by_id_conflicts_when_referenced_in_several_repositories() {
    let p = peers();
    let d = Depot::start(&[]);
    for r in ["test:1", "test:latest"] {
        assert!(d.docker(&["pull", &format!("{}/{r}", p.plain)]).status.success());
    }
    let (_, config, _) = registry_image(&p.plain, "test", "1", None);
    let short = &config[7..19];
    let out = d.docker(&["rmi", short]);
    assert_eq!(
        stderr(&out).trim(),
        format!("Error response from daemon: conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
    );
    let out = d.docker(&["rmi", "-f", short]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.images().is_empty());
}

#[test]
fn concurrent_pulls_of_one_image_share_one_download() {
    let p = peers();
    let d = Depot::start(&["--max-concurrent-downloads", "1"]);
    let q = format!("fromImage={}/multi&tag=1", p.plain);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| d.pull_api(&q, None));
        let b = s.spawn(|| d.pull_api(&q, None));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((a.0, b.0), (200, 200));
    for msgs in [&a.1, &b.1] {
        let st = statuses(msgs);
        assert!(st.last().unwrap().starts_with("Status: "), "{st:?}");
        assert!(
            st.iter().any(|s| s == "Waiting"),
            "with one slot the other layers wait: {st:?}"
        );
    }
    // one download row committed, not two
    let db = rusqlite::Connection::open(d.root.join("depot.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM downloads WHERE state = 'committed'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn pull_all_tags() {
    let p = peers();
    let d = Depot::start(&[]);
    let out = d.docker(&["pull", "-a", &format!("{}/multiarch", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("1: Pulling from multiarch") && text.contains("1-v2s2: Pulling from multiarch"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {}/multiarch\n", p.plain)),
        "{text}"
    );
    let tags: usize = d.images().iter().map(|i| i["RepoTags"].as_array().unwrap().len()).sum();
    assert_eq!(tags, 2);
}

#[test]
fn different_pulls_sharing_a_layer_at_the_same_time() {
    // test:1 and test:1-v2s2 are different manifests over the same config and layer blob; pulled at once (slowed
    // down so they overlap), they must not write the same ingest concurrently.
    let p = peers();
    let proxy = common::net::Proxy::start(&p.plain, 2_000_000);
    for round in 0..3 {
        let d = Depot::start(&[]);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| d.pull_api(&format!("fromImage={}%2Ftest&tag=1", proxy.addr), None));
            // the second starts while the first is part-way through the shared layer
            let partial = || {
                d.ingests().iter().any(|i| {
                    std::fs::metadata(i.join("data"))
                        .map(|m| m.len() > 100_000)
                        .unwrap_or(false)
                })
            };
            wait_for(30, "the first pull to be part-way", partial);
            let b = s.spawn(|| d.pull_api(&format!("fromImage={}%2Ftest&tag=1-v2s2", proxy.addr), None));
            (a.join().unwrap(), b.join().unwrap())
        });
        for (s, msgs) in [&a, &b] {
            assert_eq!(*s, 200, "round {round}: {msgs:?}");
            let last = msgs.last().unwrap();
            assert!(last.get("error").is_none(), "round {round}: {last}");
        }
        assert_eq!(d.images().len(), 1);
        d.blobs();
    }
}

#[test]
fn rm_during_another_pull_keeps_that_pulls_blobs() {
    // rm collects unreferenced blobs; a pull in flight owns its manifest, config and layers before its image exists.
    let p = peers();
    let proxy = common::net::Proxy::start(&p.plain, 1_000_000);
    let d = Depot::start(&[]);
    assert!(d.docker(&["pull", &format!("{}/test:1", p.plain)]).status.success());
    std::thread::scope(|s| {
        let slow = s.spawn(|| d.pull_api(&format!("fromImage={}%2Fmulti&tag=1", proxy.addr), None));
        wait_for(30, "the slow pull to start its layers", || !d.ingests().is_empty());
        let out = d.docker(&["rmi", &format!("{}/test:1", p.plain)]);
        assert!(out.status.success(), "{}", stderr(&out));
        let (s, msgs) = slow.join().unwrap();
        assert_eq!(s, 200);
        assert!(msgs.last().unwrap().get("error").is_none(), "{:?}", msgs.last());
    });
    let (_, config, layers) = registry_image(&p.plain, "multi", "1", None);
    let blobs = d.blobs();
    assert!(
        blobs.contains(&config),
        "the config of the pull in flight survived the rm"
    );
    for l in &layers {
        assert!(blobs.contains(l), "layer {l}");
    }
}
