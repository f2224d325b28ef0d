//! The release binaries `cross/build.sh` makes for the NAS CPUs, checked with `file` and `readelf`: fully static
//! (QTS has glibc 2.21), the right machine, 64 KiB-aligned LOAD segments on ARM (64K-page kernels), within the size
//! budget, and running (under qemu-user for ARM).

mod common;

use common::*;
use std::process::Command;

struct Target {
    triple: &'static str,
    machine: &'static str,
    file_says: &'static str,
    runner: &'static [&'static str],
    max_bytes: u64,
}

const TARGETS: &[Target] = &[
    Target {
        triple: "x86_64-unknown-linux-gnu",
        machine: "Advanced Micro Devices X86-64",
        file_says: "x86-64",
        runner: &[],
        // DESIGN's budget is aarch64's (6 MB, below); x86_64 NASes have the most room. 7.0 MB held until the
        // signature policy and offline bundles (+99 KB, 7,088,360 B with SQLite's unused parts left out); the
        // LAN registry's first part brought it to 7,133,416 B, its TLS server, certificate issuing and token
        // endpoint (rustls' server side, rcgen) to 7,354,600 B, pull-through and the page's switch to 7,416,168 B
        // (aarch64 5,924,192 B).
        max_bytes: 7_450_000,
    },
    Target {
        triple: "aarch64-unknown-linux-gnu",
        machine: "AArch64",
        file_says: "ARM aarch64",
        runner: &["qemu-aarch64", "-cpu", "cortex-a53"],
        max_bytes: 6_000_000,
    },
    Target {
        triple: "armv7-unknown-linux-gnueabihf",
        machine: "ARM",
        file_says: "ARM, EABI5",
        runner: &["qemu-arm", "-cpu", "cortex-a9"],
        max_bytes: 6_000_000,
    },
];

#[test]
fn release_binaries_are_static_aligned_small_and_run() {
    for t in TARGETS {
        let b = static_binary(t.triple);
        let file = stdout(&Command::new("file").arg("-b").arg(&b).output().unwrap());
        assert!(file.contains(t.file_says), "{}: {file}", t.triple);
        assert!(
            file.contains("statically linked") || file.contains("static-pie linked"),
            "{}: not static: {file}",
            t.triple
        );
        assert!(
            file.contains("stripped") && !file.contains("not stripped"),
            "{}: {file}",
            t.triple
        );
        let header = stdout(&Command::new("readelf").arg("-hW").arg(&b).output().unwrap());
        assert!(
            header.lines().any(|l| l.contains("Machine:") && l.contains(t.machine)),
            "{}: {header}",
            t.triple
        );
        let dynamic = stdout(&Command::new("readelf").arg("-dW").arg(&b).output().unwrap());
        assert!(
            !dynamic.contains("(NEEDED)"),
            "{}: needs shared libraries:\n{dynamic}",
            t.triple
        );
        let versions = stdout(&Command::new("readelf").arg("-VW").arg(&b).output().unwrap());
        assert!(
            !versions.contains("GLIBC_"),
            "{}: needs versioned glibc symbols",
            t.triple
        );
        // No NSS in a static glibc binary: on a domain-joined NAS it would dlopen the NAS's own libnss_*.so.
        let bytes = std::fs::read(&b).unwrap();
        for needle in [&b"nsswitch.conf"[..], b"libnss_"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{}: contains glibc NSS code",
                t.triple
            );
        }
        if !t.runner.is_empty() {
            let segs = stdout(&Command::new("readelf").arg("-lW").arg(&b).output().unwrap());
            let loads: Vec<&str> = segs.lines().filter(|l| l.trim_start().starts_with("LOAD")).collect();
            assert!(!loads.is_empty());
            for l in loads {
                assert_eq!(l.split_whitespace().last(), Some("0x10000"), "{}: {l}", t.triple);
            }
        }
        let size = std::fs::metadata(&b).unwrap().len();
        assert!(
            size <= t.max_bytes,
            "{}: {size} bytes, budget {}",
            t.triple,
            t.max_bytes
        );
        let mut cmd = match t.runner.split_first() {
            Some((r, args)) => {
                let mut c = Command::new(r);
                c.args(args).arg(&b);
                c
            }
            None => Command::new(&b),
        };
        let out = cmd.arg("--version").output().unwrap();
        assert!(stdout(&out).starts_with("depot "), "{}: {}", t.triple, stderr(&out));
    }
}
