//! `POST /login`, `GET /login_refresh`, `PUT /logout` (spec §1.2) and API tokens (`/tokens`, depot's own, for
//! scripts and the docker CLI on TCP).

use super::dto;
use super::{blocking, ok, require_admin, Answer, Caller, Station, StationError};
use crate::auth::{Principal, Session, SESSION_LIFETIME};
use crate::http::{json, read_body, Req, MAX_SMALL_BODY};
use hyper::StatusCode;

/// The session cookie's name.
pub const COOKIE: &str = "depot_session";

/// The value of our session cookie among the request's cookies.
pub fn session_cookie(req: &Req) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `r` with our cookie set to `value` for `max_age` seconds (0 ends it).
fn with_cookie(mut r: crate::http::Resp, value: &str, max_age: u64) -> crate::http::Resp {
    let c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    r.headers_mut().insert("set-cookie", c.parse().expect("hex cookie"));
    r
}

/// What login and login_refresh answer (spec §1.2).
fn login_info(s: &Session) -> dto::Session {
    let logintime = time::OffsetDateTime::from_unix_timestamp(s.login_time)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_default();
    dto::Session {
        anonymous: false,
        is_admin: s.admin,
        logintime,
        username: s.user.clone(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: Option<String>,
    password: Option<String>,
    /// A QTS session id (2021 docs); depot has its own users.
    sid: Option<String>,
}

/// The 2015 form body (`username=…&password=…`) or the 2021 JSON one.
fn parse_login(body: &[u8]) -> Result<(String, String), StationError> {
    let b: LoginBody = if body.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{') {
        serde_json::from_slice(body).map_err(|e| StationError::bad_request(format!("malformed login body: {e}")))?
    } else {
        let mut b = LoginBody {
            username: None,
            password: None,
            sid: None,
        };
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "username" => b.username = Some(v.into_owned()),
                "password" => b.password = Some(v.into_owned()),
                "sid" => b.sid = Some(v.into_owned()),
                other => return Err(StationError::bad_request(format!("unknown login field {other:?}"))),
            }
        }
        b
    };
    match b {
        LoginBody {
            username: Some(u),
            password: Some(p),
            ..
        } => Ok((u, p)),
        LoginBody { sid: Some(_), .. } => Err(StationError::bad_request(
            "login with a QTS sid is not supported: log in with depot's username and password",
        )),
        _ => Err(StationError::bad_request("username and password are required")),
    }
}

pub async fn login(st: &Station, req: Req) -> Answer {
    let peer = crate::http::client_ip(&req);
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let (user, password) = parse_login(&body)?;
    let attempt = st.auth.reserve(&user, peer)?;
    // the slot is awaited here, not on a pool thread: logins waiting for a check hold no thread
    let _slot = st.auth.verify_slot().await;
    let auth = st.auth.clone();
    let s = blocking(move || auth.check(attempt, &password)).await?;
    Ok(with_cookie(
        json(StatusCode::OK, &login_info(&s)),
        &s.id,
        SESSION_LIFETIME.as_secs(),
    ))
}

fn no_session() -> StationError {
    StationError::new(StatusCode::UNAUTHORIZED, "not logged in")
}

pub fn refresh(st: &Station, caller: &Caller) -> Answer {
    let s = caller
        .session
        .as_deref()
        .and_then(|id| st.auth.refresh(id))
        .ok_or_else(no_session)?;
    Ok(with_cookie(
        json(StatusCode::OK, &login_info(&s)),
        &s.id,
        SESSION_LIFETIME.as_secs(),
    ))
}

pub fn logout(st: &Station, caller: &Caller) -> Answer {
    let s = caller
        .session
        .as_deref()
        .and_then(|id| st.auth.logout(id))
        .ok_or_else(no_session)?;
    Ok(with_cookie(
        json(StatusCode::OK, &dto::LoggedOut { username: s.user }),
        "",
        0,
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
}

pub async fn create_token(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: TokenBody =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed token body: {e}")))?;
    let auth = st.auth.clone();
    let (token, row) = blocking(move || auth.create_token(&b.name)).await?;
    Ok(json(
        StatusCode::CREATED,
        &dto::NewToken {
            created_at: row.created_at,
            id: row.id,
            name: row.name,
            token,
        },
    ))
}

pub async fn list_tokens(st: &Station, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let auth = st.auth.clone();
    ok(&blocking(move || auth.tokens()).await?)
}

pub async fn delete_token(st: &Station, caller: &Caller, id: &str) -> Answer {
    require_admin(caller)?;
    let id: i64 = id
        .parse()
        .map_err(|_| StationError::bad_request(format!("token id {id:?} is not a number")))?;
    if let Some(Principal::Token { id: own, .. }) = &caller.principal {
        log::info!("token {own} revokes token {id}");
    }
    let auth = st.auth.clone();
    blocking(move || auth.revoke_token(id)).await?;
    ok(&dto::Done {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_bodies() {
        assert_eq!(
            parse_login(b"username=admin&password=a+b%26c").unwrap(),
            ("admin".into(), "a b&c".into())
        );
        assert_eq!(
            parse_login(br#" {"username":"admin","password":"x"}"#).unwrap(),
            ("admin".into(), "x".into())
        );
        for bad in [
            &b"username=admin"[..],
            b"",
            br#"{"username":"a"}"#,
            br#"{"username":"a","password":"b","extra":1}"#,
            b"username=a&password=b&evil=1",
            br#"{"sid":"x"}"#,
            b"{not json",
        ] {
            assert!(parse_login(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
