//! save and load with the real docker CLI, skopeo and hostile archives: round trips keep ids and tags, layers
//! are checked against the config's diff_ids, a broken archive leaves no image and a healthy daemon.

mod common;

use common::*;
use std::process::Command;

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

fn ids(d: &Depot) -> Vec<String> {
    let mut v: Vec<String> = d
        .images()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn save_rmi_load_round_trip_and_skopeo_reads_the_archive() {
    let p = peers();
    let d = Depot::start(&[]);
    let (a, b) = (format!("{}/test:1", p.plain), format!("{}/multi:1", p.plain));
    ok(&d.docker(&["pull", "-q", &a]));
    ok(&d.docker(&["pull", "-q", &b]));
    let before = ids(&d);
    let dir = tempdir("save");
    let tar = dir.join("images.tar");
    ok(&d.docker(&["save", "-o", tar.to_str().unwrap(), &a, &b]));
    // another tool reads what depot wrote, in both of its layouts
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}:{a}", tar.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["config"]["Labels"]["org.example.test"], "1");
    let out = Command::new("skopeo")
        .args(["inspect"])
        .arg(format!("oci-archive:{}:1", tar.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&d.docker(&["rmi", &a, &b]));
    assert!(d.images().is_empty() && d.blobs().is_empty());
    let out = ok(&d.docker(&["load", "-i", tar.to_str().unwrap()]));
    assert_eq!(out, format!("Loaded image: {a}\nLoaded image: {b}\n"));
    assert_eq!(ids(&d), before, "the same image ids");
    d.blobs(); // every blob hashes to its name
               // loading again moves nothing and says the same
    let out = ok(&d.docker(&["load", "-i", tar.to_str().unwrap()]));
    assert_eq!(out, format!("Loaded image: {a}\nLoaded image: {b}\n"));
    // a tag that named another image moves to the loaded one
    ok(&d.docker(&["tag", &b, &a]));
    let out = ok(&d.docker(&["load", "-i", tar.to_str().unwrap()]));
    assert!(
        out.contains(&format!("The image {a} already exists, renaming the old one with ID")),
        "{out}"
    );
    let t = ok(&d.docker(&["image", "inspect", "--format", "{{.Id}}", &a]));
    assert!(before.contains(&t.trim().to_string()));
    // save by repository name saves its tags; an unknown tag is an error before any byte
    let out = d.docker(&["save", "-o", dir.join("x.tar").to_str().unwrap(), "nope:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("reference does not exist"), "{}", stderr(&out));
}

#[test]
fn load_oci_archives_with_zstd_layers_and_unnamed_images() {
    let p = peers();
    let d = Depot::start(&[]);
    let dir = tempdir("oci-load");
    let arch = dir.join("zstd.tar");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{}/test:1-zstd", p.plain))
        .arg(format!("oci-archive:{}:sk/zstd:1", arch.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ok(&d.docker(&["load", "-i", arch.to_str().unwrap()]));
    assert_eq!(out.trim(), "Loaded image: sk/zstd:1");
    let v = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"org.example.test\"}}",
        "sk/zstd:1",
    ]));
    assert_eq!(v.trim(), "1");
    // an OCI layout whose ref name is only a tag: loaded, unnamed
    let plain = dir.join("plain.tar");
    let st = Command::new("tar")
        .arg("cf")
        .arg(&plain)
        .arg("-C")
        .arg(p.images.join("oci-test"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(&d.docker(&["load", "-i", plain.to_str().unwrap()]));
    assert!(out.trim().starts_with("Loaded image ID: sha256:"), "{out}");
}

#[test]
fn broken_archives_leave_nothing_and_the_daemon_well() {
    let p = peers();
    let d = Depot::start(&[]);
    let a = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &a]));
    let dir = tempdir("bad-load");
    let tar = dir.join("good.tar");
    ok(&d.docker(&["save", "-o", tar.to_str().unwrap(), &a]));
    ok(&d.docker(&["rmi", &a]));
    // flip one byte in the middle of the (uncompressed) layer
    let mut bytes = std::fs::read(&tar).unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let (off, size) = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.raw_file_position(), e.size()))
        .max_by_key(|x| x.1)
        .unwrap();
    let at = (off + size / 2) as usize;
    bytes[at] ^= 0x55;
    let bad = dir.join("bad.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let out = d.docker(&["load", "-i", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid diffID for layer 0: expected"),
        "{}",
        stderr(&out)
    );
    assert!(d.images().is_empty(), "no image from a bad archive");
    assert!(
        d.blobs().is_empty(),
        "the bad layer never reached blobs/: {:?}",
        d.blobs()
    );
    for junk in [&b"not a tar at all"[..], &[0u8; 2048][..]] {
        std::fs::write(dir.join("junk.tar"), junk).unwrap();
        let out = d.docker(&["load", "-i", dir.join("junk.tar").to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(stderr(&out).contains("invalid archive"), "{}", stderr(&out));
    }
    assert_eq!(d.get("/_ping").0, 200);
    assert!(
        std::fs::read_dir(d.root.join("tmp")).unwrap().next().is_none(),
        "uploads are removed"
    );
    assert!(
        std::fs::read_dir(d.root.join("ingest")).unwrap().next().is_none(),
        "no temp blob left"
    );
}

#[test]
fn skopeo_docker_daemon_transport_both_ways() {
    let p = peers();
    let d = Depot::start(&[]);
    let host = format!("unix://{}", d.sock.display());
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", "--dest-daemon-host", &host])
        .arg(format!("docker://{}/multi:1", p.plain))
        .arg("docker-daemon:sk/multi:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(30, "the loaded image", || !d.images().is_empty());
    assert_eq!(d.images()[0]["RepoTags"][0], "sk/multi:1");
    let dir = tempdir("skopeo-daemon");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-daemon-host",
            &host,
            "docker-daemon:sk/multi:1",
        ])
        .arg(format!("oci:{}:x", dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // skopeo rewrites the config as OCI: compare what it says, the layers' diff_ids
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| std::fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    let (_, ours) = d.json("GET", "/images/sk/multi:1/json");
    assert_eq!(cfg["rootfs"]["diff_ids"], ours["RootFS"]["Layers"]);
}

#[test]
fn import_from_the_body_and_from_a_url() {
    use common::net::{Hostile, Reply};
    let d = Depot::start(&[]);
    let dir = tempdir("import");
    std::fs::create_dir_all(dir.join("root/etc")).unwrap();
    std::fs::write(dir.join("root/etc/motd"), "imported\n").unwrap();
    let tgz = dir.join("root.tgz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(dir.join("root"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(&d.docker(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        "-c",
        "ENV A=1",
        "-c",
        "EXPOSE 80",
        "-m",
        "my root",
        tgz.to_str().unwrap(),
        "imp/root:1",
    ]));
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let f = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Comment}}|{{.Config.Cmd}}|{{.Config.Env}}|{{len .RootFS.Layers}}",
        "imp/root:1",
    ]));
    assert_eq!(f.trim(), "my root|[/bin/sh]|[A=1]|1");
    // the same bytes from a URL (a small server of ours)
    let bytes = std::fs::read(&tgz).unwrap();
    let srv = Hostile::start(move |r| match r.path.as_str() {
        "/root.tgz" => Reply::ok(bytes.clone(), "application/gzip"),
        _ => Reply::status(404, "{}"),
    });
    let (s, _, b) = d.request(
        "POST",
        &format!(
            "/v1.47/images/create?fromSrc=http://{}/root.tgz&repo=imp/url&tag=2",
            srv.addr
        ),
        &[],
    );
    let text = String::from_utf8_lossy(&b).to_string();
    assert_eq!(s, 200);
    assert!(
        text.contains("Downloading from http://") && text.contains("\"status\":\"sha256:"),
        "{text}"
    );
    let same = |n: &str| ok(&d.docker(&["image", "inspect", "--format", "{{index .RootFS.Layers 0}}", n]));
    assert_eq!(same("imp/url:2"), same("imp/root:1"), "one layer, whatever the route");
    // what is not a tar, or a change docker does not know, is refused and leaves nothing
    let before = d.images().len();
    std::fs::write(dir.join("junk"), b"this is not a tarball at all, just some text").unwrap();
    let out = d.docker(&["import", dir.join("junk").to_str().unwrap(), "imp/junk:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a tar") || stderr(&out).contains("empty tar"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["import", "-c", "RUN rm -rf /", tgz.to_str().unwrap(), "imp/bad:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(d.images().len(), before);
}

/// A layer damaged on disk: every save of it fails loudly (the CLI's and the docker CLI's exit non-zero with
/// nothing under the name asked for, the HTTP stream is cut short), the blob leaves the store, and the next
/// pull fetches it again instead of saying the image is up to date.
#[test]
fn a_corrupt_layer_fails_the_save_loudly_and_the_next_pull_fetches_it() {
    let p = peers();
    let d = Depot::start(&[]);
    let image = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &image]));
    let layer = d.images_on_disk_layer();
    let good = std::fs::read(&layer).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&layer, &bad).unwrap();
    let work = tempdir("corrupt-save");
    // depot's own client: non-zero, no archive, no temporary file
    let out = work.join("out.tar");
    let o = d.cli(&["save", "-o", out.to_str().unwrap(), &image]);
    assert!(!o.status.success(), "depot save of a corrupt layer succeeded");
    assert!(stderr(&o).contains("broke off"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "left behind: {:?}",
        std::fs::read_dir(&work).unwrap().collect::<Vec<_>>()
    );
    // the blob left the store at once: put aside, not served again
    assert!(!layer.exists(), "the corrupt blob is still in the store");
    let aside = d
        .root
        .join("tmp")
        .join(format!("corrupt-{}", layer.file_name().unwrap().to_str().unwrap()));
    assert_eq!(std::fs::read(&aside).unwrap(), bad);
    assert!(d.log_text().contains("is corrupt"), "{}", d.log_text());
    // damaged again: the Engine API cuts its stream short, which curl and the docker CLI report
    std::fs::rename(&aside, &layer).unwrap();
    let o = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--unix-socket"])
        .arg(&d.sock)
        .arg(format!("http://d/images/{image}/get"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "curl took the cut stream for whole");
    assert!(!layer.exists());
    std::fs::rename(&aside, &layer).unwrap();
    let docker_out = work.join("docker.tar");
    let o = d.docker(&["save", "-o", docker_out.to_str().unwrap(), &image]);
    assert!(!o.status.success(), "docker save of a corrupt layer succeeded");
    // the next pull fetches the blob again: not "up to date"
    assert!(!layer.exists());
    let o = ok(&d.docker(&["pull", &image]));
    assert!(!o.contains("Image is up to date"), "{o}");
    assert_eq!(std::fs::read(&layer).unwrap(), good);
    // and the save works again
    ok(&d.cli(&["save", "-o", out.to_str().unwrap(), &image]));
    let list = Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    assert!(stdout(&list).lines().any(|l| l == "manifest.json"), "{}", stdout(&list));
}

/// A layer damaged on disk fails its push: what is sent is hashed on the way, the registry is left without the
/// blob, the blob leaves the store, and after the next pull fetches it the push works.
#[test]
fn a_corrupt_layer_fails_the_push_and_leaves_the_store() {
    let p = peers();
    let d = Depot::start(&[]);
    let image = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &image]));
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let repo = format!("corrupt-push-{run}/x");
    let dst = format!("{}/{repo}:1", p.basic);
    ok(&d.cli(&["tag", &image, &dst]));
    let layer = d.images_on_disk_layer();
    let good = std::fs::read(&layer).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&layer, &bad).unwrap();
    let o = d.cli(&["push", "--creds", "testuser:testpass", &dst]);
    assert!(
        !o.status.success(),
        "the push of a corrupt layer succeeded: {}",
        stdout(&o)
    );
    assert!(
        format!("{}{}", stdout(&o), stderr(&o)).contains("sha256:"),
        "{}",
        stderr(&o)
    );
    assert!(d.log_text().contains("is corrupt"), "{}", d.log_text());
    assert!(!layer.exists(), "the corrupt blob is still in the store");
    let aside = d
        .root
        .join("tmp")
        .join(format!("corrupt-{}", layer.file_name().unwrap().to_str().unwrap()));
    assert_eq!(std::fs::read(&aside).unwrap(), bad);
    let head = |digest: &str| {
        let o = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-I",
                "-u",
                "testuser:testpass",
            ])
            .arg(format!("http://{}/v2/{repo}/blobs/sha256:{digest}", p.basic))
            .output()
            .unwrap();
        stdout(&o)
    };
    let hex = layer.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(head(&hex), "404", "the registry got the damaged blob");
    // the pull fetches it again, and the push then sends it
    let o = ok(&d.docker(&["pull", &image]));
    assert!(!o.contains("Image is up to date"), "{o}");
    assert_eq!(std::fs::read(&layer).unwrap(), good);
    ok(&d.cli(&["push", "--creds", "testuser:testpass", &dst]));
    assert_eq!(head(&hex), "200");
}
