//! The README's first command, exactly as written, in a fresh clone: it must set up and start depot.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The first line of the README's first `sh` block, without its comment.
fn first_command(readme: &str) -> String {
    let block = readme.split("```sh\n").nth(1).expect("a ```sh block in README.md");
    let line = block.lines().next().expect("a first line");
    line.split(" #").next().unwrap().trim().to_string()
}

#[test]
fn readme_first_command_starts_depot_in_a_fresh_clone() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cmd = first_command(&std::fs::read_to_string(repo.join("README.md")).unwrap());
    assert!(cmd.contains("serve"), "the first command runs the daemon: {cmd}");
    let dir = tempdir("fresh-clone");
    let clone = dir.join("depot");
    let st = Command::new("git")
        .args(["clone", "-q", "--no-hardlinks"])
        .arg(repo)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(st.success(), "git clone of the checkout");
    // Its own process group, so that cargo and the daemon it runs are stopped together, by our PID.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", repo.join("target"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sock = clone.join("depot-data/depot.sock");
    let up = (0..18_000).any(|_| {
        if request_unix(&sock, "GET", "/_ping", &[], Duration::from_secs(5)).0 == 200 {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
        false
    });
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(up, "`{cmd}` did not start depot:\n{log}");
    assert!(log.contains("serving on unix://"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn first_command_parsing() {
    assert_eq!(
        first_command("x\n```sh\ncargo run --release -- serve     # set up and run\ntests/run\n```\n"),
        "cargo run --release -- serve"
    );
}
