//! The signature policy: which images may enter the store, in the format of containers-policy.json(5), the
//! file skopeo and podman read, so a vendor writes one policy for all of them. Pure: the file is parsed and
//! its keys read once at start ([`PolicyFile::load`]); judging an image is a function of its names, the digest
//! its signatures must name and the signatures that came with it ([`PolicyFile::judge`]).
//!
//! The subset depot reads:
//! - `default`, and `transports.docker` scopes: `host[:port]/repo:tag` or `@digest`, `host/repo`, its parent
//!   namespaces, `host`, and `*.domain` wildcards; the most specific one that is given applies, then the
//!   transport's `""` scope, then `default`.
//! - Requirements `insecureAcceptAnything`, `reject` and `sigstoreSigned` (`keyPath`, `keyPaths` or `keyData`:
//!   ECDSA P-256 public keys, as `cosign generate-key-pair` writes them; `signedIdentity` `matchRepoDigestOrExact`
//!   (the default), `matchRepository`, `matchExact`, `exactReference`, `exactRepository`). Every requirement of
//!   a scope must be met.
//! - Other transports are checked for syntax and otherwise not used: every way in (pull, load, import, bundle
//!   import) judges an image by the `docker` scopes of the names it would take, with the signatures it brings;
//!   an image that takes no name is judged by `default`. So a vendor's scope holds whichever way the image comes.
//!
//! Anything else (GPG `signedBy`, Fulcio certificates, Rekor) is refused when the file is loaded, never ignored:
//! a policy that says more than depot checks would promise what it does not keep.

pub mod sigstore;

use crate::digest::Digest;
use crate::reference::Reference;
use serde_json::{Map, Value};
use sigstore::{PublicKey, Signature, Verdict};
use std::path::Path;

/// The largest policy file read: real ones are a few kilobytes.
const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {path}: {msg}")]
    Load { path: String, msg: String },
}

/// What signatures must say about the image they are for, besides its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIdentity {
    /// By digest: the repository must match; by tag: the whole reference.
    MatchRepoDigestOrExact,
    MatchRepository,
    MatchExact,
    /// The signature names exactly this reference, whatever the image is called here.
    ExactReference(Reference),
    /// The signature names this repository.
    ExactRepository(String),
}

#[derive(Debug, Clone)]
pub enum Requirement {
    InsecureAcceptAnything,
    Reject,
    SigstoreSigned {
        keys: Vec<PublicKey>,
        identity: SignedIdentity,
    },
}

/// One scope's requirements, all of which must be met.
#[derive(Debug, Clone)]
struct Scope {
    name: String,
    requirements: Vec<Requirement>,
}

/// A loaded policy.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    default: Scope,
    docker: Vec<Scope>,
}

/// Who vouched for an image that was admitted: shown by `inspect` and the page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedBy {
    /// The scope of the policy that asked.
    pub scope: String,
    /// The key's fingerprint (`sha256:` of its public key, 16 hex digits).
    pub key: String,
    /// The image the signature names (its `docker-reference`).
    pub identity: String,
}

/// Why an image may not enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the signature policy's scope {:?} refuses it: {}",
            self.scope, self.reason
        )
    }
}

impl PolicyFile {
    /// Read and check the policy at `path`; keys named by `keyPath` are read relative to its directory.
    pub fn load(path: &Path) -> Result<PolicyFile, PolicyError> {
        let err = |msg: String| PolicyError::Load {
            path: path.display().to_string(),
            msg,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_POLICY_BYTES {
            return Err(err(format!("over {MAX_POLICY_BYTES} bytes")));
        }
        let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        PolicyFile::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(err)
    }

    /// Parse a policy; `dir` is where relative key paths are found.
    pub fn parse(text: &[u8], dir: &Path) -> Result<PolicyFile, String> {
        let v: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
        let top = object(&v, "the policy")?;
        only_keys(top, &["default", "transports"], "the policy")?;
        let default = Scope {
            name: "default".into(),
            requirements: requirements(top.get("default").ok_or("no \"default\"")?, dir, "default")?,
        };
        let mut docker = Vec::new();
        if let Some(t) = top.get("transports") {
            for (transport, scopes) in object(t, "transports")? {
                for (scope, reqs) in object(scopes, transport)? {
                    let at = format!("transports.{transport}.{scope:?}");
                    let requirements = requirements(reqs, dir, &at)?;
                    if transport == "docker" {
                        check_docker_scope(scope).map_err(|m| format!("{at}: {m}"))?;
                        docker.push(Scope {
                            name: scope.clone(),
                            requirements,
                        });
                    }
                }
            }
        }
        Ok(PolicyFile { default, docker })
    }

    /// The scope that judges an image called `name` (`None`: one without a name).
    fn scope_for(&self, name: Option<&Reference>) -> &Scope {
        let Some(r) = name else { return &self.default };
        let find = |s: &str| self.docker.iter().find(|x| x.name == s);
        let repo = r.name();
        let mut candidates = Vec::new();
        if let Some(d) = r.digest() {
            candidates.push(format!("{repo}@{d}"));
        } else if let Some(t) = r.tag() {
            candidates.push(format!("{repo}:{t}"));
        }
        let mut ns = repo.as_str();
        loop {
            candidates.push(ns.to_string());
            match ns.rfind('/') {
                Some(i) => ns = &ns[..i],
                None => break,
            }
        }
        // `*.example.com` covers every host below it (never the host itself, nor one with a port)
        let host = r.domain();
        let mut rest = host;
        while let Some(i) = rest.find('.') {
            rest = &rest[i + 1..];
            candidates.push(format!("*.{rest}"));
        }
        candidates.push(String::new());
        candidates.iter().find_map(|c| find(c)).unwrap_or(&self.default)
    }

    /// Whether judging `name` needs its signatures: a pull fetches them only then.
    pub fn wants_signatures(&self, name: Option<&Reference>) -> bool {
        self.scope_for(name)
            .requirements
            .iter()
            .any(|r| matches!(r, Requirement::SigstoreSigned { .. }))
    }

    /// Judge an image called `name` whose signatures must name `digest` (what the name resolved to: an index,
    /// or the image manifest): every requirement of its scope must be met.
    pub fn judge(
        &self,
        name: Option<&Reference>,
        digest: &Digest,
        signatures: &[Signature],
    ) -> Result<Vec<SignedBy>, Refusal> {
        let scope = self.scope_for(name);
        let refuse = |reason: String| Refusal {
            scope: scope.name.clone(),
            reason,
        };
        let mut signed = Vec::new();
        for req in &scope.requirements {
            match req {
                Requirement::InsecureAcceptAnything => {}
                Requirement::Reject => return Err(refuse("images here are refused".into())),
                Requirement::SigstoreSigned { keys, identity } => {
                    match sigstore::best_verdict(keys, signatures, digest, |claimed| {
                        identity_matches(identity, name, claimed)
                    }) {
                        Verdict::Valid { key, identity } => signed.push(SignedBy {
                            scope: scope.name.clone(),
                            key,
                            identity,
                        }),
                        v => return Err(refuse(v.to_string())),
                    }
                }
            }
        }
        Ok(signed)
    }
}

/// Whether a signature naming `claimed` vouches for an image called `name`.
fn identity_matches(rule: &SignedIdentity, name: Option<&Reference>, claimed: &Reference) -> bool {
    let Some(name) = name else {
        // an image without a name can only match a rule that names what it must be
        return match rule {
            SignedIdentity::ExactReference(r) => r == claimed,
            SignedIdentity::ExactRepository(repo) => *repo == claimed.name(),
            _ => false,
        };
    };
    let same_repo = name.name() == claimed.name();
    match rule {
        SignedIdentity::MatchRepository => same_repo,
        SignedIdentity::MatchExact => name == claimed,
        SignedIdentity::MatchRepoDigestOrExact if name.digest().is_some() => same_repo,
        SignedIdentity::MatchRepoDigestOrExact => name == claimed,
        SignedIdentity::ExactReference(r) => r == claimed,
        SignedIdentity::ExactRepository(repo) => *repo == claimed.name(),
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{what} must be a JSON object"))
}

fn only_keys(o: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{what}: {k:?} is not read by depot (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, what: &str) -> Result<Option<&'a str>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{what}: {key} must be a string")),
    }
}

/// A scope of the docker transport is a name, a name with a tag or digest, a namespace, a host, or a wildcard.
fn check_docker_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    if let Some(rest) = scope.strip_prefix("*.") {
        return match !rest.is_empty() && !rest.contains(['/', ':', '*']) {
            true => Ok(()),
            false => Err("a wildcard scope is *.DOMAIN".into()),
        };
    }
    // a host alone (`example.com`, `localhost:5000`) or a repository (`example.com/app[:tag|@digest]`), the
    // latter in the normalised form names are matched in
    if !scope.contains('/') {
        let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if !scope.chars().all(host_char) {
            return Err("not a host, a repository or a reference".into());
        }
        // a name without a dot or port is no host to Docker but a Hub image: say how to write that one
        if !scope.contains(['.', ':']) && scope != "localhost" {
            let hub = Reference::parse(scope).map(|r| r.name()).unwrap_or_default();
            return Err(format!("not a registry host; for the Docker Hub image write {hub:?}"));
        }
        return Ok(());
    }
    let full = Reference::parse(scope).map_err(|e| e.to_string())?;
    let written = match (full.tag(), full.digest()) {
        (_, Some(d)) => format!("{}@{d}", full.name()),
        (Some(t), None) if scope.ends_with(&format!(":{t}")) => format!("{}:{t}", full.name()),
        _ => full.name(),
    };
    match written == scope {
        true => Ok(()),
        false => Err(format!("write the scope fully qualified, as {written:?}")),
    }
}

fn requirements(v: &Value, dir: &Path, at: &str) -> Result<Vec<Requirement>, String> {
    let list = v.as_array().ok_or_else(|| format!("{at}: a list of requirements"))?;
    if list.is_empty() {
        return Err(format!(
            "{at}: an empty list of requirements (write insecureAcceptAnything or reject)"
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| requirement(r, dir, &format!("{at}[{i}]")))
        .collect()
}

fn requirement(v: &Value, dir: &Path, at: &str) -> Result<Requirement, String> {
    let o = object(v, at)?;
    match string(o, "type", at)?.ok_or_else(|| format!("{at}: no type"))? {
        "insecureAcceptAnything" => only_keys(o, &["type"], at).map(|_| Requirement::InsecureAcceptAnything),
        "reject" => only_keys(o, &["type"], at).map(|_| Requirement::Reject),
        "sigstoreSigned" => {
            only_keys(o, &["type", "keyPath", "keyPaths", "keyData", "signedIdentity"], at)?;
            let given = ["keyPath", "keyPaths", "keyData"]
                .iter()
                .filter(|k| o.contains_key(**k))
                .count();
            if given != 1 {
                return Err(format!("{at}: exactly one of keyPath, keyPaths and keyData"));
            }
            let mut pems: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(p) = string(o, "keyPath", at)? {
                pems.push(read_key(dir, p, at)?);
            }
            if let Some(ps) = o.get("keyPaths") {
                for p in ps.as_array().ok_or_else(|| format!("{at}: keyPaths must be a list"))? {
                    let p = p.as_str().ok_or_else(|| format!("{at}: keyPaths must be strings"))?;
                    pems.push(read_key(dir, p, at)?);
                }
            }
            if let Some(d) = string(o, "keyData", at)? {
                let pem = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, d)
                    .map_err(|e| format!("{at}: keyData is not base64: {e}"))?;
                pems.push(("keyData".into(), pem));
            }
            if pems.is_empty() {
                return Err(format!("{at}: keyPaths is empty"));
            }
            let keys = pems
                .iter()
                .map(|(from, pem)| PublicKey::from_pem(pem).map_err(|e| format!("{at}: {from}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let identity = match o.get("signedIdentity") {
                None => SignedIdentity::MatchRepoDigestOrExact,
                Some(i) => signed_identity(i, &format!("{at}.signedIdentity"))?,
            };
            Ok(Requirement::SigstoreSigned { keys, identity })
        }
        "signedBy" => Err(format!(
            "{at}: GPG signatures (signedBy) are not checked by depot; use sigstoreSigned"
        )),
        other => Err(format!("{at}: unknown requirement type {other:?}")),
    }
}

fn read_key(dir: &Path, p: &str, at: &str) -> Result<(String, Vec<u8>), String> {
    let path = dir.join(p);
    let bytes = std::fs::read(&path).map_err(|e| format!("{at}: key {}: {e}", path.display()))?;
    Ok((path.display().to_string(), bytes))
}

fn signed_identity(v: &Value, at: &str) -> Result<SignedIdentity, String> {
    let o = object(v, at)?;
    let t = string(o, "type", at)?.ok_or_else(|| format!("{at}: no type"))?;
    let keys: &[&str] = match t {
        "exactReference" => &["type", "dockerReference"],
        "exactRepository" => &["type", "dockerRepository"],
        _ => &["type"],
    };
    only_keys(o, keys, at)?;
    Ok(match t {
        "matchRepoDigestOrExact" => SignedIdentity::MatchRepoDigestOrExact,
        "matchRepository" => SignedIdentity::MatchRepository,
        "matchExact" => SignedIdentity::MatchExact,
        "exactReference" => {
            let r = string(o, "dockerReference", at)?.ok_or_else(|| format!("{at}: no dockerReference"))?;
            let r = Reference::parse(r).map_err(|e| format!("{at}: dockerReference: {e}"))?;
            if r.tag().is_none() && r.digest().is_none() {
                return Err(format!("{at}: dockerReference needs a tag or digest"));
            }
            SignedIdentity::ExactReference(r)
        }
        "exactRepository" => {
            let r = string(o, "dockerRepository", at)?.ok_or_else(|| format!("{at}: no dockerRepository"))?;
            SignedIdentity::ExactRepository(
                Reference::parse(r)
                    .map_err(|e| format!("{at}: dockerRepository: {e}"))?
                    .name(),
            )
        }
        other => return Err(format!("{at}: unknown signedIdentity type {other:?}")),
    })
}

#[cfg(test)]
mod tests;
