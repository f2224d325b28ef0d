//! The Engine API's image commands through the real docker CLI: info, inspect, history, tag, image prune,
//! system df, events, builder prune, and `docker inspect` falling through the container probes.

mod common;

use common::*;
use std::time::Duration;

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

#[test]
fn info_and_inspect_fall_through() {
    let p = peers();
    let d = Depot::start(&[]);
    let text = ok(&d.docker(&["info"]));
    for want in [
        "Images: 0",
        "Swarm: inactive",
        "OSType: linux",
        &format!("Docker Root Dir: {}", d.root.display()),
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    assert!(stderr(&d.docker(&["info"])).is_empty() || !stderr(&d.docker(&["info"])).contains("ERROR"));
    let r = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &r]));
    let id = ok(&d.docker(&["info", "--format", "{{.Images}} {{.ID}}"]));
    assert!(id.starts_with("1 "), "{id}");
    // `docker inspect X` asks for a container first; the 404 sends it on to the image
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", &r]))).unwrap();
    assert_eq!(v[0]["RepoTags"][0], r);
    let out = d.docker(&["inspect", "nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No such object: nothing-here"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_history_and_tag() {
    let p = peers();
    let d = Depot::start(&[]);
    let r = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &r]));
    let f = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}} {{.Config.Cmd}} {{index .Config.Labels \"org.example.test\"}} {{len .RootFS.Layers}} {{.Metadata.LastTagTime}}",
        &r,
    ]));
    assert_eq!(f.trim(), "linux/amd64 [/bin/sh] 1 1 0001-01-01 00:00:00 +0000 UTC");
    let id = ok(&d.docker(&["image", "inspect", "--format", "{{.Id}}", &r]))
        .trim()
        .to_string();
    // by short id, as the CLI's users do
    ok(&d.docker(&["image", "inspect", &id[7..19]]));
    let h = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
        &r,
    ]));
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 2, "{h}");
    assert!(lines[0].starts_with(&format!("{id}|umoci config|0B|set cmd")), "{h}");
    assert!(lines[1].starts_with("<missing>|umoci repack|"), "{h}");
    // tag: moves, sets LastTagTime, shows in images
    ok(&d.docker(&["tag", &r, "mine/test:v2"]));
    ok(&d.docker(&["tag", &id, "mine/test"]));
    let tags = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", "mine/test"]));
    assert_eq!(
        tags.lines().collect::<Vec<_>>(),
        vec!["mine/test:latest", "mine/test:v2"]
    );
    let t = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Metadata.LastTagTime}}",
        "mine/test:v2",
    ]));
    assert!(!t.starts_with("0001"), "{t}");
    let out = d.docker(&["tag", "nope:1", "x:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such image: nope:1"), "{}", stderr(&out));
    let out = d.docker(&["tag", &r, "Bad/Name"]);
    assert!(stderr(&out).contains("invalid reference format"), "{}", stderr(&out));
    let (s, v) = d.json("POST", &format!("/v1.47/images/{id}/tag?repo=x&tag=sha256"));
    assert_eq!(
        (s, v["message"].as_str().unwrap()),
        (
            400,
            "refusing to create an ambiguous tag using digest algorithm as name"
        )
    );
    let (s, _) = d.json("POST", &format!("/v1.47/images/{id}/tag?repo=x@{id}"));
    assert_eq!(s, 400);
    // the tag is in the OCI layout too
    let index = std::fs::read_to_string(d.root.join("index.json")).unwrap();
    assert!(index.contains("docker.io/mine/test:v2"), "{index}");
}

#[test]
fn image_prune_and_system_df() {
    let p = peers();
    let d = Depot::start(&[]);
    for r in ["test:1", "multi:1"] {
        ok(&d.docker(&["pull", "-q", &format!("{}/{r}", p.plain)]));
    }
    let df = ok(&d.docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}"]));
    assert!(df.lines().next().unwrap().starts_with("Images 2 3.04"), "{df}");
    let v = ok(&d.docker(&["system", "df", "-v", "--format", "{{json .Images}}"]));
    let imgs: serde_json::Value = serde_json::from_str(v.trim()).unwrap();
    assert!(
        imgs.as_array().unwrap().iter().all(|i| i["SharedSize"] != "-1"),
        "{imgs}"
    );
    // nothing dangling: a plain prune removes nothing
    let out = ok(&d.docker(&["image", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    // `until` in the past of both images' creation: nothing either
    let out = ok(&d.docker(&["image", "prune", "-a", "-f", "--filter", "until=2000-01-01T00:00:00Z"]));
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    let out = ok(&d.docker(&["image", "prune", "-a", "-f", "--filter", "label=stage=multi"]));
    assert!(out.contains(&format!("untagged: {}/multi:1", p.plain)), "{out}");
    assert_eq!(d.images().len(), 1);
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert!(out.contains("deleted: sha256:"), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert!(d.images().is_empty());
    assert!(d.blobs().is_empty(), "{:?}", d.blobs());
    let (s, v) = d.json("POST", "/images/prune?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D");
    assert_eq!((s, v["message"].as_str().unwrap()), (400, "invalid filter 'bogus'"));
    let out = ok(&d.docker(&["builder", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
}

#[test]
fn events_replay_filter_and_follow() {
    let p = peers();
    let d = Depot::start(&[]);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let r = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &r]));
    ok(&d.docker(&["tag", &r, "ev/test:1"]));
    ok(&d.docker(&["rmi", "ev/test:1"]));
    let until = (since + 3).to_string();
    let out = ok(&d.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("pull {r}"), "{out}");
    assert!(
        lines[1].starts_with("tag sha256:") && lines[2].starts_with("untag sha256:"),
        "{out}"
    );
    let out = ok(&d.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        "event=tag",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]));
    assert_eq!(out.trim(), "tag ev/test:1");
    // live: a follower started first sees a later rmi (headers are sent at once, or the CLI would wait)
    let sock = d.sock.clone();
    let follower = std::thread::spawn(move || {
        std::process::Command::new("timeout")
            .args([
                "5",
                "docker",
                "events",
                "--filter",
                "event=delete",
                "--format",
                "{{.Action}}",
            ])
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(800));
    ok(&d.docker(&["rmi", &r]));
    let out = follower.join().unwrap();
    assert_eq!(stdout(&out).trim(), "delete", "{}", stderr(&out));
    let (s, v) = d.json("GET", "/events?since=10&until=5");
    assert_eq!(
        (s, v["message"].as_str().unwrap()),
        (400, "`since` time must be before `until`")
    );
}

#[test]
fn docker_login_then_private_pull() {
    let p = peers();
    let d = Depot::start(&[]);
    for reg in [&p.basic, &p.token] {
        let login = |pw: &str| {
            let mut c = std::process::Command::new("docker");
            c.args(["login", "-u", "testuser", "--password-stdin", reg.as_str()])
                .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
                .env("DOCKER_CONFIG", d.root.join(".docker-config"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(pw.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        };
        let out = login("wrong\n");
        assert_eq!(out.status.code(), Some(1), "{reg}");
        assert!(
            stderr(&out).contains("unauthorized: incorrect username or password"),
            "{}",
            stderr(&out)
        );
        let out = login("testpass\n");
        assert!(
            stdout(&out).contains("Login Succeeded"),
            "{reg}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        // the CLI now sends the stored credentials with the pull
        ok(&d.docker(&["pull", "-q", &format!("{reg}/test:1")]));
    }
    assert_eq!(d.images().len(), 1, "the same image from both registries");
    let (s, v) = d.json("POST", "/auth");
    assert_eq!(s, 400, "{v}");
    // a token service that speaks only the OAuth2 form issues a refresh token: it comes back as IdentityToken
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&d.sock)
        .args(["-X", "POST", "-H", "Content-Type: application/json", "--data"])
        .arg(format!(
            r#"{{"username":"testuser","password":"testpass","serveraddress":"{}","email":null}}"#,
            p.token2
        ))
        .arg("http://d/v1.47/auth")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Status"], "Login Succeeded", "{v}");
    assert!(!v["IdentityToken"].as_str().unwrap_or("").is_empty(), "{v}");
}

#[test]
fn push_uploads_skips_and_mounts() {
    let p = peers();
    let d = Depot::start(&[]);
    let src = format!("{}/multi:1", p.plain);
    ok(&d.docker(&["pull", "-q", &src]));
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE,
        r#"{"username":"testuser","password":"testpass"}"#,
    );
    let push = |name: &str, tag: &str| {
        let (s, _, b) = d.request(
            "POST",
            &format!("/v1.47/images/{name}/push?tag={tag}"),
            &[("X-Registry-Auth", &auth)],
        );
        assert_eq!(s, 200);
        String::from_utf8_lossy(&b).to_string()
    };
    // to another registry (the one with htpasswd): every layer is uploaded. Names of this run's own: the peers
    // outlive a test run, and a registry links blobs per repository.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dst = format!("{}/pushed-{run}/multi", p.basic);
    ok(&d.docker(&["tag", &src, &format!("{dst}:7")]));
    let out = push(&dst, "7");
    assert!(
        out.starts_with(&format!("{{\"status\":\"The push refers to repository [{dst}]\"}}")),
        "{out}"
    );
    assert_eq!(out.matches("\"status\":\"Pushed\"").count(), 5, "{out}");
    // moby's PushResult, in its field order (shared/reference/wire)
    assert!(out.contains("\"aux\":{\"Tag\":\"7\",\"Digest\":\"sha256:"), "{out}");
    // the registry serves what depot pushed, byte for byte: the digest is the one pulled from the source
    let manifest_digest = d.images()[0]["RepoDigests"][0]
        .as_str()
        .unwrap()
        .split('@')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(out.contains(&format!("7: digest: {manifest_digest} size: ")), "{out}");
    let sk = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds", "testuser:testpass"])
        .arg(format!("docker://{dst}:7"))
        .output()
        .unwrap();
    assert!(sk.status.success(), "{}", stderr(&sk));
    let v: serde_json::Value = serde_json::from_slice(&sk.stdout).unwrap();
    assert_eq!(v["Digest"], manifest_digest.as_str());
    // again: nothing is uploaded
    let out = push(&dst, "7");
    assert_eq!(out.matches("Layer already exists").count(), 5, "{out}");
    // to another repository of that registry: layers are mounted, not uploaded
    let other = format!("{}/other-{run}/multi", p.basic);
    ok(&d.docker(&["tag", &src, &format!("{other}:1")]));
    let out = push(&other, "1");
    assert_eq!(
        out.matches(&format!("Mounted from pushed-{run}/multi")).count(),
        5,
        "{out}"
    );
    // the docker CLI itself, after docker login
    let login = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo testpass | docker login -u testuser --password-stdin {}",
            p.basic
        ))
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.root.join(".docker-config"))
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", stderr(&login));
    let cli_dst = format!("{}/cli-{run}/multi:3", p.basic);
    ok(&d.docker(&["tag", &src, &cli_dst]));
    let out = ok(&d.docker(&["push", &cli_dst]));
    assert!(out.contains(&format!("3: digest: {manifest_digest}")), "{out}");
    // rmi --no-prune is accepted (depot keeps no parent chains to prune)
    ok(&d.docker(&["rmi", "--no-prune", &cli_dst]));
    // the pushed digest is recorded; a push of what is not here fails in the stream
    let digests = ok(&d.docker(&["images", "--digests", "--format", "{{.Repository}}@{{.Digest}}", &dst]));
    assert_eq!(digests.trim(), format!("{dst}@{manifest_digest}"));
    let out = d.docker(&["push", &format!("{}/nothing:1", p.plain)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tag does not exist"), "{}", stderr(&out));
    // without credentials the registry refuses, in the stream
    let (s, _, b) = d.request("POST", &format!("/v1.47/images/{dst}/push?tag=7"), &[]);
    assert_eq!(s, 200);
    assert!(
        String::from_utf8_lossy(&b).contains("errorDetail"),
        "{}",
        String::from_utf8_lossy(&b)
    );
}

#[test]
fn search_an_index_and_a_registrys_catalog() {
    use common::net::{Hostile, Reply};
    let p = peers();
    // Docker Hub's index search: no real peer here serves it, so a small server of ours stands in
    let index = Hostile::start(|r| {
        if !r.path.starts_with("/v1/search?") || r.headers.get("x-docker-token").map(String::as_str) != Some("true") {
            return Reply::status(404, "{}");
        }
        Reply::ok(
            br#"{"query":"busybox","num_results":3,"results":[
              {"name":"library/busybox","description":"Busybox base image.","star_count":3000,"is_official":true,"is_automated":false},
              {"name":"someone/busybox","description":"a fork","star_count":5,"is_official":false,"is_automated":false},
              {"name":"other/busybox-ish","description":"","star_count":40,"is_official":false,"is_automated":false}]}"#
                .to_vec(),
            "application/json",
        )
    });
    let d = Depot::start(&["--search-index", &format!("http://{}", index.addr)]);
    let out = ok(&d.docker(&[
        "search",
        "--format",
        "{{.Name}} {{.StarCount}} {{.IsOfficial}}",
        "busybox",
    ]));
    assert_eq!(out, "busybox 3000 [OK]\nsomeone/busybox 5 \nother/busybox-ish 40 \n");
    let out = ok(&d.docker(&[
        "search",
        "--format",
        "{{.Name}}",
        "--filter",
        "is-official=true",
        "busybox",
    ]));
    assert_eq!(out.trim(), "busybox");
    let out = ok(&d.docker(&["search", "--format", "{{.Name}}", "--filter", "stars=10", "busybox"]));
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["busybox", "other/busybox-ish"]);
    assert!(
        index.requests().iter().all(|r| r.path.contains("q=busybox")),
        "the term went upstream"
    );
    // a term naming a registry searches its catalog
    let out = ok(&d.docker(&["search", "--format", "{{.Name}}", &format!("{}/multi", p.plain)]));
    let names: Vec<&str> = out.lines().collect();
    assert!(names.contains(&format!("{}/multi", p.plain).as_str()), "{out}");
    assert!(names.contains(&format!("{}/multiarch", p.plain).as_str()), "{out}");
    assert!(!names.contains(&format!("{}/test", p.plain).as_str()), "{out}");
    let (s, _) = d.json("GET", "/images/search?term=x&limit=101");
    assert_eq!(s, 400);
    let (s, _) = d.json("GET", "/images/search?term=https://x/y");
    assert_eq!(s, 400);
}
