//! Offline bundles: `depot bundle create` writes images (one of them multi-platform), an LXC template and an
//! app's pins into one file that skopeo reads as `oci-archive:`; `depot bundle import` takes it into another
//! depot whole (same image ids and digests, the template, the pins), from the file or an unpacked directory,
//! writing no blob twice; a damaged or cut bundle leaves nothing visible and no bytes behind.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
    stdout(o)
}

fn lxc_args(p: &Peers) -> Vec<String> {
    vec!["--lxc-source".into(), format!("lab=lxc:http://{}/lxc", p.lxc_http)]
}

fn start(p: &Peers) -> Depot {
    let a = lxc_args(p);
    Depot::start(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

/// (RepoTags[0], Id, RepoDigests) of every image.
fn images(d: &Depot) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<_> = d
        .images()
        .iter()
        .map(|i| {
            let digests = i["RepoDigests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string());
            (
                i["RepoTags"][0].as_str().unwrap_or_default().to_string(),
                i["Id"].as_str().unwrap().to_string(),
                digests.collect(),
            )
        })
        .collect();
    v.sort();
    v
}

fn blob_files(d: &Depot) -> usize {
    std::fs::read_dir(d.root.join("blobs/sha256"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn a_bundle_carries_images_templates_and_pins_to_another_nas() {
    let p = peers();
    let a = start(&p);
    let single = format!("{}/test:1", p.plain);
    let multi = format!("{}/multiarch:1", p.plain);
    ok(&a.docker(&["pull", "-q", &single]));
    ok(&a.docker(&["pull", "-q", &multi]));
    ok(&a.cli(&["lxc", "pull", "--source", "lab", "busybox/1.36"]));
    let dir = tempdir("bundle");
    let file = dir.join("b.tar");
    let f = file.to_str().unwrap();
    let template = "busybox/1.36/amd64/default";
    ok(&a.cli(&[
        "bundle", "create", "-o", f, "--owner", "app1", "--lxc", template, &single, &multi,
    ]));

    // skopeo reads it as an oci-archive, each image by its name: an independent reader of the format
    for r in [&single, &multi] {
        let o = Command::new("skopeo")
            .args(["inspect", "--override-arch", "amd64"])
            .arg(format!("oci-archive:{f}:{r}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "skopeo inspect {r}: {}", stderr(&o));
    }
    let copied = dir.join("copied");
    let o = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci-archive:{f}:{single}"))
        .arg(format!("dir:{}", copied.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));

    // into another NAS: the same images (ids and digests), the template, the pins
    let b = start(&p);
    let out = ok(&b.cli(&["bundle", "import", f]));
    assert!(out.contains("imported"), "{out}");
    assert_eq!(images(&b), images(&a));
    let tl = ok(&b.cli(&["lxc", "ls"]));
    assert!(tl.contains(template), "{tl}");
    let (_, pins) = b.json("GET", "/api/v1/pins?owner=app1");
    let mut targets: Vec<String> = pins
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["target"].as_str().unwrap().to_string())
        .collect();
    targets.sort();
    assert_eq!(targets.len(), 3, "{pins}");
    assert!(targets.contains(&format!("lxc:{template}")), "{pins}");
    // the pinned images stay through a prune of everything
    ok(&b.docker(&["image", "prune", "-a", "-f"]));
    assert_eq!(images(&b).len(), 2);
    // what is there is not written again
    let o = b.cli(&["bundle", "import", "--json", f]);
    let last: serde_json::Value = serde_json::from_str(ok(&o).lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "imported", "{last}");
    assert_eq!(last["blobs_written"], 0, "{last}");
    assert!(last["blobs_present"].as_u64().unwrap() >= 8, "{last}");
    // and an unpacked layout (a directory on a USB volume) imports the same
    let unpacked = dir.join("layout");
    std::fs::create_dir_all(&unpacked).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap()
        .success());
    let c = start(&p);
    ok(&c.cli(&["bundle", "import", unpacked.to_str().unwrap()]));
    assert_eq!(images(&c), images(&a));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flip one byte of the member whose name ends in `hex` inside the tar `file`.
fn damage(file: &Path, hex: &str) {
    let mut bytes = std::fs::read(file).unwrap();
    let mut a = tar::Archive::new(&bytes[..]);
    let mut at = None;
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_string_lossy().ends_with(hex) {
            at = Some(e.raw_file_position() as usize + 10);
        }
    }
    let at = at.expect("the member is in the bundle");
    bytes[at] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_damaged_or_cut_bundle_leaves_nothing() {
    let p = peers();
    let a = start(&p);
    let multi = format!("{}/multi:1", p.plain);
    ok(&a.docker(&["pull", "-q", &multi]));
    let dir = tempdir("bundle-bad");
    let file = dir.join("b.tar");
    ok(&a.cli(&[
        "bundle",
        "create",
        "-o",
        file.to_str().unwrap(),
        "--owner",
        "app1",
        &multi,
    ]));
    let layer = a.json("GET", &format!("/images/{}/json", multi.replace('/', "%2F"))).1["RootFS"]["Layers"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(layer.starts_with("sha256:"));
    // a layer's bytes damaged: its blob (the largest member) does not hash to its name
    let bytes = std::fs::read(&file).unwrap();
    let largest = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .max_by_key(|e| e.size())
        .map(|e| {
            e.path()
                .unwrap()
                .to_string_lossy()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let damaged = dir.join("damaged.tar");
    std::fs::copy(&file, &damaged).unwrap();
    damage(&damaged, &largest);
    let b = start(&p);
    let o = b.cli(&["bundle", "import", damaged.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("digest"), "{}", stderr(&o));
    assert!(images(&b).is_empty(), "a damaged bundle shows nothing");
    assert_eq!(blob_files(&b), 0, "and leaves no blob behind");
    let (_, pins) = b.json("GET", "/api/v1/pins?owner=app1");
    assert!(pins.as_array().unwrap().is_empty(), "{pins}");
    // cut short: every blob that came in is whole, but index.json never came
    let cut = dir.join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = b.cli(&["bundle", "import", cut.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        images(&b).is_empty() && blob_files(&b) == 0,
        "a cut bundle leaves nothing"
    );
    // not a bundle at all
    let junk = dir.join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let o = b.cli(&["bundle", "import", junk.to_str().unwrap()]);
    assert!(!o.status.success() && images(&b).is_empty());
    // the whole one still goes in afterwards
    ok(&b.cli(&["bundle", "import", file.to_str().unwrap()]));
    assert_eq!(images(&b), images(&a));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bundle of `images` (pulled first) from a depot of its own, written to `file`.
fn bundle_of(p: &Peers, images: &[&str], file: &Path) {
    let a = start(p);
    for i in images {
        ok(&a.docker(&["pull", "-q", i]));
    }
    let mut args = vec!["bundle", "create", "-o", file.to_str().unwrap()];
    args.extend_from_slice(images);
    ok(&a.cli(&args));
}

/// A full volume mid-import fails with its own exit code, shows nothing and leaves no bytes; with room made,
/// the same bundle goes in.
#[test]
fn a_full_volume_mid_import_leaves_nothing_and_frees_its_bytes() {
    let p = peers();
    let dir = tempdir("bundle-full");
    let file = dir.join("b.tar");
    bundle_of(
        &p,
        &[&format!("{}/multi:1", p.plain), &format!("{}/test:1", p.plain)],
        &file,
    );
    let fs = Tmpfs::mount("bundle-full", "16m");
    let b = Depot::start_at(fs.0.join("root"), &[]);
    // leave about 1.5 MB free: the bundle's first blobs fit, the rest do not
    let free = nix::sys::statvfs::statvfs(&fs.0).unwrap();
    let free = free.blocks_available() * free.fragment_size();
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![1u8; (free - 1_500_000) as usize]).unwrap();
    let o = b.cli(&["bundle", "import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "no space: {}\n{}", stdout(&o), stderr(&o));
    assert!(images(&b).is_empty());
    assert_eq!(blob_files(&b), 0, "the blobs it wrote are collected");
    std::fs::remove_file(&filler).unwrap();
    ok(&b.cli(&["bundle", "import", file.to_str().unwrap()]));
    assert_eq!(images(&b).len(), 2);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A daemon killed mid-import shows nothing of the bundle when it starts again, and its start collects what the
/// import had written.
#[test]
fn a_crash_mid_import_leaves_no_half_image() {
    let p = peers();
    let dir = tempdir("bundle-crash");
    let file = dir.join("b.tar");
    bundle_of(&p, &[&format!("{}/multi:1", p.plain)], &file);
    let mut b = start(&p);
    // the upload trickles in, so that the daemon is killed while blobs are arriving
    let mut up = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "--limit-rate",
            "300k",
            "--unix-socket",
        ])
        .arg(&b.sock)
        .arg("-T")
        .arg(&file)
        .args([
            "-H",
            "content-type: application/x-tar",
            "http://depot/api/v1/bundle/import",
        ])
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while blob_files(&b) == 0 && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(blob_files(&b) > 0, "a blob came in before the kill");
    b.restart();
    let _ = up.kill();
    let _ = up.wait();
    assert!(images(&b).is_empty(), "no half image");
    let (_, pins) = b.json("GET", "/api/v1/pins");
    assert!(pins.as_array().unwrap().is_empty());
    assert_eq!(blob_files(&b), 0, "the start collected what the import wrote");
    let _ = std::fs::remove_dir_all(&dir);
}
