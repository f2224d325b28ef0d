//! The Container Station API on TCP, as the NAS's web UI and scripts use it (curl with a cookie jar): who may
//! do what, logins and their slowdown, tokens (also for the docker CLI), and downloads to start, watch, pause,
//! resume and cancel against the real registry.

mod common;

use common::net::Proxy;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A daemon with a TCP listener, and a curl cookie jar.
struct Tcp {
    d: Depot,
    addr: String,
    jar: PathBuf,
}

impl Tcp {
    fn start(extra: &[&str]) -> Tcp {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["--tcp", &addr];
        args.extend_from_slice(extra);
        let d = Depot::start(&args);
        let jar = d.root.with_extension("jar");
        Tcp { d, addr, jar }
    }

    fn password(&self) -> String {
        std::fs::read_to_string(self.d.root.join("admin-password"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// (status, body as JSON (Null if not JSON), raw body)
    fn call(&self, method: &str, path: &str, args: &[&str]) -> (u16, Value, String) {
        let jar = self.jar.to_str().unwrap();
        let mut a = vec!["-X", method, "-b", jar, "-c", jar];
        a.extend_from_slice(args);
        let (s, body) = curl(&format!("http://{}{path}", self.addr), &a);
        (s, serde_json::from_str(&body).unwrap_or(Value::Null), body)
    }

    /// POST the download of `name:tag` (`dockerhub`: any registry named in the name).
    fn download(&self, name: &str, tag: &str) -> (u16, Value, String) {
        self.call(
            "POST",
            &format!("/api/v1/image/dockerhub/docker/{name}/{tag}/download"),
            &[],
        )
    }

    /// A download that must be accepted, waited for until complete; its id.
    fn download_complete(&self, name: &str, tag: &str) -> u64 {
        let (s, v, body) = self.download(name, tag);
        assert_eq!(s, 200, "{name}:{tag}: {body}");
        let id = v["id"].as_u64().unwrap();
        wait_for(120, "the download to complete", || {
            status_of(self, id)["status"] == "complete"
        });
        id
    }

    /// The 2015 form login.
    fn login_form(&self, user: &str, password: &str) -> (u16, Value, String) {
        self.call(
            "POST",
            "/api/v1/login",
            &[
                "--data-urlencode",
                &format!("username={user}"),
                "--data-urlencode",
                &format!("password={password}"),
            ],
        )
    }

    fn login(&self) {
        let (s, v, _) = self.login_form("admin", &self.password());
        assert_eq!(s, 200, "{v}");
    }

    /// A token made with `depot token create` over the unix socket.
    fn token(&self, name: &str) -> String {
        let out = Command::new(bin())
            .arg("-H")
            .arg(&self.d.sock)
            .args(["token", "create", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    }
}

/// A path for a route pattern: every `{…}` filled with something plausible.
fn sample(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| match s {
            "{name…}" => "library/alpine",
            "{id}" => "1",
            "{official}" => "1",
            "{type}" => "docker",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn error_message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

#[test]
fn every_route_of_both_apis_needs_a_session_or_token_on_tcp() {
    let t = Tcp::start(&["--engine-tcp", "true"]);
    let mut checked = 0;
    for r in depot::api::station::routes().routes() {
        for base in depot::api::station::BASES {
            let path = format!("{base}{}", sample(r.pattern));
            let (s, v, body) = t.call(r.method.as_str(), &path, &["--data", "{}"]);
            if depot::api::station::is_public(r.route) {
                assert_ne!(s, 401, "{} {path} is public", r.method);
                continue;
            }
            assert_eq!(s, 401, "{} {path}: {body}", r.method);
            assert_eq!(v["error"]["code"], 401, "{path}: the station's error shape: {body}");
            checked += 1;
        }
    }
    for r in depot::api::engine::routes().routes() {
        for prefix in ["", "/v1.47", "/v1.24"] {
            let path = format!("{prefix}{}", sample(r.pattern));
            let (s, v, body) = t.call(r.method.as_str(), &path, &[]);
            if r.pattern == "/_ping" {
                assert_eq!(s, 200, "{path}");
                continue;
            }
            assert_eq!(s, 401, "{} {path}: {body}", r.method);
            assert!(v["message"].as_str().unwrap_or("").contains("API token"), "{body}");
            checked += 1;
        }
    }
    // a session cookie opens the station API, never the Engine API
    t.login();
    assert_eq!(t.call("GET", "/api/v1/image/", &[]).0, 200);
    assert_eq!(t.call("GET", "/v1.47/images/json", &[]).0, 401);
    // the unix socket stays trusted by its file mode
    assert_eq!(t.d.get("/api/v1/image/").0, 200);
    assert_eq!(t.d.get("/v1.47/images/json").0, 200);
    eprintln!("{checked} route and base path pairs refused without a session or token");
    assert!(checked > 60, "{checked}");
}

#[test]
fn login_by_form_and_json_sets_a_strict_cookie_refresh_and_logout_end_it() {
    let t = Tcp::start(&[]);
    let pw = t.password();
    assert_eq!(pw.len(), 20);
    let mode = std::fs::metadata(t.d.root.join("admin-password"))
        .unwrap()
        .permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    assert!(!t.d.log_text().contains(&pw), "the password is never logged");
    // the 2021 JSON body, at the 2021 base path; the cookie's attributes
    let body = serde_json::json!({"username": "admin", "password": pw}).to_string();
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
        ])
        .arg(format!("http://{}/container-station/api/v1/login", t.addr))
        .output()
        .unwrap();
    let headers = stdout(&out).to_lowercase();
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{headers}"));
    for attr in [
        "depot_session=",
        "httponly",
        "samesite=strict",
        "path=/",
        "max-age=28800",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // the 2015 form body; what login answers
    let (s, v, _) = t.login_form("admin", &pw);
    assert_eq!(s, 200);
    assert_eq!(v["username"], "admin");
    assert_eq!(v["isAdmin"], true);
    assert_eq!(v["anonymous"], false);
    assert_eq!(v["logintime"].as_str().unwrap().len(), 19, "{v}");
    let (s, v, _) = t.call("GET", "/api/v1/login_refresh", &[]);
    assert_eq!((s, v["username"].as_str()), (200, Some("admin")));
    assert_eq!(t.call("GET", "/api/v1/image/?category=local", &[]).0, 200);
    let (s, v, _) = t.call("PUT", "/api/v1/logout", &[]);
    assert_eq!((s, v["username"].as_str()), (200, Some("admin")));
    let (s, v, _) = t.call("GET", "/api/v1/image/", &[]);
    assert_eq!(s, 401, "logged out: {v}");
    // wrong password, malformed bodies: the error shape
    let (s, v, _) = t.call("POST", "/api/v1/login", &["--data", "username=admin&password=wrong"]);
    assert_eq!(s, 401);
    assert_eq!(error_message(&v), "incorrect username or password");
    for bad in [
        "username=admin",
        "{\"username\":",
        "{\"sid\":\"abc\"}",
        "username=a&password=b&x=1",
    ] {
        let (s, v, _) = t.call("POST", "/api/v1/login", &["--data", bad]);
        assert_eq!((s, v["error"]["code"].as_u64()), (400, Some(400)), "{bad}: {v}");
    }
}

#[test]
fn failed_logins_are_slowed_per_user_and_peer_and_per_peer() {
    let t = Tcp::start(&[]);
    let pw = t.password();
    let attempt = |user: &str, password: &str| {
        let (s, v, _) = t.login_form(user, password);
        (s, v)
    };
    // a brute force of 30 guesses as fast as it can: after 3 free failures, each must wait a doubling delay
    let start = Instant::now();
    let mut codes = Vec::new();
    for i in 0..30 {
        codes.push(attempt("admin", &format!("guess{i}")).0);
    }
    let checked = codes.iter().filter(|&&c| c == 401).count();
    let throttled = codes.iter().filter(|&&c| c == 429).count();
    let secs = start.elapsed().as_secs_f64();
    eprintln!("30 guesses in {secs:.1} s: {checked} passwords checked, {throttled} refused unchecked");
    // 3 free, then one check per delay of 1, 2, 4 … s: in `secs`, at most 3 + 1 + log2(secs + 1) checks
    let most = 4 + (secs + 1.0).log2().floor() as usize;
    assert!(
        checked <= most,
        "{checked} checks in {secs:.1} s (at most {most}): {codes:?}"
    );
    assert_eq!(checked + throttled, 30);
    // wait for the next checked failure: the delay then runs from now, and is at least 2 s
    let deadline = Instant::now() + Duration::from_secs(20);
    while attempt("admin", "one-more-guess").0 != 401 {
        assert!(Instant::now() < deadline, "the delay never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    // the right password inside the delay is refused too: a guesser learns nothing faster
    let (s, v) = attempt("admin", &pw);
    assert_eq!(s, 429, "{v}");
    assert!(
        error_message(&v).starts_with("too many failed logins: try again in"),
        "{v}"
    );
    // another user name from the same peer waits as well
    assert_eq!(attempt("someone", "x").0, 429);
    // the header says how long
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--data",
            "username=admin&password=x",
        ])
        .arg(format!("http://{}/api/v1/login", t.addr))
        .output()
        .unwrap();
    let retry: u64 = stdout(&out)
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("retry-after: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("Retry-After");
    assert!((1..=300).contains(&retry), "{retry}");
}

/// A login from `client` as the NAS's proxy on loopback forwards it (`X-Forwarded-For`).
fn login_via_proxy(t: &Tcp, client: &str, user: &str, password: &str) -> u16 {
    let (s, _) = curl(
        &format!("http://{}/api/v1/login", t.addr),
        &[
            "-H",
            &format!("X-Forwarded-For: 10.9.9.9, {client}"),
            "--data-urlencode",
            &format!("username={user}"),
            "--data-urlencode",
            &format!("password={password}"),
        ],
    );
    s
}

#[test]
fn a_parallel_burst_of_guesses_gets_three_checks_and_never_locks_the_owner_out() {
    let t = Tcp::start(&[]);
    let pw = t.password();
    // 40 wrong passwords at once from one client: each attempt is counted before its check
    let codes: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..40)
            .map(|i| {
                let t = &t;
                s.spawn(move || login_via_proxy(t, "203.0.113.5", "admin", &format!("guess{i}")))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = codes.iter().filter(|&&c| c == 401).count();
    let refused = codes.iter().filter(|&&c| c == 429).count();
    eprintln!("40 parallel guesses: {checked} checked, {refused} refused unchecked");
    assert_eq!((checked, refused), (3, 37), "{codes:?}");
    // the guesser is slowed; the owner, from another address behind the same proxy, is not
    assert_eq!(login_via_proxy(&t, "203.0.113.5", "admin", &pw), 429);
    assert_eq!(login_via_proxy(&t, "198.51.100.7", "admin", &pw), 200);
    // the guesser's other address of the same /64 is the same peer
    for i in 0..3 {
        assert_eq!(login_via_proxy(&t, &format!("2001:db8:1:2::{i}"), "admin", "x"), 401);
    }
    assert_eq!(login_via_proxy(&t, "2001:db8:1:2::99", "nobody", "x"), 429);
    assert_eq!(login_via_proxy(&t, "2001:db8:1:3::1", "admin", &pw), 200);
}

#[test]
fn tokens_open_the_station_api_and_the_engine_api_for_the_docker_cli() {
    let t = Tcp::start(&[]);
    let token = t.token("ci");
    assert!(token.starts_with("dpt_") && token.len() == 68, "{token}");
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(t.call("GET", "/api/v1/image/", &["-H", &bearer]).0, 200);
    // the Engine API on TCP is off unless enabled: a token holder is told so
    let (s, v, _) = t.call("GET", "/v1.47/images/json", &["-H", &bearer]);
    assert_eq!(s, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("engine_tcp"), "{v}");
    let (s, _, _) = t.call("GET", "/v1.47/images/json", &["-H", "Authorization: Bearer dpt_0000"]);
    assert_eq!(s, 401);
    // the database keeps a hash only
    let db = std::fs::read(t.d.root.join("depot.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&token[4..]),
        "the token itself is not stored"
    );
    drop(t);

    // enabled: the real docker CLI, its token in config.json's HttpHeaders
    let t = Tcp::start(&["--engine-tcp", "true"]);
    let p = peers();
    assert!(t
        .d
        .docker(&["pull", "-q", &format!("{}/test:1", p.plain)])
        .status
        .success());
    let token = t.token("docker cli");
    let cfg = t.d.root.with_extension("tcp-docker");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        serde_json::json!({"HttpHeaders": {"Authorization": format!("Bearer {token}")}}).to_string(),
    )
    .unwrap();
    let docker = |config: &Path| {
        Command::new("docker")
            .args([
                "-H",
                &format!("tcp://{}", t.addr),
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ])
            .env("DOCKER_CONFIG", config)
            .output()
            .unwrap()
    };
    let out = docker(&cfg);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{}/test:1", p.plain)),
        "{}",
        stdout(&out)
    );
    // without the header: refused, and the CLI says why
    let empty = t.d.root.with_extension("tcp-docker-none");
    std::fs::create_dir_all(&empty).unwrap();
    let out = docker(&empty);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("API token"), "{}", stderr(&out));
    // revoked: refused at once
    let out = Command::new(bin())
        .arg("-H")
        .arg(&t.d.sock)
        .args(["token", "list"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("docker cli"), "{}", stdout(&out));
    let id = stdout(&out)
        .lines()
        .find(|l| l.contains("docker cli"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let out = Command::new(bin())
        .arg("-H")
        .arg(&t.d.sock)
        .args(["token", "rm", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!docker(&cfg).status.success());
    // a session may not manage tokens unless admin; the socket may; an unknown id is a 404 in the error shape
    let (s, v, _) = t.call(
        "DELETE",
        "/api/v1/tokens/999",
        &["-H", &format!("Authorization: Bearer {}", t.token("x"))],
    );
    assert_eq!(s, 403, "a token does not manage tokens: {v}");
    t.login();
    let (s, v, _) = t.call("DELETE", "/api/v1/tokens/999", &[]);
    assert_eq!((s, v["error"]["code"].as_u64()), (404, Some(404)), "{v}");
}

fn status_of(t: &Tcp, id: u64) -> Value {
    let (s, v, body) = t.call("GET", "/api/v1/image/downloadstatus", &[]);
    assert_eq!(s, 200, "{body}");
    v.as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("download {id} not listed: {v}"))
}

#[test]
fn a_download_started_here_is_watched_listed_inspected_and_deleted() {
    let p = peers();
    let t = Tcp::start(&[]);
    t.login();
    let (s, v, body) = t.call(
        "POST",
        &format!("/api/v1/image/dockerhub/docker/{}/multi/1/download", p.plain),
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"description":"","location":"","icon":""}"#,
        ],
    );
    assert_eq!(s, 200, "{body}");
    let id = v["id"].as_u64().unwrap();
    let mut seen = Vec::new();
    wait_for(60, "the download to complete", || {
        let d = status_of(&t, id);
        seen.push(d["status"].as_str().unwrap().to_string());
        d["status"] == "complete"
    });
    let d = status_of(&t, id);
    assert_eq!(d["name"], format!("{}/multi", p.plain));
    assert_eq!(d["tag"], "1");
    assert_eq!(d["type"], "docker");
    assert_eq!(d["percent"], 100.0);
    assert!(d["bytes_total"].as_u64().unwrap() > 0);
    assert_eq!(d["bytes_done"], d["bytes_total"], "{d}");
    // the local list groups tags of a repository in parallel arrays
    assert!(t
        .d
        .docker(&["tag", &format!("{}/multi:1", p.plain), &format!("{}/multi:2", p.plain)])
        .status
        .success());
    let (s, v, _) = t.call(
        "GET",
        "/api/v1/image/?category=local&type=docker&filter_text=multi",
        &[],
    );
    assert_eq!(s, 200);
    assert_eq!(v["category"], "local");
    assert_eq!(v["filter_text"], "multi");
    assert_eq!(v["total_count"], 1, "{v}");
    let item = &v["results"][0];
    assert_eq!(item["name"], format!("{}/multi", p.plain));
    assert_eq!(item["tags"], serde_json::json!(["1", "2"]));
    assert_eq!(item["size"].as_array().unwrap().len(), 2);
    assert_eq!(item["installed"], true);
    assert_eq!(item["downloading"], false);
    assert_eq!(item["repository"], "local");
    // inspect: Docker's inspect document
    let (s, v, _) = t.call("GET", &format!("/api/v1/image/docker/{}/multi/1/inspect", p.plain), &[]);
    assert_eq!(s, 200);
    assert!(v["Id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v["RepoTags"].as_array().unwrap().len(), 2);
    // remote inspect: manifest and config from the registry, nothing pulled
    let before = t.d.images().len();
    let (s, v, body) = t.call(
        "GET",
        &format!("/api/v1/image/docker/{}/multiarch/1/remote_inspect", p.plain),
        &[],
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(v["platform"], "linux/amd64");
    assert_eq!(v["config"]["architecture"], "amd64");
    assert!(v["manifest"]["layers"].is_array());
    assert!(v["size"].as_u64().unwrap() > 0);
    assert_eq!(t.d.images().len(), before, "remote_inspect pulls nothing");
    // tags of a repository, the local ones marked
    let (s, v, body) = t.call(
        "GET",
        &format!("/api/v1/image/dockerhub/docker/0/{}/multi/tags", p.plain),
        &[],
    );
    assert_eq!(s, 200, "{body}");
    assert!(v["tags"].as_array().unwrap().iter().any(|x| x == "1"), "{v}");
    assert_eq!(v["installed"], serde_json::json!(["1"]));
    // delete one tag, then the repository; then a 404 in the spec's shape
    let del = |path: &str| t.call("DELETE", &format!("/api/v1/image/local/docker/{}/{path}", p.plain), &[]);
    assert_eq!(del("multi/2").0, 200);
    let (_, v, _) = t.call("GET", "/api/v1/image/?filter_text=multi", &[]);
    assert_eq!(v["results"][0]["tags"], serde_json::json!(["1"]));
    assert_eq!(del("multi").0, 200);
    let (s, v, _) = del("multi");
    assert_eq!(s, 404);
    assert_eq!(
        v,
        serde_json::json!({"error": {"code": 404, "message": format!("Image not found: {}/multi", p.plain)}})
    );
    // bad input: the error shape, nothing started
    for (path, code) in [
        ("/api/v1/image/dockerhub/docker/UPPER/1/download", 400),
        ("/api/v1/image/elsewhere/docker/x/1/download", 400),
        ("/api/v1/image/dockerhub/vm/x/1/download", 400),
    ] {
        let (s, v, _) = t.call("POST", path, &[]);
        assert_eq!(
            (s, v["error"]["code"].as_u64()),
            (code, Some(code as u64)),
            "{path}: {v}"
        );
    }
    let (s, _, _) = t.call(
        "POST",
        &format!("/api/v1/image/dockerhub/docker/{}/multi/1/download", p.plain),
        &["--data", "{not json"],
    );
    assert_eq!(s, 400);
    let (s, v, _) = t.call("GET", "/api/v1/image/?category=nonsense", &[]);
    assert_eq!((s, v["error"]["code"].as_u64()), (400, Some(400)));
}

/// The big image through a throttled link, so that it is still running when the test acts.
fn big_download(t: &Tcp, slow: &Proxy) -> u64 {
    let (s, v, body) = t.download(&format!("{}/big", slow.addr), "1");
    assert_eq!(s, 200, "{body}");
    v["id"].as_u64().unwrap()
}

#[test]
fn downloads_pause_resume_cancel_and_survive_a_crash() {
    let p = peers();
    let slow = Proxy::start(&p.plain, 40 * 1000 * 1000);
    let mut t = Tcp::start(&[]);
    t.login();
    let id = big_download(&t, &slow);
    wait_for(60, "bytes to flow", || {
        status_of(&t, id)["bytes_done"].as_u64().unwrap() > 20 << 20
    });
    wait_for(10, "a rate", || status_of(&t, id)["rate"].as_u64().unwrap() > 0);
    let d = status_of(&t, id);
    assert_eq!(d["status"], "downloading");
    let pct = d["percent"].as_f64().expect("the total is known from the start");
    assert!(pct > 0.0 && pct < 100.0, "{d}");
    // pause: the bytes stop, the status says so
    let (s, v, _) = t.call("PUT", &format!("/api/v1/image/downloads/{id}/pause"), &[]);
    assert_eq!(s, 200, "{v}");
    wait_for(20, "the pause to take", || status_of(&t, id)["status"] == "paused");
    let served = slow.served();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(slow.served() - served < 1 << 20, "a paused download does not fetch");
    // a crash and a restart: still paused, not resumed
    t.d.restart();
    t.login();
    std::thread::sleep(Duration::from_millis(1000));
    let d = status_of(&t, id);
    assert_eq!(d["status"], "paused", "{d}");
    let kept = d["bytes_done"].as_u64().unwrap();
    assert!(kept > 20 << 20, "{d}");
    // resume: it continues from its bytes and completes
    let (s, v, _) = t.call("PUT", &format!("/api/v1/image/downloads/{id}/resume"), &[]);
    assert_eq!(s, 200, "{v}");
    // a kill in the middle of the resumed download: after the restart it shows resuming, then completes
    wait_for(60, "the resumed download to move", || {
        status_of(&t, id)["bytes_done"].as_u64().unwrap() > kept + (20 << 20)
    });
    t.d.kill9();
    t.d.restart();
    t.login();
    let d = status_of(&t, id);
    assert!(matches!(d["status"].as_str(), Some("downloading" | "waiting")), "{d}");
    wait_for(120, "the download to complete", || {
        status_of(&t, id)["status"] == "complete"
    });
    let size: u64 = status_of(&t, id)["bytes_total"].as_u64().unwrap();
    assert!(
        slow.served() < size + size / 10,
        "resumes fetched {} for {size}",
        slow.served()
    );
    // cancel another: failed, with why
    assert_eq!(
        t.d.docker(&["rmi", &format!("{}/big:1", slow.addr)]).status.code(),
        Some(0)
    );
    let id2 = big_download(&t, &slow);
    wait_for(60, "bytes to flow", || {
        status_of(&t, id2)["bytes_done"].as_u64().unwrap() > 0
    });
    let (s, _, _) = t.call("DELETE", &format!("/api/v1/image/downloads/{id2}"), &[]);
    assert_eq!(s, 200);
    wait_for(20, "the cancel to take", || status_of(&t, id2)["status"] == "failed");
    assert!(status_of(&t, id2)["message"].as_str().unwrap().contains("cancelled"));
    // steering what is not running: 404 in the error shape
    for (m, path) in [
        ("PUT", format!("/api/v1/image/downloads/{id2}/pause")),
        ("PUT", format!("/api/v1/image/downloads/{id2}/resume")),
        ("DELETE", format!("/api/v1/image/downloads/{id}")),
        ("PUT", "/api/v1/image/downloads/99999/pause".to_string()),
    ] {
        let (s, v, _) = t.call(m, &path, &[]);
        assert_eq!((s, v["error"]["code"].as_u64()), (404, Some(404)), "{m} {path}: {v}");
    }
}

#[test]
fn a_download_that_cannot_fit_is_refused_and_one_that_fills_the_volume_fails_cleanly() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test mounts a tmpfs: run it as root (tests/run does)");
    }
    let p = peers();
    let base = tempdir("small-volume");
    let vol = base.join("vol");
    std::fs::create_dir(&vol).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=700m", "tmpfs"])
        .arg(&vol)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(vol.clone());
    let addr = format!("127.0.0.1:{}", free_port());
    let d = Depot::start_paths(
        vol.join("depot"),
        base.join("d.sock"),
        base.join("d.log"),
        &["--tcp", &addr],
    );
    let t = Tcp {
        d,
        addr,
        jar: base.join("jar"),
    };
    t.login();
    let free = || {
        let st = nix::sys::statvfs::statvfs(&vol).unwrap();
        st.blocks_available() as u64 * st.fragment_size() as u64
    };
    // 1. known not to fit: refused before it starts, with the sizes; nothing written
    let full = filler(&vol, 100 << 20);
    let before = free();
    let (s, v, body) = t.download(&format!("{}/big", p.plain), "1");
    assert_eq!(s, 507, "{body}");
    let msg = error_message(&v);
    assert!(
        msg.starts_with(&format!(
            "not enough space for {}/big:1: it needs 524.4MB more, the volume has",
            p.plain
        )),
        "{msg}"
    );
    assert!(msg.ends_with("MB free"), "{msg}");
    let d = t.call("GET", "/api/v1/image/downloadstatus", &[]).1;
    assert_eq!(
        (d[0]["status"].as_str(), d[0]["message"].as_str()),
        (Some("failed"), Some(msg))
    );
    assert!(before - free() < 4 << 20, "nothing of it was written");
    std::fs::remove_file(&full).unwrap();
    // 2. fits when it starts, then the volume fills under it: failed with the message, space given back
    let slow = Proxy::start(&p.plain, 100 * 1000 * 1000);
    let (s, v, body) = t.download(&format!("{}/big", slow.addr), "1");
    assert_eq!(s, 200, "{body}");
    let id = v["id"].as_u64().unwrap();
    wait_for(60, "bytes on the volume", || {
        status_of(&t, id)["bytes_done"].as_u64().unwrap() > 30 << 20
    });
    let full = filler(&vol, 0);
    wait_for(60, "the download to fail", || status_of(&t, id)["status"] == "failed");
    let d = status_of(&t, id);
    assert!(
        d["message"].as_str().unwrap().contains("No space left on device"),
        "{d}"
    );
    std::fs::remove_file(&full).unwrap();
    assert!(
        free() > 650_000_000,
        "the partial layers were given back: {} free",
        free()
    );
    // 3. other downloads go on
    t.download_complete(&format!("{}/test", p.plain), "1");
    drop(t);
}

fn put_settings(t: &Tcp, body: &str) -> (u16, Value, String) {
    t.call(
        "PUT",
        "/api/v1/image/downloads/settings",
        &["-H", "Content-Type: application/json", "--data", body],
    )
}

#[test]
fn the_bandwidth_limit_and_the_download_window_hold() {
    let p = peers();
    let mut t = Tcp::start(&["--bandwidth-limit", "80M"]);
    t.login();
    let (s, v, _) = t.call("GET", "/api/v1/image/downloads/settings", &[]);
    assert_eq!(s, 200);
    assert_eq!(v["bandwidth_limit"], 80_000_000);
    assert_eq!(v["window"], Value::Null);
    assert_eq!(v["window_open"], true);
    // changed through the API: at once, and kept across a restart
    let (s, v, _) = put_settings(&t, r#"{"bandwidth_limit":"50M"}"#);
    assert_eq!((s, v["bandwidth_limit"].as_u64()), (200, Some(50_000_000)), "{v}");
    for bad in [
        r#"{"bandwidth_limit":"fast"}"#,
        r#"{"window":"25:00-01:00"}"#,
        r#"{"speed":1}"#,
        "[]",
    ] {
        let (s, v, _) = put_settings(&t, bad);
        assert_eq!((s, v["error"]["code"].as_u64()), (400, Some(400)), "{bad}: {v}");
    }
    t.d.restart();
    t.login();
    assert_eq!(
        t.call("GET", "/api/v1/image/downloads/settings", &[]).1["bandwidth_limit"],
        50_000_000
    );
    // 200 MB of the big image: the rate over them is the limit, within 10 %
    let (s, v, body) = t.download(&format!("{}/big", p.plain), "1");
    assert_eq!(s, 200, "{body}");
    let id = v["id"].as_u64().unwrap();
    let done = |t: &Tcp| status_of(t, id)["bytes_done"].as_u64().unwrap();
    wait_for(30, "the first 10 MB", || done(&t) >= 10_000_000);
    let (b0, t0) = (done(&t), Instant::now());
    wait_for(60, "200 MB more", || done(&t) >= b0 + 200_000_000);
    let (b1, secs) = (done(&t), t0.elapsed().as_secs_f64());
    let rate = (b1 - b0) as f64 / secs;
    eprintln!(
        "{} bytes in {secs:.2} s: {:.1} MB/s under a limit of 50 MB/s",
        b1 - b0,
        rate / 1e6
    );
    assert!((45e6..=55e6).contains(&rate), "{rate}");
    // a window that is closed now: the running download waits, and says why
    let local = t.call("GET", "/api/v1/image/downloads/settings", &[]).1["local_time"]
        .as_str()
        .unwrap()
        .to_string();
    let (h, m) = local.split_once(':').unwrap();
    let now = h.parse::<u32>().unwrap() * 60 + m.parse::<u32>().unwrap();
    let at = |min: u32| format!("{:02}:{:02}", (min % 1440) / 60, min % 60);
    let closed = format!("{}-{}", at(now + 120), at(now + 180));
    let (s, v, _) = put_settings(&t, &format!(r#"{{"window":"{closed}","bandwidth_limit":0}}"#));
    assert_eq!((s, v["window_open"].as_bool()), (200, Some(false)), "{v}");
    wait_for(10, "the download to wait", || status_of(&t, id)["status"] == "waiting");
    let d = status_of(&t, id);
    assert_eq!(d["message"], format!("outside the download window {closed}"));
    let held = done(&t);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(done(&t) - held < 2 << 20, "no bytes move outside the window");
    // open again (null clears it): it completes
    let (s, _, _) = put_settings(&t, r#"{"window":null}"#);
    assert_eq!(s, 200);
    wait_for(120, "the download to complete", || {
        status_of(&t, id)["status"] == "complete"
    });
}

/// Context switches of all of a process's threads: how often it woke.
fn wakeups(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn the_download_stream_pushes_every_change_and_sleeps_while_nothing_runs() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let p = peers();
    let t = Tcp::start(&[]);
    t.login();
    let jar = t.jar.to_str().unwrap();
    let mut curl = Command::new("curl")
        .args(["-s", "-N", "-b", jar])
        .arg(format!("http://{}/api/v1/image/downloads/events", t.addr))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (lines, out) = (lines.clone(), curl.stdout.take().unwrap());
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let text = || lines.lock().unwrap().join("\n");
    wait_for(10, "the first list on the stream", || text().contains("data: []"));
    // Idle with the page open: the daemon sleeps. Reading the list every 500 ms, as the stream did, woke it
    // about 170 times in these 5 s (each read hops to a blocking thread and back); sleeping, 0 here.
    std::thread::sleep(Duration::from_millis(500));
    let w0 = wakeups(t.d.pid());
    std::thread::sleep(Duration::from_secs(5));
    let idle = wakeups(t.d.pid()) - w0;
    eprintln!("idle with an open stream: {idle} wake-ups in 5 s");
    assert!(idle < 40, "an idle daemon with an open stream woke {idle} times in 5 s");
    // A change is pushed, and so is every step to the end.
    let (s, v, body) = t.download(&format!("{}/multi", p.plain), "1");
    assert_eq!(s, 200, "{body}");
    let id = v["id"].as_u64().unwrap();
    let has = |status: &str| {
        lines.lock().unwrap().iter().any(|l| {
            l.strip_prefix("data: ")
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
                .is_some_and(|v| {
                    v.as_array()
                        .is_some_and(|a| a.iter().any(|d| d["id"] == id && d["status"] == status))
                })
        })
    };
    wait_for(60, "the download on the stream", || {
        has("downloading") || has("waiting") || has("complete")
    });
    wait_for(120, "its end on the stream", || has("complete"));
    wait_for(10, "the space event", || text().contains("event: space"));
    let _ = curl.kill();
    let _ = curl.wait();
    reader.join().unwrap();
}

#[test]
fn the_event_log_tells_downloads_their_failures_and_deletes() {
    let p = peers();
    let t = Tcp::start(&[]);
    t.login();
    t.download_complete(&format!("{}/test", p.plain), "1");
    // a tag the registry does not have: refused at once, and logged as an error
    let (s, v, _) = t.download(&format!("{}/test", p.plain), "no-such-tag");
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        t.call("DELETE", &format!("/api/v1/image/local/docker/{}/test/1", p.plain), &[])
            .0,
        200
    );
    let (s, v, _) = t.call("GET", "/api/v1/event", &[]);
    assert_eq!(s, 200);
    let lines: Vec<(String, Value)> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let m = m.as_str().unwrap();
            let mut parts = m.splitn(4, ':');
            let (cat, user, ts) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            assert_eq!((cat, user), ("image", "system"), "{m}");
            assert!(ts.parse::<u64>().unwrap() > 1_700_000_000);
            (m.to_string(), serde_json::from_str(parts.next().unwrap()).unwrap())
        })
        .collect();
    let find = |action: &str, state: &str| {
        lines
            .iter()
            .find(|(_, j)| j["action"] == action && j["state"] == state)
            .unwrap_or_else(|| panic!("no {action} {state} in {lines:?}"))
            .1
            .clone()
    };
    let ok = find("download", "success");
    assert_eq!(
        (ok["name"].as_str(), ok["tag"].as_str()),
        (Some(format!("{}/test", p.plain).as_str()), Some("1"))
    );
    let err = find("download", "error");
    assert_eq!(err["tag"], "no-such-tag");
    assert!(err["message"].as_str().unwrap().contains("no-such-tag"), "{err}");
    let del = find("delete", "success");
    assert_eq!(del["name"], format!("{}/test", p.plain));
    // paging: index and offset say where the answer starts and where to go on from
    let (first, next) = (v["index"].as_u64().unwrap(), v["offset"].as_u64().unwrap());
    assert_eq!(next - first, lines.len() as u64);
    let (_, v, _) = t.call("GET", &format!("/api/v1/event?index={next}"), &[]);
    assert_eq!(
        (v["messages"].as_array().unwrap().len(), v["offset"].as_u64()),
        (0, Some(next))
    );
    let (_, v, _) = t.call("GET", &format!("/api/v1/event?index={first}&offset={}", first + 1), &[]);
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    let (s, _, _) = t.call("GET", "/api/v1/event?index=x", &[]);
    assert_eq!(s, 400);
    // dockerd has no pull-failure event: the Engine API's /events leaves it out
    let out = t.d.docker(&["events", "--since", "0", "--until", "1"]);
    assert!(!stdout(&out).contains("pull_failed"), "{}", stdout(&out));
}

#[test]
fn private_registries_keep_sealed_credentials_that_downloads_use() {
    let p = peers();
    let t = Tcp::start(&[]);
    t.login();
    let post = |path: &str, body: Value| {
        t.call(
            "POST",
            path,
            &["-H", "Content-Type: application/json", "--data", &body.to_string()],
        )
    };
    let patch = |path: &str, body: Value| {
        t.call(
            "PATCH",
            path,
            &["-H", "Content-Type: application/json", "--data", &body.to_string()],
        )
    };
    // verified against the registry on save: a wrong password is refused and nothing is kept
    let (s, v, _) = post(
        "/api/v1/registry/",
        serde_json::json!({"name": "home", "url": format!("http://{}", p.basic), "username": "testuser", "password": "wrong"}),
    );
    assert_eq!(s, 401, "{v}");
    assert_eq!(t.call("GET", "/api/v1/registry/", &[]).1["meta"]["total_count"], 0);
    let (s, v, _) = post(
        "/api/v1/registry/",
        serde_json::json!({"name": "home", "url": format!("http://{}", p.basic)}),
    );
    assert_eq!(s, 401, "without credentials the registry refuses: {v}");
    let (s, reg, body) = post(
        "/api/v1/registry/",
        serde_json::json!({"name": "home", "url": format!("http://{}", p.basic), "username": "testuser", "password": "testpass"}),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(reg["host"], p.basic);
    assert_eq!(reg["has_password"], true);
    assert_eq!(reg["insecure"], true, "http:// is insecure by definition");
    assert!(!body.contains("testpass"), "the password is write-only: {body}");
    let uri = reg["resource_uri"].as_str().unwrap().to_string();
    assert_eq!(t.call("GET", &uri, &[]).1["name"], "home");
    // sealed at rest: not in the database in clear
    let db = std::fs::read(t.d.root.join("depot.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("testpass"));
    // a second record of the same name is a conflict
    let (s, v, _) = post(
        "/api/v1/registry/",
        serde_json::json!({"name": "home", "url": format!("http://{}", p.plain)}),
    );
    assert_eq!((s, v["error"]["code"].as_u64()), (409, Some(409)), "{v}");
    // a private image record in it; a download by registry_name uses the stored credentials
    let (s, img, body) = post(
        "/api/v1/image/",
        serde_json::json!({"name": "test", "description": "ours", "registry": uri, "is_private_image": true}),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(img["state"], "Empty");
    let img_uri = img["resource_uri"].as_str().unwrap().to_string();
    let (s, v, body) = t.call(
        "POST",
        "/api/v1/image/private/docker/test/1/download",
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"registry_name":"home"}"#,
        ],
    );
    assert_eq!(s, 200, "{body}");
    let id = v["id"].as_u64().unwrap();
    wait_for(60, "the private download", || status_of(&t, id)["status"] == "complete");
    let (_, v, _) = t.call("GET", &img_uri, &[]);
    assert_eq!(v["state"], "Success");
    assert_eq!(
        v["tags"],
        serde_json::json!([format!("/api/v1/image/docker/{}/test/1/inspect", p.basic)])
    );
    assert_eq!(
        t.call("GET", v["tags"][0].as_str().unwrap(), &[]).0,
        200,
        "tags are live resources"
    );
    // list filters
    let n = |q: &str| {
        t.call("GET", &format!("/api/v1/image/?{q}"), &[]).1["meta"]["total_count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(n("name=tes"), 1);
    assert_eq!(n("name=nope"), 0);
    assert_eq!(n("is_private_image=false"), 0);
    assert_eq!(n("registry=home"), 1);
    // update and delete
    let (s, v, _) = patch(&img_uri, serde_json::json!({"description": "changed"}));
    assert_eq!((s, v["description"].as_str()), (200, Some("changed")));
    let (s, v, _) = t.call("DELETE", &uri, &[]);
    assert_eq!(
        (s, v["error"]["code"].as_u64()),
        (409, Some(409)),
        "a registry a record names stays: {v}"
    );
    assert_eq!(t.call("DELETE", &img_uri, &[]).0, 200);
    assert_eq!(t.call("GET", &img_uri, &[]).0, 404);
    // a password changed to a wrong one is refused; the record keeps the good one
    let (s, _, _) = patch(&uri, serde_json::json!({"password": "wrong"}));
    assert_eq!(s, 401);
    assert_eq!(
        t.d.docker(&["rmi", &format!("{}/test:1", p.basic)]).status.code(),
        Some(0)
    );
    // a pull from the host uses the stored credentials
    t.download_complete(&format!("{}/test", p.basic), "1");
    assert_eq!(t.call("DELETE", &uri, &[]).0, 200);
    assert_eq!(t.call("GET", &uri, &[]).0, 404);
    // malformed bodies: the error shape
    for bad in [
        r#"{"name":"x","url":"ftp://a"}"#,
        r#"{"nme":"x"}"#,
        "[]",
        r#"{"name":"a/b","url":"127.0.0.1:1"}"#,
    ] {
        let (s, v, _) = t.call(
            "POST",
            "/api/v1/registry/",
            &["-H", "Content-Type: application/json", "--data", bad],
        );
        assert_eq!((s, v["error"]["code"].as_u64()), (400, Some(400)), "{bad}: {v}");
    }
}

#[test]
fn background_tasks_download_export_push_and_remove_with_progress() {
    let p = peers();
    let t = Tcp::start(&[]);
    t.login();
    let base = "/container-station/api/v1/background";
    let post = |category: &str, body: Value| {
        t.call(
            "POST",
            &format!("{base}/{category}"),
            &["-H", "Content-Type: application/json", "--data", &body.to_string()],
        )
    };
    let task = |id: u64| t.call("GET", &format!("{base}/{id}"), &[]).1;
    let until_ended = |id: u64| {
        let mut progress = Vec::new();
        wait_for(120, "the task to end", || {
            let v = task(id);
            progress.push(v["progress"].as_i64().unwrap());
            matches!(v["state"].as_str(), Some("completed" | "failed"))
        });
        (task(id), progress)
    };
    let (s, v, body) = post(
        "image_download",
        serde_json::json!({"type": "docker", "repository": "dockerhub", "image": format!("{}/big", p.plain), "tag": "1"}),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(v["category"], "image_download");
    assert_eq!(v["state"], "running");
    assert_eq!(v["user"], "admin");
    let (done, progress) = until_ended(v["id"].as_u64().unwrap());
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["progress"], 100);
    assert!(
        progress.iter().any(|&x| (0..100).contains(&x)),
        "progress was seen on the way: {progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1] || w[0] == -1), "{progress:?}");
    // export into the exports directory: a docker-save archive, written whole
    let out = t.d.root.join("exports/big.tar");
    let (s, v, body) = post(
        "image_export",
        serde_json::json!({"image": format!("{}/big", p.plain), "tag": "1", "path": out}),
    );
    assert_eq!(s, 201, "{body}");
    let (done, _) = until_ended(v["id"].as_u64().unwrap());
    assert_eq!(done["state"], "completed", "{done}");
    let list = Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    assert!(stdout(&list).lines().any(|l| l == "manifest.json"), "{}", stdout(&list));
    assert!(!out.with_extension("tar.tmp").exists());
    // not outside it, not even through a symlink planted inside it
    std::os::unix::fs::symlink("/etc", t.d.root.join("exports/etc")).unwrap();
    std::os::unix::fs::symlink("/etc/evil.tar", t.d.root.join("exports/link.tar")).unwrap();
    let through = t.d.root.join("exports/etc/evil.tar");
    let onto = t.d.root.join("exports/link.tar");
    for path in [
        "/etc/evil.tar",
        "/tmp/../etc/x.tar",
        through.to_str().unwrap(),
        onto.to_str().unwrap(),
    ] {
        let (s, v, _) = post(
            "image_export",
            serde_json::json!({"image": "x", "tag": "1", "path": path}),
        );
        assert_eq!((s, v["error"]["code"].as_u64()), (403, Some(403)), "{path}: {v}");
    }
    // push under a new name, then remove that tag
    let pushed = format!("{}/task-push/big", p.plain);
    assert!(t
        .d
        .docker(&["tag", &format!("{}/big:1", p.plain), &format!("{pushed}:1")])
        .status
        .success());
    let (s, v, body) = post("image_push", serde_json::json!({"image": pushed, "tag": "1"}));
    assert_eq!(s, 201, "{body}");
    let (done, _) = until_ended(v["id"].as_u64().unwrap());
    assert_eq!(done["state"], "completed", "{done}");
    assert!(!registry_get(
        &p.plain,
        "/v2/task-push/big/manifests/1",
        "application/vnd.oci.image.manifest.v1+json"
    )
    .is_empty());
    let (s, v, _) = post(
        "image_remove",
        serde_json::json!({"type": "docker", "image": pushed, "tag": "1"}),
    );
    assert_eq!(s, 201);
    let (done, _) = until_ended(v["id"].as_u64().unwrap());
    assert_eq!(done["state"], "completed");
    assert!(!t
        .d
        .docker(&["image", "inspect", &format!("{pushed}:1")])
        .status
        .success());
    // a failure is a failed task with why
    let (_, v, _) = post("image_remove", serde_json::json!({"image": "never/there", "tag": "1"}));
    let (done, _) = until_ended(v["id"].as_u64().unwrap());
    assert_eq!(done["state"], "failed");
    assert!(done["message"].as_str().unwrap().contains("never/there"), "{done}");
    // the list, newest first; ended tasks can be forgotten
    let (s, all, _) = t.call("GET", base, &[]);
    assert_eq!(s, 200);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["id"], v["id"]);
    assert_eq!(t.call("DELETE", &format!("{base}/{}", v["id"]), &[]).0, 200);
    assert_eq!(t.call("GET", &format!("{base}/{}", v["id"]), &[]).0, 404);
    // what depot does not do, and bad input
    let (s, v, _) = post("container_import", serde_json::json!({"image": "x"}));
    assert_eq!((s, v["error"]["code"].as_u64()), (501, Some(501)), "{v}");
    for (category, body) in [
        ("nonsense", "{}"),
        ("image_download", "{}"),
        ("image_download", "{\"image\":1}"),
        ("image_download", "not json"),
    ] {
        let (s, v, _) = t.call("POST", &format!("{base}/{category}"), &["--data", body]);
        assert_eq!(
            (s, v["error"]["code"].as_u64()),
            (400, Some(400)),
            "{category} {body}: {v}"
        );
    }
}

/// `python3 -m http.server` on a loopback port, serving `dir`; stopped by its PID on drop.
struct FileServer {
    child: std::process::Child,
    addr: String,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        wait_for(10, "the file server", || std::net::TcpStream::connect(&addr).is_ok());
        FileServer { child, addr }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn catalogs_come_from_the_board_url_then_the_cache_then_the_shipped_copy() {
    let p = peers();
    // no catalog_url: the shipped copy, this NAS's architecture only
    let t = Tcp::start(&[]);
    t.login();
    let (s, v, body) = t.call("GET", "/api/v1/image/?category=official&type=docker", &[]);
    assert_eq!(s, 200, "{body}");
    assert_eq!(v["source"], "shipped");
    let items = v["results"].as_array().unwrap();
    assert!(
        items.iter().all(|i| i["arch"] == "amd64" && i["is_official"] == true),
        "{v}"
    );
    assert!(items
        .iter()
        .any(|i| i["name"] == "alpine:3.20" && i["location"] == "https://hub.docker.com/_/alpine"));
    let (_, v, _) = t.call("GET", "/api/v1/image/?category=official&filter_text=ALPINE", &[]);
    assert_eq!(v["total_count"], 1, "{v}");
    drop(t);

    // a catalog served over loopback, in the vendor's format
    let dir = tempdir("catalog");
    let list = serde_json::json!([
        {"type": "docker", "name": format!("{}/test", p.plain), "version": "1", "displayName": "Test", "arch": "amd64",
         "repository": "dockerhub", "description": "the test image", "icon": "", "inspect": "", "location": ""},
        {"type": "docker", "name": "nginx", "version": "1.27", "displayName": "NGINX", "arch": "arm64",
         "repository": "dockerhub", "description": "", "icon": "", "inspect": "", "location": ""},
        {"type": "lxc", "name": "debian-bookworm", "version": "12", "displayName": "Debian", "arch": "amd64",
         "repository": "qnap", "description": "Debian 12", "icon": "", "inspect": {}, "location": "http://127.0.0.1:1/debian.tar.gz"},
        {"type": "something-new", "name": "x"}
    ]);
    std::fs::write(dir.join("list.json"), list.to_string()).unwrap();
    let server = FileServer::start(&dir);
    let cfg = dir.join("depot.conf");
    std::fs::write(&cfg, format!("catalog_url = http://{}/list.json\n", server.addr)).unwrap();
    let mut t = Tcp::start(&["--config", cfg.to_str().unwrap()]);
    t.login();
    assert!(t
        .d
        .docker(&["pull", "-q", &format!("{}/test:1", p.plain)])
        .status
        .success());
    let qnap = |t: &Tcp| t.call("GET", "/api/v1/image/?category=qnap", &[]).1;
    wait_for(20, "the catalog to be fetched", || qnap(&t)["source"] == "fetched");
    let v = qnap(&t);
    let items = v["results"].as_array().unwrap();
    assert_eq!(items.len(), 2, "this NAS's arch only, unknown kinds left out: {v}");
    let test = items.iter().find(|i| i["type"] == "docker").unwrap();
    assert_eq!(test["installed"], true, "{test}");
    assert_eq!(
        (test["repository"].as_str(), test["size"].is_null()),
        (Some("dockerhub"), true)
    );
    let lxc = items.iter().find(|i| i["type"] == "lxc").unwrap();
    assert_eq!(
        (lxc["repository"].as_str(), lxc["inspect"].as_str()),
        (Some("qnap"), Some("{}"))
    );
    assert_eq!(
        t.call("GET", "/api/v1/image/?category=qnap&type=lxc", &[]).1["total_count"],
        1
    );
    // the server goes away: a restart serves the cached copy
    drop(server);
    t.d.restart();
    t.login();
    let v = qnap(&t);
    assert_eq!(
        (v["source"].as_str(), v["total_count"].as_u64()),
        (Some("cached"), Some(2)),
        "{v}"
    );
}

#[test]
fn a_token_auth_registry_and_the_dockerhub_category_through_a_registry_catalog() {
    let p = peers();
    let t = Tcp::start(&[]);
    t.login();
    // the token registry: a private image needs the record's credentials (the token service checks them)
    let (s, v, _) = t.download(&format!("{}/test", p.token), "1");
    assert_eq!(s, 404, "anonymous: refused at once: {v}");
    let (s, reg, body) = t.call(
        "POST",
        "/api/v1/registry/",
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            &serde_json::json!({"name": "tokened", "url": format!("http://{}", p.token), "username": "testuser", "password": "testpass"})
                .to_string(),
        ],
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(reg["host"], p.token);
    t.download_complete(&format!("{}/test", p.token), "1");
    let (s, v, body) = t.call(
        "GET",
        &format!("/api/v1/image/dockerhub/docker/0/{}/test/tags", p.token),
        &[],
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(v["installed"], serde_json::json!(["1"]));
    // category dockerhub: a term naming a registry searches its catalog
    let (s, v, body) = t.call(
        "GET",
        &format!("/api/v1/image/?category=dockerhub&filter_text={}/mul", p.plain),
        &[],
    );
    assert_eq!(s, 200, "{body}");
    let names: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&format!("{}/multi", p.plain).as_str()), "{names:?}");
    let hit = &v["results"][0];
    assert_eq!(
        (hit["repository"].as_str(), hit["type"].as_str()),
        (Some("dockerhub"), Some("docker"))
    );
    assert!(hit["installed"].is_boolean() && hit["star_count"].is_number(), "{hit}");
    let (s, v, _) = t.call("GET", "/api/v1/image/?category=dockerhub", &[]);
    assert_eq!(
        (s, v["error"]["code"].as_u64()),
        (400, Some(400)),
        "a search needs a term"
    );
}

/// `depot.db` lost: the users (the same password logs in, no new one is written), the tokens (a revoked one
/// stays revoked, ids are never given again), the private registries with their credentials and the settings
/// set over the API come back from `records.json`, which holds no secret in the clear.
#[test]
fn a_lost_database_keeps_users_tokens_registries_and_settings() {
    let mut t = Tcp::start(&[]);
    let password = t.password();
    t.login();
    let kept = t.token("kept");
    let revoked = t.token("revoked");
    let sock = t.d.sock.clone();
    let list = || {
        let out = Command::new(bin())
            .arg("-H")
            .arg(&sock)
            .args(["token", "list"])
            .output()
            .unwrap();
        stdout(&out)
    };
    let id_of = |listing: &str, name: &str| -> u64 {
        listing
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {listing}"))
    };
    let revoked_id = id_of(&list(), "revoked");
    let out = Command::new(bin())
        .arg("-H")
        .arg(&t.d.sock)
        .args(["token", "rm", &revoked_id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json = ["-H", "Content-Type: application/json", "--data"];
    let (s, v, _) = t.call(
        "POST",
        "/api/v1/registry/",
        &[
            json[0],
            json[1],
            json[2],
            &serde_json::json!({"name": "home", "url": format!("http://{}", peers().basic),
                "username": "testuser", "password": "testpass"})
            .to_string(),
        ],
    );
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = t.call(
        "PUT",
        "/api/v1/image/downloads/settings",
        &[json[0], json[1], json[2], r#"{"bandwidth_limit":"2M"}"#],
    );
    assert_eq!(s, 200, "{v}");
    let settings = v;
    let records = t.d.root.join("records.json");
    let text = std::fs::read_to_string(&records).unwrap();
    for secret in [&kept[4..], &revoked[4..], "testpass", &password] {
        assert!(!text.contains(secret), "records.json holds a secret in the clear");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&records).unwrap().permissions().mode() & 0o777, 0o600);

    t.d.kill9();
    for f in ["depot.db", "depot.db-wal", "depot.db-shm"] {
        let _ = std::fs::remove_file(t.d.root.join(f));
    }
    t.d.restart();
    assert!(
        t.d.log_text()
            .contains("from records.json 1 users, 1 tokens, 1 registries"),
        "{}",
        t.d.log_text()
    );
    assert_eq!(t.password(), password, "a new admin password was written");
    let _ = std::fs::remove_file(&t.jar);
    let (s, v, _) = t.login_form("admin", &password);
    assert_eq!(s, 200, "the same password logs in: {v}");
    // tokens alone, without the session's cookie
    let with_token = |tok: &str| {
        curl(
            &format!("http://{}/api/v1/image/", t.addr),
            &["-H", &format!("Authorization: Bearer {tok}")],
        )
        .0
    };
    assert_eq!(with_token(&kept), 200);
    assert_eq!(with_token(&revoked), 401);
    let (s, v, _) = t.call("GET", "/api/v1/registry/", &[]);
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains("\"home\""), "{v}");
    let (_, v, _) = t.call("GET", "/api/v1/image/downloads/settings", &[]);
    assert_eq!(v, settings);
    // the next token never has the revoked one's id, nor any before it
    t.token("after");
    assert!(id_of(&list(), "after") > revoked_id, "{}", list());
}
