//! Real clients other than the docker CLI: docker-py, low and high level.

mod common;

use common::*;
use std::process::Command;

fn run_script(name: &str, d: &Depot, regs: &[&String]) -> std::process::Output {
    let script = format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"));
    Command::new("python3")
        .arg(script)
        .arg(&d.sock)
        .args(regs)
        .output()
        .unwrap()
}

#[test]
fn docker_py_high_level_client() {
    let p = peers();
    let d = Depot::start(&[]);
    let out = run_script("docker_py_high.py", &d, &[&p.plain, &p.basic]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "docker-py high-level ok");
}

#[test]
fn docker_py_low_level_client() {
    let p = peers();
    let d = Depot::start(&[]);
    let out = run_script("docker_py.py", &d, &[&p.plain]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "docker-py ok");
}
