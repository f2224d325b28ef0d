//! Differential tests: the same docker CLI commands against a real dockerd (20.10, the classic store) and against
//! depot, outputs compared (normalised only where the two must differ: times, and layer sizes, which depot counts
//! as the uncompressed tar and dockerd as the files in it).

mod common;

use common::*;

/// Run `args` against both daemons; both must agree on success and on (normalised) output.
fn both(engine: &Dockerd, d: &Depot, args: &[&str]) -> String {
    let theirs = engine.docker(args);
    let ours = d.docker(args);
    assert_eq!(
        theirs.status.code(),
        ours.status.code(),
        "{args:?}: exit codes differ\n dockerd: {}{}\n depot:   {}{}",
        stdout(&theirs),
        stderr(&theirs),
        stdout(&ours),
        stderr(&ours)
    );
    let (t, o) = (stdout(&theirs), stdout(&ours));
    // Lists are newest first by `Created`, in seconds: images created within one second may come in any order
    // from dockerd (its sort is not stable), so lists are compared as sets.
    let sorted = |s: &str| {
        let mut v: Vec<&str> = s.lines().collect();
        v.sort();
        v.join("\n")
    };
    if args[0] == "images" {
        assert_eq!(sorted(&t), sorted(&o), "{args:?}: output differs");
    } else {
        assert_eq!(t, o, "{args:?}: output differs");
    }
    o
}

#[test]
fn the_same_commands_give_the_same_answers() {
    let p = peers();
    let engine = Dockerd::start();
    let d = Depot::start(&[]);
    let a = format!("{}/test:1", p.plain);
    let b = format!("{}/multi:1", p.plain);
    for r in [&a, &b] {
        // pull's own progress lines differ (dockerd also extracts); its last line is the reference
        let t = stdout(&engine.docker(&["pull", r]));
        let o = stdout(&d.docker(&["pull", r]));
        assert_eq!(t.lines().last(), o.lines().last(), "pull {r}");
        assert_eq!(
            t.lines()
                .filter(|l| l.starts_with("Digest:") || l.starts_with("Status:"))
                .collect::<Vec<_>>(),
            o.lines()
                .filter(|l| l.starts_with("Digest:") || l.starts_with("Status:"))
                .collect::<Vec<_>>(),
            "pull {r}"
        );
    }
    both(&engine, &d, &["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]);
    both(
        &engine,
        &d,
        &["images", "--digests", "--format", "{{.Repository}} {{.Digest}} {{.ID}}"],
    );
    both(
        &engine,
        &d,
        &["images", "--filter", "label=stage=multi", "--format", "{{.Repository}}"],
    );
    both(&engine, &d, &["images", "--filter", "dangling=false", "-q"]);
    both(
        &engine,
        &d,
        &[
            "image", "inspect", "--format",
            "{{.Id}} {{.RepoTags}} {{.RepoDigests}} {{.Os}} {{.Architecture}} {{.Author}} {{.Comment}} {{.Config.Cmd}} {{.Config.Env}} {{.Config.Labels}} {{.RootFS.Type}} {{.RootFS.Layers}} {{.Created}}",
            &a, &b,
        ],
    );
    both(
        &engine,
        &d,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CreatedBy}} {{.Comment}}",
            &b,
        ],
    );
    both(&engine, &d, &["tag", &a, "diff/test:2"]);
    both(
        &engine,
        &d,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "diff/test"],
    );
    both(&engine, &d, &["rmi", "diff/test:2"]);
    // a delete by id of an image two repositories name: the same conflict
    both(&engine, &d, &["tag", &a, "diff/other:1"]);
    let id = both(&engine, &d, &["image", "inspect", "--format", "{{.Id}}", &a]);
    let out_t = engine.docker(&["rmi", &id.trim()[7..19]]);
    let out_o = d.docker(&["rmi", &id.trim()[7..19]]);
    assert_eq!(
        (out_t.status.code(), stderr(&out_t)),
        (out_o.status.code(), stderr(&out_o)),
        "rmi conflict"
    );
    // save from one, load into the other: the same image either way
    let dir = tempdir("diff");
    let (ours, theirs) = (dir.join("depot.tar"), dir.join("dockerd.tar"));
    assert!(d.docker(&["save", "-o", ours.to_str().unwrap(), &b]).status.success());
    assert!(engine
        .docker(&["save", "-o", theirs.to_str().unwrap(), &b])
        .status
        .success());
    assert!(engine.docker(&["rmi", &b]).status.success());
    assert!(d.docker(&["rmi", &b]).status.success());
    let t = stdout(&engine.docker(&["load", "-i", ours.to_str().unwrap()]));
    let o = stdout(&d.docker(&["load", "-i", theirs.to_str().unwrap()]));
    assert_eq!(t, o, "each loads the other's archive");
    both(
        &engine,
        &d,
        &["image", "inspect", "--format", "{{.Id}} {{.RepoTags}}", &b],
    );
    // unknown names: the same failure, both naming the image (dockerd 20.10 words some of these errors twice,
    // "no such image: x: No such image: x"; depot follows dockerd 28's single form)
    for (args, name) in [
        (&["image", "inspect", "nope:1"][..], "No such image: nope:1"),
        (&["rmi", "nope:1"], "No such image: nope:1"),
        (&["tag", "nope:1", "x:1"], "No such image: nope:1"),
        (&["history", "nope"], "No such image: nope:latest"),
    ] {
        let t = engine.docker(args);
        let o = d.docker(args);
        assert_eq!(t.status.code(), o.status.code(), "{args:?}");
        assert!(
            stderr(&t).contains(name) && stderr(&o).contains(name),
            "{args:?}: {} / {}",
            stderr(&t),
            stderr(&o)
        );
    }
    // prune -a removes the same images (sizes aside)
    let t = stdout(&engine.docker(&["image", "prune", "-a", "-f"]));
    let o = stdout(&d.docker(&["image", "prune", "-a", "-f"]));
    let untagged = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| l.starts_with("untagged:"))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(untagged(&t), untagged(&o), "prune -a\n{t}\n{o}");
    both(&engine, &d, &["images", "-q"]);
}

/// The docker CLI Debian ships (20.10, API 1.41), as old NAS tooling has it, against depot.
#[test]
fn the_debian_docker_20_10_client_works_too() {
    let p = peers();
    let d = Depot::start(&[]);
    let old = |args: &[&str]| {
        let out = std::process::Command::new("/usr/bin/docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("DOCKER_CONFIG", d.root.join(".docker-config-20"))
            .output()
            .expect("docker.io's client");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let v = old(&["version", "--format", "{{.Client.Version}} {{.Server.APIVersion}}"]);
    assert!(v.starts_with("20.10") && v.trim().ends_with("1.47"), "{v}");
    let r = format!("{}/multi:1", p.plain);
    old(&["pull", "-q", &r]);
    assert_eq!(old(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).trim(), r);
    let id = old(&["image", "inspect", "--format", "{{.Id}}", &r]);
    old(&["history", &r]);
    old(&["tag", &r, "old/cli:1"]);
    let dir = tempdir("old-cli");
    let tar = dir.join("x.tar");
    old(&["save", "-o", tar.to_str().unwrap(), "old/cli:1"]);
    old(&["rmi", "old/cli:1", &r]);
    assert!(old(&["load", "-i", tar.to_str().unwrap()]).contains("Loaded image: old/cli:1"));
    assert_eq!(old(&["image", "inspect", "--format", "{{.Id}}", "old/cli:1"]), id);
    old(&["image", "prune", "-a", "-f"]);
    old(&["system", "df"]);
    assert!(d.images().is_empty());
}
