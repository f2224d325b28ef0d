//! Hand-off to the NAS's container engine: an image pulled by depot is loaded into a real dockerd 20.10 (the
//! version Container Station ships), by `depot handoff` and automatically after a pull, with the same id.

mod common;

use common::*;

fn id_in(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn depot_handoff_loads_into_dockerd_with_the_same_id() {
    let p = peers();
    let engine = Dockerd::start();
    let d = Depot::start(&[]);
    // multi:1 has whiteouts and an opaque directory; test:1-zstd a zstd layer, which dockerd 20.10 cannot read
    let images = [format!("{}/multi:1", p.plain), format!("{}/test:1-zstd", p.plain)];
    for i in &images {
        assert!(d.docker(&["pull", "-q", i]).status.success());
    }
    let out = std::process::Command::new(bin())
        .args(["handoff", "--engine"])
        .arg(&engine.sock)
        .args(&images)
        .env("DEPOT_SOCKET", &d.sock)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for i in &images {
        assert!(stdout(&out).contains(&format!("Loaded image: {i}")), "{}", stdout(&out));
        let ours = id_in(d.docker(&["image", "inspect", "--format", "{{.Id}}", i]));
        let theirs = id_in(engine.docker(&["image", "inspect", "--format", "{{.Id}}", i]));
        assert_eq!(ours, theirs, "{i}: the same config digest in dockerd");
    }
    // an engine that is not there: a clear error
    let out = std::process::Command::new(bin())
        .args(["handoff", "--engine", "/nonexistent.sock", &images[0]])
        .env("DEPOT_SOCKET", &d.sock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent.sock"), "{}", stderr(&out));
}

#[test]
fn pulls_are_handed_off_automatically_when_configured() {
    let p = peers();
    let engine = Dockerd::start();
    let sock = engine.sock.display().to_string();
    let d = Depot::start(&["--engine-socket", &sock, "--handoff-after-pull", "true"]);
    let r = format!("{}/test:1", p.plain);
    let out = d.docker(&["pull", &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("Container engine: Loaded image: {r}")),
        "{}",
        stdout(&out)
    );
    let ours = id_in(d.docker(&["image", "inspect", "--format", "{{.Id}}", &r]));
    assert_eq!(
        ours,
        id_in(engine.docker(&["image", "inspect", "--format", "{{.Id}}", &r]))
    );
}
