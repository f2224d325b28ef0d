//! How a LAN client names what depot holds. Pure.
//!
//! - Docker Hub's images as dockerd's `registry-mirrors` asks for them: `library/alpine`, `user/app` (and a bare
//!   `alpine`, which Docker's own tools never send but people type).
//! - Another registry's as containerd's mirror requests name them: the repository path, with `?ns=REGISTRY`.
//! - Another registry's by a path of their own: `REGISTRY/REPO`, when the registry's name is a host without a port
//!   (a port's `:` is not allowed in a repository name; use `ns`).

use crate::reference::{Reference, DEFAULT_DOMAIN};

/// The repository depot keeps (`docker.io/library/alpine`) that a client's `name` (the path below `/v2/`) and
/// `ns` (containerd's query parameter) mean; `None` when `name` is no valid repository name.
pub fn canonical(name: &str, ns: Option<&str>) -> Option<String> {
    if name.len() > 255 || !name.split('/').all(component) {
        return None;
    }
    let full = match ns.map(str::trim).filter(|n| !n.is_empty()) {
        Some(ns) => {
            let domain = match ns {
                "registry-1.docker.io" | "index.docker.io" => DEFAULT_DOMAIN,
                other => other,
            };
            format!("{domain}/{name}")
        }
        None => name.to_string(),
    };
    let r = Reference::parse(&full).ok()?;
    // a tag or digest smuggled into the name is refused, not taken
    (r.tag().is_none() && r.digest().is_none()).then(|| r.name())
}

/// A path component as the distribution spec has it: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let run = b[i..].iter().take_while(|x| !alnum(x)).count();
        let sep = &c[i..i + run];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
        i += run;
    }
    true
}

/// How `canonical` (a repository depot keeps) is listed in `_catalog`: Docker Hub's without `docker.io/`, another
/// registry's as `REGISTRY/REPO`; `None` when that is no valid name (a registry with a port: reach it with `ns`).
pub fn served(canonical: &str) -> Option<String> {
    let (domain, path) = canonical.split_once('/')?;
    if domain == DEFAULT_DOMAIN {
        return Some(path.to_string());
    }
    (!domain.contains(':')).then(|| canonical.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_mirrors_send_them() {
        assert_eq!(
            canonical("library/alpine", None).as_deref(),
            Some("docker.io/library/alpine")
        );
        assert_eq!(canonical("alpine", None).as_deref(), Some("docker.io/library/alpine"));
        assert_eq!(canonical("user/app", None).as_deref(), Some("docker.io/user/app"));
        assert_eq!(canonical("ghcr.io/o/app", None).as_deref(), Some("ghcr.io/o/app"));
        assert_eq!(
            canonical("test", Some("127.0.0.1:5000")).as_deref(),
            Some("127.0.0.1:5000/test")
        );
        assert_eq!(
            canonical("library/alpine", Some("registry-1.docker.io")).as_deref(),
            Some("docker.io/library/alpine")
        );
        assert_eq!(
            canonical("alpine", Some("docker.io")).as_deref(),
            Some("docker.io/library/alpine")
        );
        for bad in [
            "",
            "UPPER/case",
            "a/../b",
            "x:1",
            "a@sha256:00",
            "-a",
            "a//b",
            "a___b",
            "a.-b",
            "a/",
        ] {
            assert_eq!(canonical(bad, None), None, "{bad}");
        }
        assert_eq!(served("docker.io/library/alpine").as_deref(), Some("library/alpine"));
        assert_eq!(served("ghcr.io/o/app").as_deref(), Some("ghcr.io/o/app"));
        assert_eq!(served("127.0.0.1:5000/test"), None);
        assert!(component("a--b") && component("a__b") && component("a.b_c") && !component("a_.b"));
    }
}
