//! The data root as a store that outlives its database: a valid OCI image layout kept in step with every tag
//! change, read by skopeo without depot; a lost or damaged `depot.db` rebuilt from it; every file accounted for.

mod common;

use common::*;
use std::process::Command;

fn fsck(root: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("fsck")
        .args(extra)
        .arg("--data-root")
        .arg(root)
        .output()
        .unwrap()
}

fn index_refs(root: &std::path::Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let mut names: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    names.sort();
    names
}

fn tags(d: &Depot) -> Vec<String> {
    let mut t: Vec<String> = d
        .images()
        .iter()
        .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

#[test]
fn the_data_root_is_an_oci_layout_in_step_with_every_tag_change() {
    let p = peers();
    let d = Depot::start(&[]);
    assert_eq!(
        std::fs::read_to_string(d.root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert!(index_refs(&d.root).is_empty());
    for r in ["test:1", "multiarch:1"] {
        assert!(d.docker(&["pull", &format!("{}/{r}", p.plain)]).status.success());
    }
    let refs = index_refs(&d.root);
    assert_eq!(refs.len(), 4, "a tag and a digest ref per image: {refs:?}");
    assert!(refs.contains(&format!("{}/test:1", p.plain)), "{refs:?}");
    // skopeo reads depot's store without depot (the daemon may even be running: blobs are immutable)
    let out_dir = tempdir("skopeo-out");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:{}/test:1", d.root.display(), p.plain))
        .arg(format!("dir:{}", out_dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    let cfg_id = d
        .images()
        .iter()
        .find(|i| i["RepoTags"][0] == format!("{}/test:1", p.plain))
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out_dir.join(cfg_id.trim_start_matches("sha256:")).exists(),
        "skopeo copied the config"
    );
    // rm moves the index with it
    assert!(d.docker(&["rmi", &format!("{}/test:1", p.plain)]).status.success());
    let refs = index_refs(&d.root);
    assert!(refs.iter().all(|r| !r.contains("/test")), "{refs:?}");
    assert_eq!(refs.len(), 2);
}

#[test]
fn a_damaged_database_is_rebuilt_from_the_layout_and_no_blob_is_lost() {
    let p = peers();
    let mut d = Depot::start(&[]);
    for r in ["test:1", "multiarch:1", "multi:1"] {
        assert!(d.docker(&["pull", &format!("{}/{r}", p.plain)]).status.success());
    }
    let before_tags = tags(&d);
    let before_blobs = d.blobs();
    let before_ids: Vec<String> = d
        .images()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .collect();
    assert!(d.sigterm().success(), "a tidy stop: everything is in depot.db itself");
    // cut the database in half, as a torn write or bad sector would
    let db = d.root.join("depot.db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    // serve refuses, saying what to do
    let mut serve = Command::new(bin());
    serve
        .args(["serve", "--data-root"])
        .arg(&d.root)
        .arg("--socket")
        .arg(&d.sock);
    let out = output_within(serve, 20);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("depot fsck --repair"), "{}", stderr(&out));
    let out = fsck(&d.root, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("database:"), "{}", stdout(&out));
    let out = fsck(&d.root, &["--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("database rebuilt from index.json: 3 images, 6 refs"),
        "{}",
        stdout(&out)
    );
    // what the layout does not hold is said, not lost silently
    assert!(
        stdout(&out).contains("lost: sessions and the download history (the damaged database is kept aside)"),
        "{}",
        stdout(&out)
    );
    assert!(fsck(&d.root, &[]).status.success(), "clean after the repair");
    d.restart();
    assert_eq!(tags(&d), before_tags);
    let mut ids: Vec<String> = d
        .images()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = before_ids.clone();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        d.blobs(),
        before_blobs,
        "no blob deleted as unreferenced after the rebuild"
    );
    // the rebuilt images are whole: a pull finds them up to date, an rm frees them
    let out = d.docker(&["pull", &format!("{}/test:1", p.plain)]);
    assert!(stdout(&out).contains("Image is up to date"), "{}", stdout(&out));
    assert!(d.docker(&["rmi", &format!("{}/multi:1", p.plain)]).status.success());
}

#[test]
fn a_lost_database_is_rebuilt_at_start() {
    let p = peers();
    let mut d = Depot::start(&[]);
    assert!(d.docker(&["pull", &format!("{}/test:1", p.plain)]).status.success());
    let before = (tags(&d), d.blobs());
    d.kill9();
    for f in ["depot.db", "depot.db-wal", "depot.db-shm"] {
        let _ = std::fs::remove_file(d.root.join(f));
    }
    d.restart();
    assert_eq!((tags(&d), d.blobs()), before);
    assert!(
        d.log_text().contains("rebuilt 1 images and 2 refs from index.json"),
        "{}",
        d.log_text()
    );
    assert!(
        d.log_text()
            .contains("depot.db was missing and is rebuilt from the data root: back: 1 images and 2 tags")
            && d.log_text().contains("lost: sessions and the download history"),
        "{}",
        d.log_text()
    );
    // a database rolled back (its WAL lost: the last transactions gone) is brought up to the layout
    assert!(d.docker(&["pull", &format!("{}/multi:1", p.plain)]).status.success());
    let before = (tags(&d), d.blobs());
    d.kill9();
    for f in ["depot.db-wal", "depot.db-shm"] {
        let _ = std::fs::remove_file(d.root.join(f));
    }
    d.restart();
    assert_eq!((tags(&d), d.blobs()), before, "nothing forgotten, no blob collected");
    // a store with blobs but no index.json: nothing is known, and nothing is deleted
    d.kill9();
    for f in ["depot.db", "depot.db-wal", "depot.db-shm", "index.json"] {
        let _ = std::fs::remove_file(d.root.join(f));
    }
    d.restart();
    d.restart();
    assert!(d.images().is_empty());
    assert_eq!(d.blobs(), before.1, "blobs a new database never saw are not collected");
}

#[test]
fn every_file_is_accounted_for_strays_and_orphans_go() {
    let p = peers();
    let mut d = Depot::start(&[]);
    assert!(d.docker(&["pull", &format!("{}/test:1", p.plain)]).status.success());
    d.kill9();
    // what a daemon killed a few milliseconds into a pull can leave
    let ingest = d.root.join("ingest");
    std::fs::write(ingest.join(".put-4242-0"), b"half a config").unwrap();
    let orphan = ingest.join("0".repeat(64));
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(d.root.join("blobs/sha256/leftover"), b"junk").unwrap();
    let out = fsck(&d.root, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for want in [
        ".put-4242-0",
        "blobs/sha256/leftover",
        &format!("orphan ingest {}", orphan.display()),
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    // the next start accounts for them by itself
    d.restart();
    d.kill9();
    let out = fsck(&d.root, &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0);
    // and fsck --repair does the same offline, and mends a stale index.json
    std::fs::write(ingest.join(".put-1-1"), b"x").unwrap();
    std::fs::write(d.root.join("index.json"), b"{\"schemaVersion\":2,\"manifests\":[]}").unwrap();
    let out = fsck(&d.root, &["--repair"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("index.json does not agree"), "{}", stdout(&out));
    assert!(fsck(&d.root, &[]).status.success());
    assert_eq!(index_refs(&d.root).len(), 2);
}
