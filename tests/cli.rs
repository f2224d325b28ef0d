//! The `depot` client commands against a running daemon.

mod common;

use common::*;
use std::process::Command;

#[test]
fn pull_images_rm_plain_output() {
    let p = peers();
    let d = Depot::start(&[]);
    let r = format!("{}/multi:1", p.plain);
    let out = d.cli(&["pull", &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("1: Pulling from multi\n"), "{text}");
    assert!(
        text.contains(": Pull complete\n") && !text.contains("Downloading"),
        "no bars when not a terminal: {text}"
    );
    assert!(
        text.ends_with(&format!("Status: Downloaded newer image for {r}\n{r}\n")),
        "{text}"
    );
    let out = d.cli(&["images"]);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID") && lines[0].ends_with("SIZE"));
    assert!(
        lines[1].starts_with(&format!("{}/multi", p.plain)) && lines[1].contains("   1   "),
        "{lines:?}"
    );
    let out = d.cli(&["rm", &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("Untagged: {r}\n")));
    assert!(stdout(&out).contains("Deleted: sha256:"));
    assert_eq!(stdout(&d.cli(&["images"])).lines().count(), 1);
}

#[test]
fn default_tag_and_terminal_progress() {
    let p = peers();
    let d = Depot::start(&[]);
    // under a pseudo-terminal: bars drawn in place with ANSI cursor moves
    let cmd = format!("DEPOT_SOCKET={} {} pull {}/multi", d.sock.display(), bin(), p.plain);
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Using default tag: latest"), "{text}");
    // multi:latest does not exist: the error is one line
    assert!(text.contains("Error response from daemon: manifest for"), "{text}");
    let cmd = format!("DEPOT_SOCKET={} {} pull {}/big:1", d.sock.display(), bin(), p.plain);
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", &text[text.len().saturating_sub(2000)..]);
    assert!(
        text.contains("Downloading [") && text.contains("\x1b[2K"),
        "bars on a terminal: {}",
        &text[..text.len().min(2000)]
    );
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let p = peers();
    let d = Depot::start(&[]);
    let out = d.cli(&["pull", "Bad/Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "depot: invalid reference \"Bad/Name\": invalid reference format: repository name (Name) must be lowercase\n"
    );
    let out = d.cli(&["pull", &format!("{}/test:nope", p.plain)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).starts_with("depot: Error response from daemon: manifest for"));
    let out = d.cli(&["rm", "nope"]);
    assert_eq!(
        stderr(&out),
        "depot: Error response from daemon: No such image: nope:latest\n"
    );
    let out = Command::new(bin())
        .args(["images", "-H", "/nonexistent/depot.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("depot: cannot connect to the depot daemon at /nonexistent/depot.sock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_help_and_errors_name_what_is_wrong() {
    let run = |args: &[&str]| Command::new(bin()).args(args).output().unwrap();
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("depot: unknown command 'frobnicate'"),
        "{}",
        stderr(&out)
    );
    let out = run(&["pull"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("depot: missing argument: reference\n"),
        "{}",
        stderr(&out)
    );
    let out = run(&["rm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing argument: images"), "{}", stderr(&out));
    let out = run(&["serve", "--frobnicate", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--frobnicate"), "{}", stderr(&out));
    for args in [&["pull", "--help"][..], &["help", "pull"], &["pull", "-h"]] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            stdout(&out).starts_with("Usage: depot pull"),
            "{args:?}: {}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("--platform"), "{}", stdout(&out));
    }
    for args in [&["help"][..], &["--help"], &[]] {
        let out = run(args);
        assert!(out.status.success());
        for c in ["serve", "pull", "images", "rm", "fsck", "config"] {
            assert!(
                stdout(&out).contains(&format!("  {c} ")),
                "{c} in {args:?}: {}",
                stdout(&out)
            );
        }
    }
}

#[test]
fn the_client_finds_the_socket_by_flag_then_environment() {
    let d = Depot::start(&[]);
    let elsewhere = tempdir("elsewhere");
    let client = |args: &[&str], env: &[(&str, String)]| {
        Command::new(bin())
            .args(args)
            .current_dir(&elsewhere)
            .env_remove("DEPOT_SOCKET")
            .env_remove("DOCKER_HOST")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    };
    let sock = d.sock.display().to_string();
    // the README's way: DOCKER_HOST=unix://…, from another directory
    let out = client(&["images"], &[("DOCKER_HOST", format!("unix://{sock}"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("REPOSITORY"), "{}", stdout(&out));
    // DEPOT_SOCKET wins over DOCKER_HOST, and -H over both
    let bad = ("DOCKER_HOST", "unix:///nonexistent/docker.sock".to_string());
    assert!(client(&["images"], &[("DEPOT_SOCKET", sock.clone()), bad.clone()])
        .status
        .success());
    let out = client(
        &["images", "-H", &format!("unix://{sock}")],
        &[("DEPOT_SOCKET", "/nonexistent".into())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        client(&["-H", &sock, "images"], &[]).status.success(),
        "-H before the command too"
    );
    // a tcp:// DOCKER_HOST is not ours to use: the profile's socket (relative, absent here) is tried
    let out = client(&["images"], &[("DOCKER_HOST", "tcp://127.0.0.1:2375".into())]);
    assert!(stderr(&out).contains("depot-data/depot.sock"), "{}", stderr(&out));
    let out = client(&["images", "-H", "tcp://127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unix socket"), "{}", stderr(&out));
}

#[test]
fn pull_fails_clearly_when_the_daemon_dies_mid_pull() {
    let p = peers();
    let proxy = common::net::Proxy::start(&p.plain, 20 * 1000 * 1000);
    let mut d = Depot::start(&[]);
    let child = Command::new(bin())
        .args(["pull", &format!("{}/big:1", proxy.addr)])
        .env("DEPOT_SOCKET", &d.sock)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(60, "bytes in the ingests", || proxy.served() > 30_000_000);
    d.kill9();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("ended the stream before the pull finished"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn admin_verbs_without_a_docker_cli() {
    let p = peers();
    let d = Depot::start(&[]);
    let a = format!("{}/test:1", p.plain);
    let ok = |args: &[&str]| {
        let out = d.cli(args);
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    ok(&["pull", &a]);
    ok(&["tag", &a, "mine/x:2"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", "mine/x:2"])).unwrap();
    assert_eq!(v[0]["RepoTags"], serde_json::json!([a.clone(), "mine/x:2"]));
    let dir = tempdir("cli-save");
    let tar = dir.join("x.tar");
    ok(&["save", "-o", tar.to_str().unwrap(), "mine/x:2"]);
    ok(&["rm", "mine/x:2", &a]);
    assert!(d.images().is_empty());
    assert_eq!(ok(&["load", "-i", tar.to_str().unwrap()]), "Loaded image: mine/x:2\n");
    // standard input works too
    let out = Command::new(bin())
        .arg("load")
        .env("DEPOT_SOCKET", &d.sock)
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "Loaded image: mine/x:2\n", "{}", stderr(&out));
    let login = |pw: &str| {
        let mut c = Command::new(bin())
            .args(["login", "-u", "testuser", "--password-stdin", &p.basic])
            .env("DEPOT_SOCKET", &d.sock)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(pw.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    assert_eq!(stdout(&login("testpass\n")), "Login Succeeded\n");
    let bad = login("wrong\n");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("incorrect username or password"),
        "{}",
        stderr(&bad)
    );
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dst = format!("{}/cli-{run}/x:2", p.basic);
    ok(&["tag", "mine/x:2", &dst]);
    let out = ok(&["push", "--creds", "testuser:testpass", &dst]);
    assert!(out.contains(": Pushed") && out.contains("2: digest: sha256:"), "{out}");
    let out = d.cli(&["push", &dst]);
    assert_eq!(out.status.code(), Some(1), "no credentials: the registry refuses");
    let out = ok(&["prune", "-a"]);
    assert!(
        out.contains("deleted: sha256:") && out.contains("Total reclaimed space: 1.99MB"),
        "{out}"
    );
    assert!(d.images().is_empty());
}
