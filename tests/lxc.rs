//! LXC templates against real servers: nginx serving an lxc-download tree and a simplestreams tree built by
//! tests/peers/lxc.sh with GNU tar. List, download (killed mid-way and resumed), keep, unpack — and the
//! unpacked tree compared with what GNU tar extracts from the same archive. Docker → LXC compared with
//! `umoci unpack` of the same image.

mod common;

use common::{peers, stderr, stdout, tempdir, wait_for, Depot};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sources(p: &common::Peers) -> Vec<String> {
    vec![
        "--lxc-source".into(),
        format!("lab=lxc:http://{}/lxc", p.lxc_http),
        "--lxc-source".into(),
        format!("ss=simplestreams:http://{}/ss", p.lxc_http),
    ]
}

fn start(extra: &[&str]) -> Depot {
    let p = peers();
    let mut args = sources(&p);
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Depot::start(&a)
}

fn ok(o: &std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}\n{}", stderr(o), stdout(o));
    stdout(o)
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: a NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    names.truncate(n as usize);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let k = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// Everything about one path of a tree that an unpack must get right.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    /// file content's sha256, link target, or device numbers
    what: String,
    xattrs: BTreeMap<String, Vec<u8>>,
    /// other paths of the same inode (regular files), sorted
    links: Vec<String>,
}

/// Walk `root`: relative path → node. `uid_shift` is subtracted from owners (a shifted unpack).
fn tree(root: &Path, uid_shift: u32, with_root: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let m = std::fs::symlink_metadata(&full).unwrap();
        let ft = m.file_type();
        let name = format!("./{}", rel.display());
        let (kind, what) = if ft.is_dir() {
            for e in std::fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
            ("dir", String::new())
        } else if ft.is_symlink() {
            ("symlink", std::fs::read_link(&full).unwrap().display().to_string())
        } else if ft.is_file() {
            if m.nlink() > 1 {
                inodes.entry((m.dev(), m.ino())).or_default().push(name.clone());
            }
            ("file", common::sha256_file(&full))
        } else if ft.is_char_device() {
            ("char", format!("{}", m.rdev()))
        } else if ft.is_block_device() {
            ("block", format!("{}", m.rdev()))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        if rel.as_os_str().is_empty() && !with_root {
            continue;
        }
        out.insert(
            name,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid() - uid_shift,
                gid: m.gid() - uid_shift,
                mtime: m.mtime(),
                what,
                xattrs: xattrs(&full),
                links: Vec::new(),
            },
        );
    }
    for group in inodes.values() {
        let mut g = group.clone();
        g.sort();
        for p in group {
            out.get_mut(p).unwrap().links = g.clone();
        }
    }
    out
}

/// Assert two trees are the same, naming the first differences.
fn same_trees(ours: &BTreeMap<String, Node>, theirs: &BTreeMap<String, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in theirs {
        match ours.get(k) {
            None => diffs.push(format!("missing {k}")),
            Some(o) if o != v => diffs.push(format!("{k}: ours {o:?}\n   theirs {v:?}")),
            _ => {}
        }
    }
    for k in ours.keys().filter(|k| !theirs.contains_key(*k)) {
        diffs.push(format!("extra {k}"));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn gnu_tar_extract(archive: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    let o = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpJf"])
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .output()
        .unwrap();
    assert!(o.status.success(), "GNU tar: {}", stderr(&o));
}

fn status_of(d: &Depot, id: i64) -> serde_json::Value {
    let (s, v) = d.json("GET", "/api/v1/image/downloadstatus");
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"].as_i64() == Some(id))
        .cloned()
        .unwrap_or_else(|| panic!("download {id} not listed: {v}"))
}

#[test]
fn sources_list_for_this_arch_and_all() {
    let d = start(&[]);
    let out = ok(&d.cli(&["lxc", "sources"]), "sources");
    assert!(
        out.contains("lab") && out.contains("ss") && out.contains("catalog"),
        "{out}"
    );
    let lab_line = out.lines().find(|l| l.starts_with("lab")).unwrap();
    assert!(lab_line.contains("fetched"), "{lab_line}");
    let avail = ok(&d.cli(&["lxc", "ls", "--available"]), "ls -a");
    assert!(avail.contains("busybox/1.36/amd64/default"), "{avail}");
    assert!(!avail.contains("arm64"), "only this NAS's architecture: {avail}");
    let all = ok(&d.cli(&["lxc", "ls", "-a", "--arch", "all"]), "ls -a all");
    assert!(all.contains("busybox/1.36/arm64/default"), "{all}");
    let ss = ok(&d.cli(&["lxc", "ls", "-a", "--source", "ss"]), "ls ss");
    let line = ss.lines().find(|l| l.contains("busybox/1.36")).unwrap();
    assert!(
        line.contains("ss") && !line.contains('?'),
        "simplestreams publishes the size: {line}"
    );
    let bad = d.cli(&["lxc", "ls", "-a", "--source", "nope"]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("no LXC source"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn an_index_is_cached_and_used_when_the_server_is_unreachable() {
    let p = peers();
    let mut d = start(&[]);
    ok(&d.cli(&["lxc", "sources"]), "sources");
    d.keep();
    let root = d.root.clone();
    d.kill9();
    drop(d);
    // the same source names, their servers gone: a port that takes each connection and drops it, counted
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = gone.local_addr().unwrap().port();
    gone.set_nonblocking(true).unwrap();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let (asked, stop) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < until {
                match gone.accept() {
                    Ok((c, _)) => {
                        asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        drop(c);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        })
    };
    let d = Depot::start_at(
        root,
        &[
            "--lxc-source",
            &format!("lab=lxc:http://127.0.0.1:{dead}/lxc"),
            "--lxc-source",
            &format!("ss=simplestreams:http://127.0.0.1:{dead}/ss"),
        ],
    );
    let out = ok(&d.cli(&["lxc", "sources"]), "sources offline");
    let lab = out.lines().find(|l| l.starts_with("lab")).unwrap();
    assert!(lab.contains("cached"), "{lab}");
    let avail = ok(&d.cli(&["lxc", "ls", "-a", "--source", "lab"]), "ls offline");
    assert!(avail.contains("busybox/1.36/amd64/default"), "{avail}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    server.join().unwrap();
    // each of the two servers was tried twice (one retry for a blip) and then left alone for a while: not the
    // transfers' five attempts with seconds of backoff while the owner waits for a list
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 4);
    let _ = p;
}

#[test]
fn pull_unpack_equals_gnu_tar_with_config_and_substitutions() {
    let p = peers();
    let d = start(&[]);
    let out = ok(&d.cli(&["lxc", "pull", "--source", "lab", "busybox/1.36"]), "pull");
    assert!(out.contains("complete"), "{out}");
    let ls = ok(&d.cli(&["lxc", "ls"]), "ls");
    assert!(
        ls.contains("busybox/1.36/amd64/default") && ls.contains("20261201_00:00"),
        "{ls}"
    );
    // verified against the published SHA256SUMS: the blob is the rootfs's own sha256
    let want = common::sha256_file(&p.lxc_dir.join("busybox/rootfs.tar.xz"));
    assert!(
        d.blobs().contains(&format!("sha256:{want}")),
        "rootfs blob {want} in {:?}",
        d.blobs()
    );
    let work = tempdir("lxc-unpack");
    let dest = work.join("web");
    let out = ok(
        &d.cli(&["lxc", "unpack", "busybox/1.36", dest.to_str().unwrap()]),
        "unpack",
    );
    assert!(out.contains("You just created a busybox container"), "{out}");
    let reference = work.join("gnu");
    gnu_tar_extract(&p.lxc_dir.join("busybox/rootfs.tar.xz"), &reference);
    // the templates are substituted in ours; undo that for the comparison of everything else
    for f in ["etc/hostname", "etc/hosts"] {
        let t = std::fs::read_to_string(dest.join("rootfs").join(f)).unwrap();
        assert!(t.contains("web") && !t.contains("LXC_NAME"), "{f}: {t}");
        assert_eq!(
            t.replace("web", "LXC_NAME"),
            std::fs::read_to_string(reference.join(f)).unwrap()
        );
    }
    let mut ours = tree(&dest.join("rootfs"), 0, true);
    let theirs = tree(&reference, 0, true);
    for f in ["./etc/hostname", "./etc/hosts"] {
        let (o, t) = (ours.get_mut(f).unwrap(), &theirs[f]);
        o.what = t.what.clone();
        o.mtime = t.mtime;
    }
    same_trees(&ours, &theirs, "busybox template");
    // what the fixture holds, so that the comparison is of something
    let n = &theirs["./usr/bin/ping"];
    assert!(n.xattrs.contains_key("security.capability"), "{n:?}");
    assert_eq!(theirs["./bin/su"].mode, 0o4755);
    assert_eq!(theirs["./dev/console"].kind, "char");
    assert_eq!(theirs["./usr/lib/one"].links.len(), 3);
    assert_eq!(theirs["./home/user/file"].uid, 1000);
    let sparse = std::fs::metadata(dest.join("rootfs/var/log/lastlog")).unwrap();
    assert_eq!(sparse.len(), 64 << 20);
    assert!(sparse.blocks() * 512 < 1 << 20, "written with holes");
    let config = std::fs::read_to_string(dest.join("config")).unwrap();
    for want in [
        "lxc.include = /usr/share/lxc/config/common.conf",
        "lxc.hook.start-host = /usr/share/lxc/hooks/x",
        &format!("lxc.rootfs.path = dir:{}", dest.join("rootfs").display()),
        "lxc.uts.name = web",
        &format!("lxc.mount.fstab = {}/fstab", dest.display()),
    ] {
        assert!(config.contains(want), "{want:?} not in\n{config}");
    }
    assert!(dest.join("fstab").exists());
    // the hostile `templates` entry reached nothing
    assert!(!work.join("outside").exists() && !dest.join("outside").exists());
    // an existing destination is refused, and left as it was
    let again = d.cli(&["lxc", "unpack", "busybox/1.36", dest.to_str().unwrap()]);
    assert!(
        !again.status.success() && stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn an_unprivileged_unpack_shifts_owners_and_skips_devices() {
    let p = peers();
    let d = start(&[]);
    ok(&d.cli(&["lxc", "pull", "busybox/1.36/amd64/default"]), "pull");
    let work = tempdir("lxc-shift");
    let dest = work.join("u1");
    let out = ok(
        &d.cli(&[
            "lxc",
            "unpack",
            "--shift",
            "100000:100000:65536",
            "busybox/1.36",
            dest.to_str().unwrap(),
        ]),
        "unpack shifted",
    );
    assert!(out.contains("devices"), "{out}");
    let ours = tree(&dest.join("rootfs"), 100_000, false);
    assert_eq!(ours["./home/user/file"].uid, 1000, "shifted by 100000");
    assert_eq!(ours["./etc/motd"].gid, 100);
    for dev in ["./dev/console", "./dev/null", "./dev/loop0"] {
        assert!(!ours.contains_key(dev), "{dev} is in excludes-user");
    }
    let config = std::fs::read_to_string(dest.join("config")).unwrap();
    assert!(config.contains("userns.conf"), "the unprivileged config: {config}");
    let reference = work.join("gnu");
    gnu_tar_extract(&p.lxc_dir.join("busybox/rootfs.tar.xz"), &reference);
    let theirs = tree(&reference, 0, false);
    assert_eq!(ours["./usr/bin/ping"].xattrs, theirs["./usr/bin/ping"].xattrs);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn simplestreams_and_sums_and_sizes() {
    let p = peers();
    let d = start(&[]);
    // simplestreams: sha256 and size from images.json
    ok(&d.cli(&["lxc", "pull", "--source", "ss", "busybox/1.36"]), "pull ss");
    let (s, v) = d.json("GET", "/api/v1/image/lxc/busybox/1.36/amd64/default/inspect");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["source"], "ss");
    assert_eq!(
        v["rootfs"]["digest"],
        format!(
            "sha256:{}",
            common::sha256_file(&p.lxc_dir.join("busybox/rootfs.tar.xz"))
        )
    );
    assert_eq!(v["meta"]["templates"][0], "/etc/hostname", "{v}");
    // no SHA256SUMS: the size is checked, the digest computed
    let out = ok(&d.cli(&["lxc", "pull", "busybox/nosums"]), "pull nosums");
    assert!(out.contains("complete"), "{out}");
    // a SHA256SUMS that does not match: nothing kept, nothing left
    let before = d.blobs();
    let bad = d.cli(&["lxc", "pull", "busybox/badsum"]);
    assert!(!bad.status.success(), "{}", stdout(&bad));
    assert!(
        stderr(&bad).contains("mismatch") || stderr(&bad).contains("digest"),
        "{}",
        stderr(&bad)
    );
    let ls = ok(&d.cli(&["lxc", "ls"]), "ls");
    assert!(!ls.contains("badsum"), "{ls}");
    assert_eq!(d.blobs(), before, "no blob of the bad download");
    assert!(d.ingests().is_empty(), "{:?}", d.ingests());
    // the station's list and downloadstatus show templates as type lxc
    let (_, list) = d.json("GET", "/api/v1/image?category=local&type=lxc");
    let names: Vec<String> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}/{}", r["name"].as_str().unwrap(), r["tags"][0].as_str().unwrap()))
        .collect();
    assert!(names.contains(&"busybox/nosums/amd64/default".to_string()), "{names:?}");
    let (_, st) = d.json("GET", "/api/v1/image/downloadstatus");
    let failed = st
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "busybox/badsum/amd64")
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(
        (failed["type"].as_str(), failed["status"].as_str()),
        (Some("lxc"), Some("failed"))
    );
    // delete frees the blobs nothing else needs
    let rm = ok(&d.cli(&["lxc", "rm", "busybox/nosums"]), "rm");
    assert!(rm.contains("Deleted"), "{rm}");
    let (s, _) = d.json("GET", "/api/v1/image/lxc/busybox/nosums/amd64/default/inspect");
    assert_eq!(s, 404);
    let again = d.cli(&["lxc", "rm", "busybox/nosums"]);
    assert!(!again.status.success());
}

/// Bytes nginx sent for `path`, from its access log.
fn served(p: &common::Peers, path: &str) -> u64 {
    std::fs::read_to_string(p.lxc_dir.join("nginx/bytes.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(path))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_download_killed_mid_way_resumes_from_its_bytes() {
    let p = peers();
    let path = "/lxc/images/bigbox/1/amd64/default/20261201_00:00/rootfs.tar.xz";
    let size = std::fs::metadata(p.lxc_dir.join("bigbox/rootfs.tar.xz")).unwrap().len();
    let before = served(&p, path);
    let mut d = start(&["--bandwidth-limit", "4M"]);
    let (s, v) = d.json("POST", "/api/v1/image/lab/lxc/bigbox/1/amd64/default/download");
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_i64().unwrap();
    wait_for(60, "half of the rootfs", || {
        status_of(&d, id)["bytes_done"].as_u64().unwrap_or(0) > size / 2
    });
    let st = status_of(&d, id);
    assert_eq!(st["type"], "lxc");
    assert!(st["percent"].as_f64().unwrap() > 0.0, "{st}");
    d.restart(); // SIGKILL, then the same daemon again: it resumes by itself
    wait_for(120, "the resumed download to complete", || {
        status_of(&d, id)["status"] == "complete"
    });
    let sent = served(&p, path) - before;
    let ratio = sent as f64 / size as f64;
    eprintln!("bigbox: {sent} bytes served for a {size}-byte rootfs ({ratio:.3}x)");
    assert!(
        ratio < 1.5,
        "a resume from the bytes on disk, not from zero: {ratio:.3}x"
    );
    assert!(d.log_text().contains("resuming LXC download"));
    let ls = ok(&d.cli(&["lxc", "ls"]), "ls");
    assert!(ls.contains("bigbox/1/amd64/default"), "{ls}");
    let work = tempdir("lxc-big");
    ok(
        &d.cli(&["lxc", "unpack", "bigbox/1", work.join("c").to_str().unwrap()]),
        "unpack",
    );
    assert_eq!(
        std::fs::metadata(work.join("c/rootfs/opt/noise")).unwrap().len(),
        24 << 20
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_paused_template_download_stays_paused_across_a_restart() {
    let mut d = start(&["--bandwidth-limit", "2M"]);
    let (s, v) = d.json("POST", "/api/v1/image/lab/lxc/bigbox/1/amd64/default/download");
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_i64().unwrap();
    wait_for(30, "some bytes", || {
        status_of(&d, id)["bytes_done"].as_u64().unwrap_or(0) > 1 << 20
    });
    let (s, v) = d.json("PUT", &format!("/api/v1/image/downloads/{id}/pause"));
    assert_eq!(s, 200, "{v}");
    wait_for(10, "paused", || status_of(&d, id)["status"] == "paused");
    d.restart();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(status_of(&d, id)["status"], "paused", "a pause holds across a restart");
    let (s, v) = d.json("PUT", &format!("/api/v1/image/downloads/{id}/resume"));
    assert_eq!(s, 200, "{v}");
    wait_for(10, "running again", || status_of(&d, id)["status"] == "downloading");
    let (s, v) = d.json("DELETE", &format!("/api/v1/image/downloads/{id}"));
    assert_eq!(s, 200, "{v}");
    wait_for(10, "cancelled", || status_of(&d, id)["status"] == "failed");
    assert!(status_of(&d, id)["message"].as_str().unwrap().contains("cancelled"));
}

#[test]
fn a_debootstrap_debian_rootfs_unpacks_as_gnu_tar_does() {
    let p = peers();
    let Some(debian) = p.debian_rootfs.clone() else {
        panic!("tests/peers/lxc.sh could not build the debootstrap rootfs on this machine (see its log)");
    };
    let d = start(&[]);
    ok(
        &d.cli(&["lxc", "pull", "--source", "lab", "debian/bookworm"]),
        "pull debian",
    );
    let work = tempdir("lxc-debian");
    let dest = work.join("deb");
    ok(
        &d.cli(&["lxc", "unpack", "debian/bookworm", dest.to_str().unwrap()]),
        "unpack",
    );
    let reference = work.join("gnu");
    gnu_tar_extract(&debian, &reference);
    let ours = tree(&dest.join("rootfs"), 0, true);
    let theirs = tree(&reference, 0, true);
    assert!(theirs.len() > 3000, "a real rootfs: {} paths", theirs.len());
    same_trees(&ours, &theirs, "debootstrap rootfs");
    let _ = std::fs::remove_dir_all(&work);
}

/// The station's event log, each message's JSON.
fn station_events(d: &Depot) -> Vec<serde_json::Value> {
    let (s, v) = d.json("GET", "/api/v1/event");
    assert_eq!(s, 200, "{v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m.as_str().unwrap().splitn(4, ':').nth(3).unwrap()).unwrap())
        .collect()
}

#[test]
fn templates_pulled_failed_unpacked_converted_and_deleted_are_in_the_event_log_not_in_dockers() {
    let p = peers();
    let d = start(&[]);
    ok(&d.cli(&["lxc", "pull", "--source", "lab", "busybox/1.36"]), "pull");
    let bad = d.cli(&["lxc", "pull", "busybox/badsum"]);
    assert!(!bad.status.success(), "{}", stdout(&bad));
    let work = tempdir("lxc-events");
    let dest = work.join("c1");
    ok(
        &d.cli(&["lxc", "unpack", "busybox/1.36", dest.to_str().unwrap()]),
        "unpack",
    );
    let image = format!("{}/test:1", p.plain);
    let (s, msgs) = d.pull_api(&format!("fromImage={image}"), None);
    assert_eq!(s, 200, "{msgs:?}");
    ok(&d.cli(&["lxc", "convert", &image]), "convert");
    // a template an app pinned stays until the app lets it go
    ok(&d.cli(&["pin", "add", "app1", "lxc:busybox/1.36/amd64/default"]), "pin");
    let refused = d.cli(&["lxc", "rm", "busybox/1.36"]);
    assert!(
        !refused.status.success() && stderr(&refused).contains("pinned by app1"),
        "{}",
        stderr(&refused)
    );
    ok(&d.cli(&["pin", "rm", "app1"]), "unpin");
    ok(&d.cli(&["lxc", "rm", "busybox/1.36"]), "rm");
    let ev = station_events(&d);
    let find = |action: &str, state: &str| {
        ev.iter()
            .find(|e| e["type"] == "lxc" && e["action"] == action && e["state"] == state)
            .cloned()
            .unwrap_or_else(|| panic!("no lxc {action} {state} in {ev:?}"))
    };
    let pulled = find("download", "success");
    assert_eq!(
        (&pulled["name"], &pulled["tag"], &pulled["repository"]),
        (&"busybox/1.36/amd64".into(), &"default".into(), &"lab".into())
    );
    let failed = find("download", "error");
    assert_eq!(failed["name"], "busybox/badsum/amd64");
    assert!(!failed["message"].as_str().unwrap().is_empty(), "{failed}");
    let unpacked = find("unpack", "success");
    assert_eq!(unpacked["path"], dest.to_str().unwrap());
    let converted = find("convert", "success");
    assert_eq!(converted["from"], image);
    assert_eq!(converted["name"], "test/1/amd64");
    assert_eq!(find("delete", "success")["name"], "busybox/1.36/amd64");
    // dockerd has no templates: the Engine API's /events leaves them out, and keeps the image pull
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let (s, body) = d.get(&format!("/events?since=0&until={now}"));
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("\"pull\""), "{text}");
    assert!(!text.contains("template"), "{text}");
}

#[test]
fn a_docker_image_becomes_a_template_equal_to_umoci_unpack() {
    let p = peers();
    let d = start(&[]);
    let image = format!("{}/multi:1", p.plain);
    let (s, msgs) = d.pull_api(&format!("fromImage={image}"), None);
    assert_eq!(s, 200, "{msgs:?}");
    let out = ok(&d.cli(&["lxc", "convert", &image]), "convert");
    assert!(out.contains("multi/1/amd64/docker"), "{out}");
    let (s, v) = d.json("GET", "/api/v1/image/lxc/multi/1/amd64/docker/inspect");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["source"], format!("docker:{image}"));
    let work = tempdir("lxc-convert");
    let dest = work.join("m");
    ok(
        &d.cli(&["lxc", "unpack", "multi/1/amd64/docker", dest.to_str().unwrap()]),
        "unpack",
    );
    let config = std::fs::read_to_string(dest.join("config")).unwrap();
    assert!(
        config.contains("lxc.init.cmd") || config.contains("lxc.environment"),
        "{config}"
    );
    // umoci's view of the same image
    let layout = work.join("oci");
    let o = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &format!("docker://{image}")])
        .arg(format!("oci:{}:multi", layout.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo: {}", stderr(&o));
    let bundle = work.join("bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:multi", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci: {}", stderr(&o));
    let ours = tree(&dest.join("rootfs"), 0, false);
    let theirs = tree(&bundle.join("rootfs"), 0, false);
    assert!(theirs.len() > 5, "{theirs:?}");
    same_trees(&ours, &theirs, "flattened multi:1");
    // the same image again replaces the template, and the old blobs are not kept twice
    ok(
        &d.cli(&["lxc", "convert", "--name", "multi/1", &image]),
        "convert again",
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// A local user swaps a directory inside the allowed ones with a symlink to elsewhere, in a loop, while the
/// owner's page exports images and unpacks templates into it: no write ever lands outside. Both ways of
/// holding the directory: openat2 (this kernel) and the O_NOFOLLOW walk of older kernels (QTS's).
#[test]
fn racing_symlink_swaps_never_lead_an_export_or_an_unpack_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let p = peers();
    for walk in [false, true] {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let mut args = sources(&p);
        args.extend(["--tcp".to_string(), addr.clone()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: &[(&str, &str)] = if walk { &[("DEPOT_NO_OPENAT2", "1")] } else { &[] };
        let d = Depot::start_env(&a, env);
        ok(&d.cli(&["lxc", "pull", "--source", "lab", "busybox/1.36"]), "pull");
        let (s, _) = d.pull_api(&format!("fromImage={}/test&tag=1", p.plain), None);
        assert_eq!(s, 200);
        // the owner logs in; the first unpack into the default containers directory works at once
        let jar = d.root.with_extension("jar");
        let jar = jar.to_str().unwrap().to_string();
        let pw = std::fs::read_to_string(d.root.join("admin-password")).unwrap();
        let (s, body) = common::curl(
            &format!("http://{addr}/api/v1/login"),
            &[
                "-c",
                &jar,
                "--data-urlencode",
                "username=admin",
                "--data-urlencode",
                &format!("password={}", pw.trim()),
            ],
        );
        assert_eq!(s, 200, "{body}");
        let call = |path: &str, body: serde_json::Value| {
            common::curl(
                &format!("http://{addr}{path}"),
                &[
                    "-b",
                    &jar,
                    "-H",
                    "Content-Type: application/json",
                    "--data",
                    &body.to_string(),
                ],
            )
        };
        let first = d.root.join("containers/first");
        let (s, body) = call(
            "/api/v1/image/lxc/busybox/1.36/unpack",
            serde_json::json!({"dest": first}),
        );
        assert_eq!(s, 200, "{body}");
        assert!(first.join("rootfs/bin").exists());
        // the racing loop: race/ and the symlink racelink → outside/ trade places all the time
        let outside = d.root.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        for dir in ["containers", "exports"] {
            std::fs::create_dir_all(d.root.join(dir).join("race")).unwrap();
            std::os::unix::fs::symlink(&outside, d.root.join(dir).join("racelink")).unwrap();
        }
        let stop = AtomicBool::new(false);
        let (swaps, codes) = std::thread::scope(|s| {
            let swapper = s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for dir in ["containers", "exports"] {
                        let base = d.root.join(dir);
                        nix::fcntl::renameat2(
                            None,
                            &base.join("race"),
                            None,
                            &base.join("racelink"),
                            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                        )
                        .unwrap();
                        n += 1;
                    }
                }
                n
            });
            let mut codes = std::collections::BTreeMap::<u16, usize>::new();
            for i in 0..100 {
                let dest = d.root.join(format!("containers/race/c{i}"));
                let (s, _) = call(
                    "/api/v1/image/lxc/busybox/1.36/unpack",
                    serde_json::json!({"dest": dest}),
                );
                *codes.entry(s).or_default() += 1;
                let path = d.root.join(format!("exports/race/e{i}.tar"));
                let (s, _) = call(
                    "/api/v1/background/image_export",
                    serde_json::json!({"image": format!("{}/test", p.plain), "tag": "1", "path": path}),
                );
                *codes.entry(s).or_default() += 1;
            }
            // the exports run as tasks: wait until none runs
            common::wait_for(120, "the exports to end", || {
                let (_, body) = common::curl(&format!("http://{addr}/api/v1/background/image_export"), &["-b", &jar]);
                !body.contains("\"running\"") && !body.contains("\"waiting\"")
            });
            stop.store(true, Ordering::Relaxed);
            (swapper.join().unwrap(), codes)
        });
        let escaped: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let inside: usize = ["containers", "exports"]
            .iter()
            .map(|dir| {
                let race = d.root.join(dir).join("race");
                let race = if race.symlink_metadata().unwrap().is_dir() {
                    race
                } else {
                    d.root.join(dir).join("racelink")
                };
                std::fs::read_dir(race).unwrap().count()
            })
            .sum();
        eprintln!(
            "{}: {swaps} swaps during 200 requests (answers {codes:?}); {inside} written inside, {} outside",
            if walk { "O_NOFOLLOW walk" } else { "openat2" },
            escaped.len()
        );
        assert!(
            escaped.is_empty(),
            "written outside the allowed directories: {escaped:?}"
        );
        assert!(inside > 0, "the race let nothing through: the test proves nothing");
        assert!(swaps > 200, "{swaps} swaps");
    }
}

/// A template's rootfs damaged on disk: the unpack reads it hashed, fails without putting anything in place,
/// the blob leaves the store, and the next pull of the template fetches it again.
#[test]
fn a_damaged_rootfs_fails_the_unpack_and_the_next_pull_fetches_it() {
    let p = peers();
    let d = start(&[]);
    ok(&d.cli(&["lxc", "pull", "--source", "lab", "busybox/1.36"]), "pull");
    let hex = common::sha256_file(&p.lxc_dir.join("busybox/rootfs.tar.xz"));
    let blob = d.root.join("blobs/sha256").join(&hex);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&blob, &bad).unwrap();
    let work = tempdir("lxc-damaged");
    let dest = work.join("c");
    let o = d.cli(&["lxc", "unpack", "busybox/1.36", dest.to_str().unwrap()]);
    assert!(!o.status.success(), "the unpack of a damaged rootfs succeeded");
    assert!(stderr(&o).contains(&hex), "{}", stderr(&o));
    assert!(!dest.exists(), "something was put in place");
    assert!(!blob.exists(), "the damaged blob is still in the store");
    let aside = d.root.join("tmp").join(format!("corrupt-{hex}"));
    assert_eq!(std::fs::read(&aside).unwrap(), bad);
    assert!(d.log_text().contains("is corrupt"), "{}", d.log_text());
    ok(
        &d.cli(&["lxc", "pull", "--source", "lab", "busybox/1.36"]),
        "pull again",
    );
    assert_eq!(std::fs::read(&blob).unwrap(), good);
    let out = ok(
        &d.cli(&["lxc", "unpack", "busybox/1.36", dest.to_str().unwrap()]),
        "unpack",
    );
    assert!(out.contains("You just created a busybox container"), "{out}");
}

/// An install script's template: downloaded when absent, pinned, present the next time.
#[test]
fn ensure_downloads_a_missing_template_and_pins_it() {
    let d = start(&[]);
    let t = "lxc:busybox/1.36/amd64/default";
    let out = d.cli(&["ensure", "--owner", "app1", t]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("{t}: pulled")), "{}", stdout(&out));
    let out = d.cli(&["ensure", "--owner", "app1", t]);
    assert!(stdout(&out).contains(&format!("{t}: present")), "{}", stdout(&out));
    let refused = d.cli(&["lxc", "rm", "busybox/1.36"]);
    assert!(stderr(&refused).contains("pinned by app1"), "{}", stderr(&refused));
    let bad = d.cli(&["ensure", "--owner", "app1", "lxc:busybox/nope/amd64/default"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
}
