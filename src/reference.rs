//! Image references: the grammar and Docker Hub normalisation of `github.com/distribution/reference`, exactly
//! (spec/docker-engine-api.md §3). Pure: no I/O.
//!
//! A parsed [`Reference`] is always fully qualified (`docker.io/library/busybox`); [`Reference::familiar`] gives
//! the short form every Docker output uses.

use crate::digest::Digest;
use std::fmt;

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Errors carry Docker's exact messages: clients and tests grep for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    Format,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("repository name must have at least one component")]
    Empty,
    #[error("repository name must not be more than 255 characters")]
    TooLong,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid tag format")]
    Tag,
    #[error("invalid checksum digest format")]
    DigestFormat,
    #[error("invalid checksum digest length")]
    DigestLength,
    #[error("unsupported digest algorithm")]
    DigestAlgorithm,
}

/// A normalised, fully qualified image reference: `domain/path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// `ParseNormalizedNamed`: accepts the familiar forms (`busybox`, `foo/bar:1`, `localhost:5000/x@sha256:…`).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if is_full_hex_id(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or("");
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_string()));
        }
        parse_qualified(&domain, &remainder, s)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`, no tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `TagNameOnly`: `:latest` when there is neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// `WithTag(TrimNamed(ref), tag)`.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag);
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// `WithDigest(TrimNamed(ref), digest)`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The familiar name: `docker.io/` stripped, and `library/` for single-component official images.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The familiar string used in every Docker output: `busybox:latest`, `foo/bar@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The familiar form of a stored canonical ref name; a name that no longer parses is shown as it is.
    pub fn familiar_of(canonical: &str) -> String {
        Reference::parse(canonical)
            .map(|r| r.familiar())
            .unwrap_or_else(|_| canonical.to_string())
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

/// Split a written reference `name[:tag]` at its tag: the last `:` that a `/` does not follow (so a registry's
/// `host:port` stays with the name).
pub fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

impl fmt::Display for Reference {
    /// The canonical, fully qualified string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

/// What an image endpoint's `{name}` can be (`ParseAnyReference`): an image id or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReference {
    /// A full id: 64 hex characters, or `algo:hex`.
    Id(Digest),
    Named(Reference),
}

impl AnyReference {
    pub fn parse(s: &str) -> Result<AnyReference, ReferenceError> {
        if is_full_hex_id(s) {
            return Ok(AnyReference::Id(parse_digest(&format!("sha256:{s}"))?));
        }
        if let Some((algo, hex)) = s.split_once(':') {
            if !algo.contains('/') && looks_like_digest(algo, hex) {
                return Ok(AnyReference::Id(parse_digest(s)?));
            }
        }
        Reference::parse(s).map(AnyReference::Named)
    }
}

fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            } else {
                (first.to_string(), name[i + 1..].to_string())
            }
        }
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `Parse(domain + "/" + remainder)` with the domain already split off.
fn parse_qualified(domain: &str, remainder: &str, original: &str) -> Result<Reference, ReferenceError> {
    if original.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let (name_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (remainder, None),
    };
    let (path, tag) = match name_tag.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (name_tag, None),
    };
    let shape_ok = valid_domain(domain)
        && !path.is_empty()
        && path.split('/').all(valid_path_component)
        && tag.is_none_or(valid_tag)
        && digest.is_none_or(|d| d.split_once(':').is_some_and(|(a, h)| looks_like_digest(a, h)));
    if !shape_ok {
        // Docker reports uppercase separately when the lowercased string would have parsed.
        let lower_ok = path.split('/').all(|c| valid_path_component(&c.to_lowercase()));
        if path.chars().any(|c| c.is_ascii_uppercase()) && lower_ok {
            return Err(ReferenceError::Uppercase(path.to_string()));
        }
        return Err(ReferenceError::Format);
    }
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::TooLong);
    }
    let digest = digest.map(parse_digest).transpose()?;
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// The reference grammar's digest shape: `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`.
fn looks_like_digest(algo: &str, hex: &str) -> bool {
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|c| {
        let mut b = c.bytes();
        b.next().is_some_and(|f| f.is_ascii_alphabetic()) && b.all(|x| x.is_ascii_alphanumeric())
    });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `Parse` + `Validate` with its three distinct errors.
fn parse_digest(s: &str) -> Result<Digest, ReferenceError> {
    let (algo, hex) = s.split_once(':').ok_or(ReferenceError::DigestFormat)?;
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::DigestAlgorithm),
    };
    if hex.len() != len {
        return Err(ReferenceError::DigestLength);
    }
    s.parse().map_err(|_| ReferenceError::DigestFormat)
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[a-z0-9]+((?:[._]|__|[-]+)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let dashes = sep.bytes().all(|x| x == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
}

/// `host[:port]`, host a domain name, an IPv4 address (a domain name by shape) or `[ipv6]`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => (None, p.strip_prefix(':').map(Some).unwrap_or(Some(""))),
                }
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|c| {
                let b = c.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
            })
    });
    port_ok && host_ok
}

#[cfg(test)]
mod split_tests {
    use super::split_tag;

    #[test]
    fn tags_and_ports() {
        assert_eq!(split_tag("busybox:1"), ("busybox", Some("1")));
        assert_eq!(split_tag("127.0.0.1:5000/test"), ("127.0.0.1:5000/test", None));
        assert_eq!(split_tag("127.0.0.1:5000/test:1"), ("127.0.0.1:5000/test", Some("1")));
        assert_eq!(split_tag("busybox"), ("busybox", None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalisation_table() {
        // input, canonical, familiar
        let cases: &[(&str, &str, &str)] = &[
            ("busybox", "docker.io/library/busybox", "busybox"),
            ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
            ("library/busybox", "docker.io/library/busybox", "busybox"),
            ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
            ("index.docker.io/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
            ("foo/bar:1", "docker.io/foo/bar:1", "foo/bar:1"),
            ("docker.io/foo/bar/baz", "docker.io/foo/bar/baz", "foo/bar/baz"),
            ("docker.io/library/a/b", "docker.io/library/a/b", "library/a/b"),
            ("localhost/x", "localhost/x", "localhost/x"),
            ("localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x:y"),
            (
                "127.0.0.1:5000/test:1",
                "127.0.0.1:5000/test:1",
                "127.0.0.1:5000/test:1",
            ),
            ("ghcr.io/o/r@", "", ""),
            ("Foo/bar", "Foo/bar", "Foo/bar"),
            ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"),
            (
                "a.b-c.d/e__f.g-h---i/j_k:T_a.g-1",
                "a.b-c.d/e__f.g-h---i/j_k:T_a.g-1",
                "a.b-c.d/e__f.g-h---i/j_k:T_a.g-1",
            ),
        ];
        for (input, canon, fam) in cases {
            if canon.is_empty() {
                assert!(Reference::parse(input).is_err(), "{input}");
                continue;
            }
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), *canon, "{input}");
            assert_eq!(r.familiar(), *fam, "{input}");
        }
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.familiar(), format!("busybox@{D}"));
        assert_eq!(r.digest().unwrap().as_str(), D);
        let r = Reference::parse(&format!("localhost:5000/a/b:t@{D}")).unwrap();
        assert_eq!((r.domain(), r.path(), r.tag()), ("localhost:5000", "a/b", Some("t")));
    }

    #[test]
    fn error_table() {
        use ReferenceError::*;
        let long = format!("{}/x", "a".repeat(255));
        let cases: Vec<(String, ReferenceError)> = vec![
            ("".into(), Empty),
            (":".into(), Format),
            ("busybox:".into(), Format),
            ("Busybox".into(), Uppercase("library/Busybox".into())),
            ("foo/Bar".into(), Uppercase("foo/Bar".into())),
            ("localhost:5000/Foo:1".into(), Uppercase("Foo".into())),
            (HEX.into(), HexName(HEX.into())),
            ("a//b".into(), Format),
            ("-a".into(), Format),
            ("a-".into(), Format),
            ("a..b".into(), Format),
            ("a___b".into(), Format),
            ("a/b:".into(), Format),
            ("a:-tag".into(), Format),
            (format!("a:{}", "t".repeat(129)), Format),
            ("a b".into(), Format),
            ("localhost:port/x".into(), Format),
            ("-bad.host/x".into(), Format),
            (long, TooLong),
            ("a@sha256:abc".into(), Format),
            (format!("a@sha256:{}", &HEX[..40]), DigestLength),
            (format!("a@md5:{HEX}"), DigestAlgorithm),
            (format!("a@sha256:{}", HEX.to_uppercase()), DigestFormat),
        ];
        for (input, want) in cases {
            assert_eq!(Reference::parse(&input), Err(want.clone()), "{input:?}");
        }
        assert_eq!(
            Reference::parse("Busybox").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
    }

    #[test]
    fn tags_and_digests() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.clone().with_default_tag().familiar(), "busybox:latest");
        assert_eq!(
            r.with_tag("1.36").unwrap().to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(r.with_tag("-x"), Err(ReferenceError::Tag));
        let with_both = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(with_both.clone().with_default_tag(), with_both);
        assert_eq!(with_both.name(), "docker.io/library/busybox");
    }

    #[test]
    fn any_reference() {
        assert_eq!(AnyReference::parse(HEX).unwrap(), AnyReference::Id(D.parse().unwrap()));
        assert_eq!(AnyReference::parse(D).unwrap(), AnyReference::Id(D.parse().unwrap()));
        assert!(matches!(AnyReference::parse("abc123").unwrap(), AnyReference::Named(_)));
        assert!(matches!(
            AnyReference::parse("localhost:5000/x").unwrap(),
            AnyReference::Named(_)
        ));
        assert_eq!(
            AnyReference::parse(&format!("sha256:{}", &HEX[..40])),
            Err(ReferenceError::DigestLength)
        );
    }
}
