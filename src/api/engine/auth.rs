//! `X-Registry-Auth`: base64url JSON of Docker's AuthConfig. Decoded leniently (padded or not, URL-safe or
//! standard alphabet, null fields) and never fatal: a bad header means anonymous, as dockerd does for pulls.

use crate::registry::Credentials;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// `POST /auth` (spec §5.12): check an AuthConfig against its registry. 200 with `Status` and `IdentityToken`,
/// 401 for refused credentials.
pub async fn login(e: &super::Engine, req: crate::http::Req) -> Result<crate::http::Resp, super::ApiError> {
    use hyper::StatusCode;
    let body = crate::http::read_body(req.into_body(), crate::http::MAX_SMALL_BODY).await?;
    let bad = |m: String| super::ApiError::new(StatusCode::BAD_REQUEST, m);
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad(format!("invalid auth config: {e}")))?;
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let creds = Credentials {
        username: get("username"),
        password: get("password"),
        identity_token: Some(get("identitytoken")).filter(|t| !t.is_empty()),
    };
    if creds.is_empty() {
        return Err(bad("a username and password, or an identity token, are needed".into()));
    }
    let (images, server) = (e.images.clone(), get("serveraddress"));
    let token = crate::pool::run(move || images.registries.login(&server, creds)).await?;
    Ok(crate::http::json(
        StatusCode::OK,
        &super::dto::AuthResponse {
            identity_token: token.unwrap_or_default(),
            status: "Login Succeeded",
        },
    ))
}

pub fn decode(header: Option<&str>) -> Option<Credentials> {
    let h = header?.trim();
    if h.is_empty() || h == "null" {
        return None;
    }
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let raw = GeneralPurpose::new(&alphabet::URL_SAFE, cfg)
        .decode(h)
        .or_else(|_| GeneralPurpose::new(&alphabet::STANDARD, cfg).decode(h))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let get = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (mut username, mut password) = (get("username").unwrap_or_default(), get("password").unwrap_or_default());
    if username.is_empty() {
        // Legacy form: `auth` = base64("user:pass").
        if let Some(pair) = get("auth")
            .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
            .and_then(|b| String::from_utf8(b).ok())
        {
            if let Some((u, p)) = pair.split_once(':') {
                username = u.to_string();
                password = p.to_string();
            }
        }
    }
    let c = Credentials {
        username,
        password,
        identity_token: get("identitytoken"),
    };
    (!c.is_empty()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_client_form() {
        // captured from the docker CLI: {"username":"u","password":"p","serveraddress":"127.0.0.1:5000"}
        let cli = "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJzZXJ2ZXJhZGRyZXNzIjoiMTI3LjAuMC4xOjUwMDAifQ==";
        assert_eq!(decode(Some(cli)), Some(Credentials::basic("u", "p")));
        assert_eq!(
            decode(Some(cli.trim_end_matches('='))),
            Some(Credentials::basic("u", "p"))
        );
        for anon in [
            None,
            Some(""),
            Some("e30="),
            Some("e30"),
            Some("null"),
            Some("!!!not base64"),
            Some("bm90IGpzb24="),
        ] {
            assert_eq!(decode(anon), None, "{anon:?}");
        }
        let py = base64::engine::general_purpose::URL_SAFE.encode(br#"{"username":"a","password":"b?>","email":null}"#);
        assert_eq!(decode(Some(&py)), Some(Credentials::basic("a", "b?>")));
        let std = base64::engine::general_purpose::STANDARD.encode(br#"{"username":"a","password":"b?>"}"#);
        assert_eq!(decode(Some(&std)), Some(Credentials::basic("a", "b?>")));
        let legacy = base64::engine::general_purpose::URL_SAFE.encode(br#"{"auth":"dTpw"}"#);
        assert_eq!(decode(Some(&legacy)), Some(Credentials::basic("u", "p")));
        let tok = base64::engine::general_purpose::URL_SAFE.encode(br#"{"identitytoken":"rt"}"#);
        assert_eq!(decode(Some(&tok)).unwrap().identity_token.as_deref(), Some("rt"));
    }
}
