//! The torture suite: SIGKILL the daemon at random points of pulls (single- and multi-layer, multi-arch, zstd,
//! the 505 MB image through a throttled link), deletes, tags, prunes, loads and pushes, with several clients at
//! once; restart; let interrupted work resume; check everything a client was told.
//!
//! Seeded and reproducible in its schedule (the seed is printed; `DEPOT_TORTURE_SEED` replays it). Bounded by
//! time in `tests/run`; `tests/torture/run --long N` runs N iterations.
//!
//! After every iteration: every download that was running completes; `depot fsck` finds nothing (every blob
//! hashes to its name, every image whole, SQLite sound, index.json in step, no stray file or orphan ingest); every
//! image a client was told is there (a finished pull's tag, a tag, a load) is listed with the id it was told.

#[path = "../common/mod.rs"]
mod common;

use common::net::Proxy;
use common::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// xorshift64*: small, seedable, enough for schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What clients were told: canonical-ish ref (as the CLI names it) → image id.
type Promised = Arc<Mutex<BTreeMap<String, String>>>;

#[derive(Debug, Clone, Copy)]
enum Op {
    Pull(&'static str),
    PullBig,
    Tag,
    Rm,
    Prune,
    Load,
    Push,
}

const SMALL: [&str; 4] = ["test:1", "multi:1", "multiarch:1", "test:1-zstd"];

fn pick(r: &mut Rng) -> Op {
    match r.below(10) {
        0..=2 => Op::Pull(SMALL[r.below(SMALL.len() as u64) as usize]),
        3 => Op::PullBig,
        4 => Op::Tag,
        5 => Op::Rm,
        6 => Op::Prune,
        7 | 8 => Op::Load,
        _ => Op::Push,
    }
}

/// Run one operation as a client would; record what the daemon confirmed before it died.
fn run_op(op: Op, sock: &std::path::Path, plain: &str, slow: &str, archive: &std::path::Path, promised: &Promised) {
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_CONFIG", sock.with_extension("docker"))
            .output()
    };
    let id_of = |r: &str| {
        docker(&["image", "inspect", "--format", "{{.Id}}", r])
            .ok()
            .filter(|o| o.status.success())
            .map(|o| stdout(&o).trim().to_string())
    };
    match op {
        Op::Pull(_) | Op::PullBig => {
            let r = match op {
                Op::Pull(img) => format!("{plain}/{img}"),
                _ => format!("{slow}/big:1"),
            };
            if let Ok(o) = docker(&["pull", "-q", &r]) {
                if o.status.success() {
                    // told: the image is complete. Its id, asked while the daemon may still live.
                    if let Some(id) = id_of(&r) {
                        promised.lock().unwrap().insert(r, id);
                    }
                }
            }
        }
        Op::Tag => {
            let src = format!("{plain}/test:1");
            if let Some(id) = id_of(&src) {
                let dst = "torture/tagged:1".to_string();
                if docker(&["tag", &src, &dst]).is_ok_and(|o| o.status.success()) {
                    promised.lock().unwrap().insert(dst, id);
                }
            }
        }
        Op::Rm => {
            // Only the tag torture makes: an image a pull of the same iteration is fetching could be confirmed
            // to that client after this delete, and the big image must stay for the byte count.
            let v = "torture/tagged:1";
            // forget first: a delete cut short may or may not have happened
            promised.lock().unwrap().remove(v);
            let _ = docker(&["rmi", v]);
        }
        Op::Prune => {
            // dangling images only: nothing a client was told about is dangling
            let _ = docker(&["image", "prune", "-f"]);
        }
        Op::Load => {
            if let Ok(o) = docker(&["load", "-i", archive.to_str().unwrap()]) {
                for line in stdout(&o).lines() {
                    if let Some(r) = line.strip_prefix("Loaded image: ") {
                        if let Some(id) = id_of(r) {
                            promised.lock().unwrap().insert(r.to_string(), id);
                        }
                    }
                }
            }
        }
        Op::Push => {
            let src = format!("{plain}/multi:1");
            let dst = format!("{plain}/torture-push/multi:1");
            if docker(&["tag", &src, &dst]).is_ok_and(|o| o.status.success()) {
                let _ = docker(&["push", &dst]);
            }
        }
    }
}

fn unfinished(root: &std::path::Path) -> i64 {
    rusqlite::Connection::open_with_flags(root.join("depot.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM downloads WHERE state NOT IN ('committed', 'failed')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// Stop, check offline, start again, check what clients were told.
fn check(d: &mut Depot, promised: &Promised, seed: u64, iteration: u64) {
    wait_for(300, "interrupted downloads to complete", || unfinished(&d.root) == 0);
    d.kill9();
    let out = std::process::Command::new(bin())
        .args(["fsck", "--data-root"])
        .arg(&d.root)
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("no problems"),
        "seed {seed}, iteration {iteration}: fsck:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    d.restart();
    let listed: BTreeMap<String, String> = d
        .images()
        .iter()
        .flat_map(|i| {
            let id = i["Id"].as_str().unwrap_or("").to_string();
            i["RepoTags"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (t.as_str().unwrap_or("").to_string(), id.clone()))
        })
        .collect();
    for (r, id) in promised.lock().unwrap().iter() {
        assert_eq!(
            listed.get(r),
            Some(id),
            "seed {seed}, iteration {iteration}: {r} was confirmed to a client and is gone or changed; listed: {listed:?}"
        );
    }
    assert!(
        std::fs::read_dir(d.root.join("tmp")).unwrap().next().is_none(),
        "seed {seed}: tmp/ not empty after a start"
    );
}

#[test]
fn sigkill_torture() {
    let p = peers();
    let seed: u64 = std::env::var("DEPOT_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let iterations: Option<u64> = std::env::var("DEPOT_TORTURE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok());
    let budget = Duration::from_secs(
        std::env::var("DEPOT_TORTURE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    eprintln!("torture: seed {seed} (DEPOT_TORTURE_SEED={seed} replays the schedule)");
    let mut rng = Rng(seed);
    // the big image through a link of ~100 MB/s, so kills land in the middle of it
    let slow = Proxy::start(&p.plain, 100 * 1000 * 1000);
    let mut d = Depot::start(&[]);
    // an archive to load, made once by the daemon itself
    let archive = d.root.with_extension("load.tar");
    assert!(d
        .docker(&["pull", "-q", &format!("{}/multi:1", p.plain)])
        .status
        .success());
    assert!(d
        .docker(&["save", "-o", archive.to_str().unwrap(), &format!("{}/multi:1", p.plain)])
        .status
        .success());
    let promised: Promised = Arc::default();
    promised.lock().unwrap().insert(
        format!("{}/multi:1", p.plain),
        stdout(&d.docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("{}/multi:1", p.plain),
        ]))
        .trim()
        .to_string(),
    );
    let start = Instant::now();
    let (mut i, mut kills) = (0u64, 0u64);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    while iterations.map_or(start.elapsed() < budget, |n| i < n) {
        i += 1;
        // several clients at once
        let clients = 1 + rng.below(3);
        let mut ops: Vec<Op> = (0..clients).map(|_| pick(&mut rng)).collect();
        // a tag and a delete of the same name at once have no one right outcome to check: keep the tag
        if ops.iter().any(|o| matches!(o, Op::Tag)) {
            for o in ops.iter_mut().filter(|o| matches!(o, Op::Rm)) {
                *o = Op::Prune;
            }
        }
        let delay = Duration::from_millis(rng.below(1500));
        let workers: Vec<_> = ops
            .iter()
            .map(|op| {
                *counts
                    .entry(format!("{op:?}").split('(').next().unwrap().to_string())
                    .or_default() += 1;
                let (op, sock, plain, slow, archive, promised) = (
                    *op,
                    d.sock.clone(),
                    p.plain.clone(),
                    slow.addr.clone(),
                    archive.clone(),
                    promised.clone(),
                );
                std::thread::spawn(move || run_op(op, &sock, &plain, &slow, &archive, &promised))
            })
            .collect();
        std::thread::sleep(delay);
        d.kill9();
        kills += 1;
        for w in workers {
            let _ = w.join();
        }
        d.restart();
        check(&mut d, &promised, seed, i);
    }
    // The big image is pulled once in a run (nothing removes it): whatever the kills, what crossed the link is
    // close to its size, for every resume starts from the bytes on disk.
    let big = format!("{}/big:1", slow.addr);
    let mut served = None;
    let have_big = d.images().iter().any(|i| {
        i["RepoTags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == big.as_str()))
    });
    if have_big {
        let m: serde_json::Value = serde_json::from_slice(&registry_get(
            &p.plain,
            "/v2/big/manifests/1",
            "application/vnd.oci.image.manifest.v1+json",
        ))
        .unwrap();
        let size: u64 = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum();
        let ratio = slow.served() as f64 / size as f64;
        assert!(
            ratio <= 1.1,
            "seed {seed}: {} bytes crossed for a {size}-byte image ({ratio:.3}x)",
            slow.served()
        );
        served = Some(ratio);
    }
    eprintln!(
        "torture: seed {seed}: {i} iterations, {kills} SIGKILLs, operations {counts:?}, {} images confirmed at the end, big image transferred {}, {:.0} s",
        promised.lock().unwrap().len(),
        served.map(|r| format!("{r:.3}x its size")).unwrap_or_else(|| "not pulled".into()),
        start.elapsed().as_secs_f64()
    );
}
