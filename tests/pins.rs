//! Pins: an installed app's images stay until it lets them go. A pinned image is refused to `docker rmi`, the
//! station's delete and `depot rm` (409 naming the owner), passed by `prune -a`, kept by a digest pin when the
//! tag moves, and let go by force with an event that says so; pins outlive a lost database.

mod common;

use common::*;

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

fn fails(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", stdout(out));
    stderr(out)
}

#[test]
fn pinned_images_stay_until_their_owner_lets_go_or_a_delete_is_forced() {
    let p = peers();
    let mut d = Depot::start(&[]);
    let test1 = format!("{}/test:1", p.plain);
    let multi = format!("{}/multi:1", p.plain);
    for r in [&test1, &multi] {
        ok(&d.docker(&["pull", "-q", r]));
    }
    // by tag for one app, by digest for another
    let digest = d.images().iter().find(|i| i["RepoTags"][0] == test1.as_str()).unwrap()["RepoDigests"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = ok(&d.cli(&["pin", "add", "app1", &test1, "lxc:debian/12/amd64/default"]));
    assert!(out.contains("app1") && out.contains(&test1), "{out}");
    ok(&d.cli(&["pin", "add", "app2", &digest]));
    assert!(fails(&d.cli(&["pin", "add", "bad owner", &test1])).contains("owner"));
    let (s, v) = d.json("GET", "/api/v1/pins?owner=app2");
    assert_eq!((s, v.as_array().unwrap().len()), (200, 1), "{v}");
    assert_eq!(v[0]["target"], digest.as_str());

    // the page's list says who keeps each tag
    let (_, v) = d.json("GET", "/api/v1/image?category=local");
    let item = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == format!("{}/test", p.plain))
        .unwrap();
    assert_eq!(item["pinned_by"], serde_json::json!([["app1", "app2"]]), "{item}");
    let item = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == format!("{}/multi", p.plain))
        .unwrap();
    assert_eq!(item["pinned_by"], serde_json::json!([[]]), "{item}");

    // every way to delete it is refused, naming the owners
    let err = fails(&d.docker(&["rmi", &test1]));
    assert!(err.contains("pinned by app1"), "{err}");
    let (s, v) = d.json("DELETE", &format!("/images/{test1}"));
    assert_eq!(s, 409, "{v}");
    let (s, v) = d.json("DELETE", &format!("/api/v1/image/local/docker/{}/test/1", p.plain));
    assert_eq!(s, 409, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("app1"), "{v}");
    let err = fails(&d.cli(&["rm", &test1]));
    assert!(err.contains("pinned by app1"), "{err}");
    // a prune of everything passes it by
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert!(out.contains(&format!("untagged: {multi}")), "{out}");
    assert_eq!(d.images().len(), 1, "{:?}", d.images());

    // the tag moves to another image: the digest pin keeps the old one
    ok(&d.docker(&["pull", "-q", &multi]));
    ok(&d.cli(&["pin", "rm", "app1"]));
    ok(&d.docker(&["tag", &multi, &test1]));
    assert_eq!(d.images().len(), 2);
    let old = d
        .images()
        .iter()
        .find(|i| i["RepoDigests"][0] == digest.as_str())
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let err = fails(&d.docker(&["rmi", &old]));
    assert!(err.contains("pinned by app2"), "{err}");
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert!(!out.contains(&old[7..19]), "{out}");

    // pins outlive a lost database
    d.kill9();
    for f in ["depot.db", "depot.db-wal", "depot.db-shm"] {
        let _ = std::fs::remove_file(d.root.join(f));
    }
    d.restart();
    let (_, v) = d.json("GET", "/api/v1/pins");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");

    // forced: the image goes, its pins with it, and the event log says who held them
    let out = ok(&d.docker(&["rmi", "-f", &old]));
    assert!(out.contains("Deleted: sha256:"), "{out}");
    let (_, v) = d.json("GET", "/api/v1/pins");
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
    let (_, v) = d.json("GET", "/api/v1/event");
    let log = v["messages"].to_string();
    assert!(log.contains(r#"\"action\":\"unpin\""#) && log.contains("app2"), "{log}");
    // and the Engine API's /events leaves depot's own event out
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (_, ev) = d.get(&format!("/events?since=0&until={}", now + 1));
    assert!(
        String::from_utf8_lossy(&ev).contains(r#""Action":"delete""#),
        "{}",
        String::from_utf8_lossy(&ev)
    );
    assert!(!String::from_utf8_lossy(&ev).contains("unpin"));
}

#[test]
fn ensure_pulls_what_is_missing_pins_it_joins_a_running_download_and_says_why_it_fails() {
    let p = peers();
    let d = Depot::start(&[]);
    let test1 = format!("{}/test:1", p.plain);
    let multi = format!("{}/multi:1", p.plain);
    let out = ok(&d.cli(&["ensure", "--owner", "app1", &test1, &multi]));
    assert_eq!(out.matches(": pulled").count(), 2, "{out}");
    assert!(out.ends_with("ensured and pinned\n"), "{out}");
    assert_eq!(d.images().len(), 2);
    let (_, v) = d.json("GET", "/api/v1/pins?owner=app1");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    // again: present at once, nothing pulled
    let out = ok(&d.cli(&["ensure", "--owner", "app1", &test1, &multi]));
    assert_eq!(out.matches(": present").count(), 2, "{out}");
    assert!(!out.contains("pulling"), "{out}");

    // two install scripts at once share one download, and both end pinned
    let big = format!("{}/big:1", p.plain);
    let runs: Vec<_> = ["app2", "app3"]
        .into_iter()
        .map(|owner| {
            let (sock, big) = (d.sock.clone(), big.clone());
            std::thread::spawn(move || {
                std::process::Command::new(bin())
                    .args(["ensure", "--json", "--owner", owner, &big])
                    .env("DEPOT_SOCKET", &sock)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for r in runs {
        let out = ok(&r.join().unwrap());
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.last().unwrap()["status"], "ensured", "{out}");
        assert!(
            lines
                .iter()
                .any(|l| l["status"] == "pulled" || l["status"] == "present"),
            "{out}"
        );
    }
    let (_, list) = d.json("GET", "/api/v1/image/downloadstatus");
    let bigs = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == format!("{}/big", p.plain))
        .count();
    assert_eq!(bigs, 1, "one download for both: {list}");
    let (_, v) = d.json("GET", "/api/v1/pins");
    assert_eq!(v.as_array().map(Vec::len), Some(4), "{v}");

    // what cannot be had fails with the registry's reason, and pins nothing
    let out = d.cli(&["ensure", "--owner", "app4", &format!("{}/test:nope", p.plain)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("test:nope"), "{}", stderr(&out));
    let (_, v) = d.json("GET", "/api/v1/pins?owner=app4");
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
    let out = d.cli(&["ensure", "--owner", "bad owner", &test1]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("owner"), "{}", stderr(&out));
    let out = d.cli(&["ensure", "--owner", "app1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn fsck_names_the_pins_whose_target_is_not_here() {
    let p = peers();
    let mut d = Depot::start(&[]);
    let test1 = format!("{}/test:1", p.plain);
    ok(&d.docker(&["pull", "-q", &test1]));
    let gone = "127.0.0.1:9/absent:1";
    ok(&d.cli(&["pin", "add", "app1", &test1, gone, "lxc:busybox/1.36/amd64/default"]));
    d.sigterm();
    let out = std::process::Command::new(bin())
        .args(["fsck", "--data-root"])
        .arg(&d.root)
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains(&format!(
            "app1 pins {gone}, which is not here (depot ensure --owner app1 {gone}"
        )),
        "{text}"
    );
    assert!(
        text.contains("app1 pins lxc:busybox/1.36/amd64/default, which is not here"),
        "{text}"
    );
    assert!(!text.contains("test:1"), "a present image is not named: {text}");
    assert!(text.ends_with("no problems\n"), "not a problem of the store: {text}");
}
