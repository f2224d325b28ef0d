//! Registry authentication, the pure part: `WWW-Authenticate` challenges, credentials and token responses.

use std::fmt;

/// Credentials for one registry. `Debug` never prints secrets.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (Docker's `identitytoken`), used with the token endpoint's POST form.
    pub identity_token: Option<String>,
}

impl Credentials {
    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    pub fn basic_header(&self) -> String {
        use base64::Engine;
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_none()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value (RFC 7235: `scheme param=value, param="quoted, value"`). Several challenges
/// may share a header; Bearer is preferred to Basic, unknown schemes are skipped.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let scheme_end = rest.find(|c: char| c.is_whitespace() || c == ',').unwrap_or(rest.len());
        let scheme = rest[..scheme_end].to_ascii_lowercase();
        rest = rest[scheme_end..].trim_start_matches([' ', '\t', ',']);
        let mut params: Vec<(String, String)> = Vec::new();
        // params until the next token that is not followed by '='
        while let Some(eq) = rest.find('=') {
            let key = &rest[..eq];
            if key.is_empty() || key.contains([' ', ',', '\t']) {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(n)
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                (v, &q[end.min(q.len())..])
            } else {
                let e = after.find(',').unwrap_or(after.len());
                (after[..e].trim().to_string(), &after[e..])
            };
            params.push((key.to_ascii_lowercase(), value));
            rest = remaining.trim_start_matches([' ', '\t', ',']);
        }
        let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
        match scheme.as_str() {
            "basic" => out.push(Challenge::Basic {
                realm: get("realm").unwrap_or_default(),
            }),
            "bearer" => {
                if let Some(realm) = get("realm") {
                    out.push(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    })
                }
            }
            _ => {}
        }
        if scheme.is_empty() {
            break;
        }
    }
    out.sort_by_key(|c| matches!(c, Challenge::Basic { .. }));
    out
}

/// A token endpoint's answer (Docker token spec and OAuth2 form both).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// An OAuth refresh token (Docker's "identity token"), from the `POST` form.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    /// The bearer token and its lifetime in seconds (60 when unstated, per the token spec).
    pub fn into_token(self) -> Option<(String, u64)> {
        let t = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        Some((t, self.expires_in.unwrap_or(60).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into())
            }]
        );
        assert_eq!(
            parse_challenges(r#"Basic realm="basic-realm""#),
            vec![Challenge::Basic {
                realm: "basic-realm".into()
            }]
        );
        let both = parse_challenges(r#"Basic realm="r", Bearer realm="http://t/token", service="s, with comma""#);
        assert_eq!(both.len(), 2);
        assert!(matches!(&both[0], Challenge::Bearer { service: Some(s), .. } if s == "s, with comma"));
        assert_eq!(parse_challenges("Negotiate"), vec![]);
        assert_eq!(parse_challenges(""), vec![]);
        assert_eq!(
            parse_challenges("Bearer service=x"),
            vec![],
            "a bearer challenge without realm is unusable"
        );
        assert_eq!(
            parse_challenges(r#"basic realm=plain"#),
            vec![Challenge::Basic { realm: "plain".into() }]
        );
        assert_eq!(
            parse_challenges(r#"Bearer realm="a\"b""#),
            vec![Challenge::Bearer {
                realm: "a\"b".into(),
                service: None,
                scope: None
            }]
        );
    }

    #[test]
    fn tokens() {
        let t: TokenResponse = serde_json::from_str(r#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(), Some(("abc".into(), 300)));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("xyz".into(), 60)));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }

    #[test]
    fn credentials_never_debug_print_secrets() {
        let c = Credentials::basic("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header(), "Basic dTpodW50ZXIy");
    }
}
