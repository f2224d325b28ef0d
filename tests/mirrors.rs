//! Registry mirrors as dockerd has them: tried in order before the registry, falling back to the next and at
//! last to the registry itself; Docker Hub's listed in /info. The mirror is the distribution registry's own
//! pull-through cache.

mod common;

use common::net::Proxy;
use common::*;

#[test]
fn pulls_go_through_the_mirror_and_fall_back() {
    let p = peers();
    // counting what the mirror serves to depot
    let via = Proxy::start(&p.mirror, 0);
    let d = Depot::start(&[
        "--mirror",
        &format!("{}=http://127.0.0.1:1", p.plain), // a dead mirror first: skipped
        "--mirror",
        &format!("{}=http://{}", p.plain, via.addr),
        "--retries",
        "1",
    ]);
    let out = d.docker(&["pull", &format!("{}/multi:1", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        via.served() > 1_000_000,
        "the layers came through the mirror ({} bytes)",
        via.served()
    );
    assert!(
        d.log_text().contains("mirror 127.0.0.1:1 of"),
        "the dead mirror was tried and skipped"
    );
    assert_eq!(
        d.images()[0]["RepoTags"][0],
        format!("{}/multi:1", p.plain),
        "named after the registry"
    );
    // a tag the mirror cannot have (the upstream has no such tag either): the registry's own answer
    let out = d.docker(&["pull", &format!("{}/test:nope", p.plain)]);
    assert!(stderr(&out).contains("manifest unknown"), "{}", stderr(&out));
}

#[test]
fn only_dead_mirrors_mean_the_registry_itself_and_info_lists_them() {
    let p = peers();
    let d = Depot::start(&[
        "--mirror",
        &format!("{}=http://127.0.0.1:1", p.plain),
        "--registry-mirror",
        "https://mirror.example.invalid",
        "--retries",
        "1",
    ]);
    let out = d.docker(&["pull", &format!("{}/test:1", p.plain)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = stdout(&d.docker(&["info"]));
    assert!(
        info.contains("Registry Mirrors:\n  https://mirror.example.invalid/"),
        "{info}"
    );
    let (_, v) = d.json("GET", "/info");
    assert_eq!(
        v["RegistryConfig"]["IndexConfigs"][&p.plain]["Mirrors"][0],
        "http://127.0.0.1:1/"
    );
}
