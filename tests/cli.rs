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
    let out = Command::new(bin()).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
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
