//! Real clients other than the docker CLI: docker-py.

mod common;

use common::*;
use std::process::Command;

#[test]
fn docker_py_low_level_client() {
    let p = peers();
    let d = Depot::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/docker_py.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&d.sock)
        .arg(&p.plain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "docker-py ok");
}
