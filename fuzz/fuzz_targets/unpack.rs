//! The unpacker's path logic under libFuzzer: the input is read as a list of tar entries (kind, name, link
//! target, a little data), written as raw headers so that any name or target a hostile archive can hold is
//! possible, and unpacked into a fresh destination beside a sentinel directory. Whatever happens, nothing
//! outside the destination may change: no new name beside it, the sentinel's file intact.
#![no_main]

// The unpacker and the file helpers it uses, compiled from depot's own sources (the same code, not a copy).
#[allow(dead_code)]
#[path = "../../src/fsutil/mod.rs"]
mod fsutil;
#[allow(dead_code)]
#[path = "../../src/lxc/unpack/mod.rs"]
mod unpack;

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const KINDS: [tar::EntryType; 7] = [
    tar::EntryType::Regular,
    tar::EntryType::Directory,
    tar::EntryType::Symlink,
    tar::EntryType::Link,
    tar::EntryType::Fifo,
    tar::EntryType::Char,
    tar::EntryType::Regular,
];

/// Whole tokens of names and targets hostile archives use (bytes 1 to 12 of a field), so that short inputs
/// reach symlink, hardlink and whiteout tricks; any other byte is itself. fuzz/seeds holds the known attacks.
const WORDS: [&[u8]; 12] = [
    b"..",
    b".",
    b"/",
    b"a",
    b"b",
    b"outside",
    b"victim",
    b"/etc",
    b".wh.",
    b"../outside",
    b"../../",
    b".wh..wh..opq",
];

fn field(data: &mut &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((&b, rest)) = data.split_first() {
        *data = rest;
        match b {
            0 => break,
            1..=12 => out.extend_from_slice(WORDS[(b - 1) as usize]),
            b => out.push(b),
        }
        if out.len() > 90 {
            break;
        }
    }
    out
}

fn archive(mut data: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    for _ in 0..16 {
        let Some((&k, rest)) = data.split_first() else { break };
        data = rest;
        let name = field(&mut data);
        let link = field(&mut data);
        if name.is_empty() {
            continue;
        }
        let body: &[u8] = if k & 0x80 != 0 { b"payload" } else { b"" };
        let mut h = tar::Header::new_gnu();
        let n = name.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(99);
        h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
        h.set_entry_type(KINDS[(k as usize & 0x7f) % KINDS.len()]);
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        t.extend_from_slice(h.as_bytes());
        t.extend_from_slice(body);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.extend_from_slice(&[0u8; 1024]);
    t
}

fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    v.sort();
    v
}

static N: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let base = std::env::temp_dir().join(format!("depot-fuzz-{}", std::process::id()));
    let sandbox = base.join(format!("s{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(sandbox.join("outside")).unwrap();
    std::fs::write(sandbox.join("outside/victim"), b"original").unwrap();
    let before = names(&sandbox);
    let dest = sandbox.join("dest");
    let tar = archive(data);
    let _ = unpack::unpack(&tar[..], &dest, &Default::default());
    let layer = unpack::Options {
        layer: true,
        ..Default::default()
    };
    let flat = sandbox.join("flat");
    std::fs::create_dir(&flat).unwrap();
    let _ = unpack::unpack_into(&tar[..], &flat, &layer);
    let mut after = names(&sandbox);
    after.retain(|n| n != "dest" && n != "flat");
    assert_eq!(after, before, "a name appeared beside the destination");
    assert_eq!(names(&sandbox.join("outside")), vec![std::ffi::OsString::from("victim")]);
    assert_eq!(std::fs::read(sandbox.join("outside/victim")).unwrap(), b"original");
    let _ = std::fs::remove_dir_all(&sandbox);
});
