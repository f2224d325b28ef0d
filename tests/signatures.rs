//! The signature policy against an independent implementation: sigstore's own Rust crate (`tests/sigtool`,
//! built by `tests/sigtool/build.sh`, which cross/check runs) signs images in the test registry with cosign-format
//! keys, then judges each case of a corpus; depot, started with a containers-policy.json that requires the key
//! for the registry, must admit exactly what the reference admits. Then what only depot does: a refused pull
//! stores nothing, an admitted image says who signed it, a load cannot bring in what a pull would be refused.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sigtool() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sigtool/release/depot-sigtool");
    assert!(
        p.exists(),
        "{} is missing: run tests/sigtool/build.sh (cross/check does)",
        p.display()
    );
    p
}

fn tool(args: &[&str]) -> std::process::Output {
    Command::new(sigtool()).args(args).output().unwrap()
}

fn must(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn skopeo_copy(from: &str, to: &str, all: bool) {
    let mut c = Command::new("skopeo");
    c.args(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"]);
    if all {
        c.arg("--all");
    }
    must(
        c.arg(format!("docker://{from}"))
            .arg(format!("docker://{to}"))
            .output()
            .unwrap(),
    );
}

/// The digest of the linux/amd64 manifest in the index `image` names.
fn platform_digest(image: &str) -> String {
    let raw = must(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}"))
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

struct Case {
    name: &'static str,
    image: String,
    admit: bool,
}

#[test]
fn depot_admits_exactly_what_sigstore_admits() {
    let p = peers();
    let dir = tempdir("sig-corpus");
    let key = |n: &str| dir.join(n).display().to_string();
    must(tool(&["keygen", &key("a")]));
    must(tool(&["keygen", &key("b")]));
    // a repository per case and per run: the registry outlives the test, and so would its .sig tags
    let run = format!(
        "{}{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_millis() % 100_000
    );
    let repo = |case: &str| format!("{}/sig{run}-{case}", p.plain);
    let single = format!("{}/test:1", p.plain);
    let multi = format!("{}/multiarch:1", p.plain);
    let mut cases = Vec::new();
    let mut case = |name: &'static str, source: &str, all: bool, admit: bool| -> String {
        let image = format!("{}:1", repo(name));
        skopeo_copy(source, &image, all);
        cases.push(Case {
            name,
            image: image.clone(),
            admit,
        });
        image
    };
    let signed = case("signed", &single, false, true);
    must(tool(&["sign", &key("a.key"), &signed]));
    case("unsigned", &single, false, false);
    let other_key = case("otherkey", &single, false, false);
    must(tool(&["sign", &key("b.key"), &other_key]));
    let tampered = case("tampered", &single, false, false);
    must(tool(&["sign", &key("a.key"), &tampered, "--tamper"]));
    // a valid signature of another manifest, put where this one's signatures are looked for
    let other_digest = case("otherdigest", &single, false, false);
    let multi_digest = platform_digest(&multi);
    must(tool(&[
        "sign",
        &key("a.key"),
        &other_digest,
        "--claim-digest",
        &multi_digest,
    ]));
    let other_id = case("otheridentity", &single, false, false);
    must(tool(&[
        "sign",
        &key("a.key"),
        &other_id,
        "--identity",
        &format!("{}/elsewhere", p.plain),
    ]));
    // a multi-platform image: its index signed (what the tag names), as skopeo and cosign judge it
    let index = case("signedindex", &multi, true, true);
    must(tool(&["sign", &key("a.key"), &index]));
    // only the platform manifest signed: the tag names the index, which is not
    let platform_only = case("platformonly", &multi, true, false);
    // (copied with --all, the index and its manifests keep their digests)
    let _ = platform_only;
    must(tool(&[
        "sign",
        &key("a.key"),
        &format!("{}@{multi_digest}", repo("platformonly")),
    ]));
    // signed by another key, then signed again by the policy's key (sigstore-rs replaces the `.sig` manifest):
    // what is there now counts
    let two = case("resigned", &single, false, true);
    must(tool(&["sign", &key("b.key"), &two]));
    must(tool(&["sign", &key("a.key"), &two]));

    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{}":[
            {{"type":"sigstoreSigned","keyPath":"a.pub","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
            p.plain
        ),
    )
    .unwrap();
    let d = Depot::start(&["--policy", policy.to_str().unwrap()]);
    let mut table = vec![
        "| case | reference (sigstore-rs) | depot |".to_string(),
        "|---|---|---|".into(),
    ];
    let mut disagree = Vec::new();
    for c in &cases {
        let reference = tool(&["verify", &key("a.pub"), &c.image, "matchRepository"]);
        assert!(reference.status.code().unwrap() < 2, "{}", stderr(&reference));
        let theirs = reference.status.success();
        let pulled = d.docker(&["pull", "-q", &c.image]);
        let ours = pulled.status.success();
        let said = |ok: bool, text: String| match ok {
            true => "admit".to_string(),
            false => format!("refuse: {}", text.trim().lines().last().unwrap_or_default()),
        };
        table.push(format!(
            "| {} | {} | {} |",
            c.name,
            said(theirs, stdout(&reference).replace("refuse: ", "")),
            said(ours, stderr(&pulled))
        ));
        if theirs != ours || ours != c.admit {
            disagree.push(c.name);
        }
        if !ours {
            let present = d.images().iter().any(|i| {
                i["RepoTags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(&c.image)))
            });
            assert!(!present, "{}: a refused image is visible", c.name);
        }
    }
    bundled_cases(&d, &dir, &key, &repo, &single, &policy, &mut table, &mut disagree);
    println!("{}", table.join("\n"));
    assert!(
        disagree.is_empty(),
        "depot and the reference disagree, or both miss the corpus, on {disagree:?}:\n{}",
        table.join("\n")
    );

    // the reasons a user reads
    let why = stderr(&d.docker(&["pull", &other_key]));
    assert!(
        why.contains(&format!("scope \"{}\"", p.plain)) && why.contains("signed by another key"),
        "{why}"
    );
    assert!(stderr(&d.docker(&["pull", &format!("{}:1", repo("unsigned"))])).contains("no signature"));
    assert!(stderr(&d.docker(&["pull", &other_digest])).contains("signed for another image"));

    // an install script's `depot ensure` tells a refusal by its exit code, and pins nothing
    let o = d.cli(&["ensure", "--owner", "vendor-app", &tampered]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("signed by another key"), "{}", stderr(&o));
    let o = d.cli(&["ensure", "--owner", "vendor-app", &signed]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let (_, pins) = d.json("GET", "/api/v1/pins?owner=vendor-app");
    assert_eq!(pins.as_array().unwrap().len(), 1, "{pins}");

    // who signed what was admitted: inspect, and the page's list
    let (s, v) = d.json("GET", &format!("/images/{}/json", signed.replace('/', "%2F")));
    assert_eq!(s, 200, "{v}");
    // one image under several names (the corpus copies one image) keeps each name's signer
    let sig = v["DepotSignatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Identity"] == repo("signed").as_str())
        .unwrap_or_else(|| panic!("no signer for {}: {v}", repo("signed")));
    assert_eq!(sig["Scope"], p.plain.as_str(), "{v}");
    assert!(sig["Key"].as_str().unwrap().starts_with("sha256:"), "{v}");
    let (_, list) = d.json("GET", "/api/v1/image?category=local");
    let item = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == repo("signed"))
        .unwrap()
        .clone();
    assert_eq!(item["signed_by"][0][0], sig["Key"], "{item}");

    // a load cannot bring in under the vendor's name what a pull would refuse: an archive has no signatures
    let tar = dir.join("signed.tar");
    must(d.docker(&["save", "-o", tar.to_str().unwrap(), &signed]));
    let d2 = Depot::start(&["--policy", policy.to_str().unwrap()]);
    let o = d2.docker(&["load", "-i", tar.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("no signature"), "{}", stderr(&o));
    assert!(d2.images().is_empty(), "nothing of a refused load is visible");
    // the signature's blobs are kept with the image: a collection leaves them
    must(d.docker(&["image", "prune", "-f"]));
    let (s, _) = d.json("GET", &format!("/images/{}/json", signed.replace('/', "%2F")));
    assert_eq!(s, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the bundle `src` whose `index.json` names no signature.
fn strip_signatures(src: &Path, dst: &Path) {
    let bytes = std::fs::read(src).unwrap();
    let mut out = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            let mut v: serde_json::Value = serde_json::from_slice(&data).unwrap();
            v["manifests"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m["annotations"]["dev.depot.signature-of"].is_null());
            data = serde_json::to_vec(&v).unwrap();
        }
        let mut h = e.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, &data[..]).unwrap();
    }
    std::fs::write(dst, out.into_inner().unwrap()).unwrap();
}

/// Bundles carry signatures: a signed image bundled by the depot that admitted it is admitted from the bundle by
/// another depot with the same policy, and the reference, given the bundle's image and signature put back in
/// the registry, admits it too; the same bundle without its signature is refused by both.
#[allow(clippy::too_many_arguments)]
fn bundled_cases(
    d: &Depot,
    dir: &Path,
    key: &dyn Fn(&str) -> String,
    repo: &dyn Fn(&str) -> String,
    single: &str,
    policy: &Path,
    table: &mut Vec<String>,
    disagree: &mut Vec<&'static str>,
) {
    let image = format!("{}:1", repo("bundled"));
    skopeo_copy(single, &image, false);
    must(tool(&["sign", &key("a.key"), &image]));
    must(d.docker(&["pull", "-q", &image]));
    let bundle = dir.join("signed-bundle.tar");
    must(d.cli(&["bundle", "create", "-o", bundle.to_str().unwrap(), &image]));
    let unsigned = dir.join("unsigned-bundle.tar");
    strip_signatures(&bundle, &unsigned);
    // the reference: what the bundle holds, put back in the registry under a new tag (the same digest, so its
    // signature is looked for where the bundle's is put)
    let index: serde_json::Value = {
        let bytes = std::fs::read(&bundle).unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let mut e = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("index.json"))
            .unwrap();
        serde_json::from_reader(&mut e).unwrap()
    };
    // the same image is kept under several names here, each with its own signature: the bundle of one name
    // carries that name's alone
    let carried: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["dev.depot.signature-of"].is_string())
        .collect();
    assert_eq!(carried.len(), 1, "{index}");
    let sig_name = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| {
            m["annotations"]["dev.depot.signature-of"]
                .as_str()
                .and(m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        })
        .expect("the bundle carries the signature")
        .to_string();
    let put_back = |from: &Path, name: &str, to: &str| {
        must(
            Command::new("skopeo")
                .args(["copy", "-q", "--preserve-digests", "--dest-tls-verify=false"])
                .arg(format!("oci-archive:{}:{name}", from.display()))
                .arg(format!("docker://{to}"))
                .output()
                .unwrap(),
        )
    };
    let from_bundle = format!("{}:from-bundle", repo("bundled"));
    put_back(&bundle, &image, &from_bundle);
    put_back(&bundle, &sig_name, &sig_name);
    let unsigned_copy = format!("{}:1", repo("bundled-unsigned"));
    put_back(&unsigned, &image, &unsigned_copy);
    for (name, file, reference_image, admit) in [
        ("signed bundle", &bundle, from_bundle, true),
        ("bundle without its signature", &unsigned, unsigned_copy, false),
    ] {
        let reference = tool(&["verify", &key("a.pub"), &reference_image, "matchRepository"]);
        let theirs = reference.status.success();
        let d2 = Depot::start(&["--policy", policy.to_str().unwrap()]);
        let o = d2.cli(&["bundle", "import", file.to_str().unwrap()]);
        let ours = o.status.success();
        let said = |ok: bool, text: String| match ok {
            true => "admit".to_string(),
            false => format!("refuse: {}", text.trim().lines().last().unwrap_or_default()),
        };
        table.push(format!(
            "| {name} | {} | {} |",
            said(theirs, stdout(&reference).replace("refuse: ", "")),
            said(ours, stderr(&o))
        ));
        if theirs != ours || ours != admit {
            disagree.push(if admit { "signed bundle" } else { "unsigned bundle" });
        }
        if ours {
            assert_eq!(o.status.code(), Some(0));
            assert!(!d2.images().is_empty());
        } else {
            assert_eq!(o.status.code(), Some(3), "a refusal by policy: {}", stderr(&o));
            assert!(d2.images().is_empty(), "nothing of a refused bundle is visible");
        }
    }
}

#[test]
fn a_policy_that_cannot_be_read_stops_the_start() {
    let dir = tempdir("sig-badpolicy");
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"k.gpg"}]}"#,
    )
    .unwrap();
    // (bounded: a daemon that started anyway would serve until killed)
    let o = Command::new("timeout")
        .arg("30")
        .arg(bin())
        .args(["serve", "--data-root"])
        .arg(dir.join("root"))
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("GPG signatures (signedBy) are not checked by depot"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Signatures travel with images through the LAN registry: a depot that admitted a signed image serves it and its
/// cosign `.sig` tag, and a second depot, with the first as its only way to Docker Hub and a policy requiring
/// the key, admits the image on that signature (sigstore-rs agrees, reading the first depot). An image the first
/// depot holds unsigned is refused by the second. Docker Hub is out of reach here: the plain test registry is the
/// first depot's Docker Hub mirror, and the first depot the second's.
#[test]
fn signatures_travel_through_the_lan_registry() {
    let p = peers();
    let dir = tempdir("sig-lan");
    let key = |n: &str| dir.join(n).display().to_string();
    must(tool(&["keygen", &key("a")]));
    let ns = format!(
        "lan{}{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_millis() % 100_000
    );
    // Docker Hub's `NS/app` and `NS/other`, as the plain registry holds them for its mirror's clients
    let single = format!("{}/test:1", p.plain);
    let app = format!("{}/{ns}/app:1", p.plain);
    skopeo_copy(&single, &app, false);
    skopeo_copy(&single, &format!("{}/{ns}/other:1", p.plain), false);
    must(tool(&[
        "sign",
        &key("a.key"),
        &app,
        "--identity",
        &format!("docker.io/{ns}/app:1"),
    ]));
    let policy = |scope: &str| {
        let path = dir.join(format!("policy-{}.json", scope.replace('/', "_")));
        std::fs::write(
            &path,
            format!(
                r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{scope}":[
                {{"type":"sigstoreSigned","keyPath":"a.pub","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    // the first depot requires the key for NS/app only, so it also holds NS/other, unsigned
    let first_policy = policy(&format!("docker.io/{ns}/app"));
    let mirror = format!("http://{}", p.plain);
    let (first, reg) = common::lan::registry_depot_with(&[
        "--registry-pull-through",
        "false",
        "--registry-mirror",
        &mirror,
        "--insecure-registry",
        &p.plain,
        "--policy",
        &first_policy,
    ]);
    must(first.docker(&["pull", "-q", &format!("{ns}/app:1")]));
    must(first.docker(&["pull", "-q", &format!("{ns}/other:1")]));
    // the first depot serves the signature under cosign's tag, and the reference admits the image from it
    let (s, _, body) = common::lan::get(&reg, "GET", &format!("/v2/{ns}/app/tags/list"), &[]);
    assert_eq!(s, 200);
    let tags = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["tags"].clone();
    assert!(
        tags.as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().ends_with(".sig")),
        "{tags}"
    );
    let reference = tool(&["verify", &key("a.pub"), &format!("{reg}/{ns}/app:1"), "matchRepository"]);
    println!("sigstore-rs, reading the first depot: {}", stdout(&reference).trim());
    // asked by the first depot's address, the reference finds and verifies the signature there, then refuses the
    // identity, which names Docker Hub's image
    assert!(
        stdout(&reference).contains(&format!("refuse: identity docker.io/{ns}/app")),
        "{}{}",
        stdout(&reference),
        stderr(&reference)
    );

    // the second depot requires the key for all of Docker Hub, and reaches it only through the first
    let second_policy = policy("docker.io");
    let second = Depot::start(&[
        "--registry-mirror",
        &format!("http://{reg}"),
        "--insecure-registry",
        &reg,
        "--policy",
        &second_policy,
    ]);
    must(second.docker(&["pull", "-q", &format!("{ns}/app:1")]));
    let (s, v) = second.json("GET", &format!("/images/{ns}%2Fapp:1/json"));
    assert_eq!(s, 200, "{v}");
    assert!(
        v["DepotSignatures"].as_array().is_some_and(|a| !a.is_empty()),
        "the second depot says who signed it: {v}"
    );
    let refused = second.docker(&["pull", "-q", &format!("{ns}/other:1")]);
    assert!(
        !refused.status.success(),
        "an unsigned image passes: {}",
        stdout(&refused)
    );
    assert!(stderr(&refused).contains("no signature"), "{}", stderr(&refused));
    assert_eq!(second.images().len(), 1, "nothing of the refused image is visible");
    let _ = std::fs::remove_dir_all(&dir);
}
