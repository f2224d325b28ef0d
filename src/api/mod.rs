//! The HTTP APIs. Handlers parse a request into a typed call, call one service function and map the result.
//!
//! [`Api`] is what both listeners serve: the station API under its base paths, the Engine API everywhere else,
//! behind one gate. The unix socket is trusted by its file mode and group; on TCP every route needs a session
//! (cookie) or an API token (`Authorization: Bearer`), except `POST …/login` and `/_ping`. The Engine API on TCP
//! is off unless enabled, and then takes tokens only: a browser's cookie never reaches it.

pub mod engine;
pub mod station;

use crate::auth::{Auth, Principal};
use crate::http::{decoded_path, peer_of, Handler, Peer, Req, Resp};
use hyper::StatusCode;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[derive(Clone)]
pub struct Api {
    pub engine: engine::Engine,
    pub station: station::Station,
    auth: Arc<Auth>,
    /// Whether the Engine API answers on TCP (to token holders).
    engine_tcp: bool,
}

impl Api {
    pub fn new(engine: engine::Engine, station: station::Station, auth: Arc<Auth>, engine_tcp: bool) -> Api {
        Api {
            engine,
            station,
            auth,
            engine_tcp,
        }
    }
}

/// The status of each class of error ([`crate::error`]), as the station answers it; the Engine API differs
/// where dockerd does ([`engine::status_of`]).
pub fn status_of(class: crate::error::ErrorClass) -> StatusCode {
    use crate::error::ErrorClass as C;
    match class {
        C::InvalidParameter => StatusCode::BAD_REQUEST,
        C::NotFound => StatusCode::NOT_FOUND,
        C::Conflict => StatusCode::CONFLICT,
        C::Forbidden => StatusCode::FORBIDDEN,
        C::Unauthorized => StatusCode::UNAUTHORIZED,
        C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::Upstream => StatusCode::BAD_GATEWAY,
        C::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        C::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(req: &Req) -> Option<&str> {
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a TCP request is refused: 401 (nobody), 403 (somebody, not for this).
enum Refusal {
    Unauthorized(&'static str),
    Forbidden(&'static str),
}

impl Api {
    /// The token's principal, if the request carries a valid one.
    async fn token_principal(&self, req: &Req) -> Option<Principal> {
        let token = bearer(req)?.to_string();
        let auth = self.auth.clone();
        match crate::pool::run(move || auth.token(&token)).await {
            Ok(t) => t.map(|t| Principal::Token { id: t.id, name: t.name }),
            Err(e) => {
                log::warn!("checking an API token: {e}");
                None
            }
        }
    }

    async fn station_call(&self, req: &Req, tcp: bool, rest: &str) -> Result<station::Caller, Refusal> {
        let session = station::session_cookie(req);
        if !tcp {
            return Ok(station::Caller {
                principal: Some(Principal::Local),
                session,
            });
        }
        if self.station.find(req.method(), rest).is_some_and(station::is_public) {
            return Ok(station::Caller {
                principal: None,
                session,
            });
        }
        if let Some(s) = session.as_deref().and_then(|id| self.auth.session(id)) {
            return Ok(station::Caller {
                principal: Some(Principal::User {
                    name: s.user,
                    admin: s.admin,
                }),
                session,
            });
        }
        match self.token_principal(req).await {
            Some(p) => Ok(station::Caller {
                principal: Some(p),
                session,
            }),
            None => Err(Refusal::Unauthorized(
                "log in (POST /api/v1/login) or send an API token",
            )),
        }
    }

    async fn engine_call(&self, req: &Req, tcp: bool, path: &str) -> Result<(), Refusal> {
        if !tcp || engine::is_ping(path) {
            return Ok(());
        }
        if self.token_principal(req).await.is_none() {
            return Err(Refusal::Unauthorized(
                "the Engine API on TCP needs an API token (Authorization: Bearer; `depot token create`)",
            ));
        }
        if !self.engine_tcp {
            return Err(Refusal::Forbidden(
                "the Engine API is not served on TCP here (engine_tcp = true enables it for token holders)",
            ));
        }
        Ok(())
    }
}

impl Handler for Api {
    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send>> {
        let api = self.clone();
        Box::pin(async move {
            let tcp = matches!(peer_of(&req), Peer::Tcp(_));
            let https = crate::http::via_https(&req);
            let path = decoded_path(req.uri().path());
            if crate::web::is_page(&path) {
                // the page's files hold no data: no session needed to load the login
                return crate::web::serve(&req, &path);
            }
            let mut r = api.route(req, tcp, &path).await;
            if https {
                secure_cookies(&mut r);
            }
            // what a browser reads from TCP gets the page's policy too (an API answer is never a page)
            if tcp {
                crate::web::secure(r)
            } else {
                r
            }
        })
    }

    fn refuse(&self, status: StatusCode, message: &str) -> Resp {
        // the plumbing refuses before routing: the Engine's shape, which the docker CLI prints
        crate::web::secure(self.engine.refuse(status, message))
    }
}

/// Mark every cookie of `r` `Secure`: the browser reached the NAS over HTTPS (through its proxy), so the session
/// must never travel over plain HTTP.
fn secure_cookies(r: &mut Resp) {
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().cloned().collect();
    r.headers_mut().remove("set-cookie");
    for c in cookies {
        let mut v = c.as_bytes().to_vec();
        if !c.to_str().is_ok_and(|t| t.to_ascii_lowercase().contains("; secure")) {
            v.extend_from_slice(b"; Secure");
        }
        if let Ok(v) = hyper::header::HeaderValue::from_bytes(&v) {
            r.headers_mut().append("set-cookie", v);
        }
    }
}

impl Api {
    async fn route(&self, req: Req, tcp: bool, path: &str) -> Resp {
        let api = self;
        {
            match station::strip_base(path) {
                Some(rest) => match api.station_call(&req, tcp, rest).await {
                    Ok(caller) => api.station.handle(req, caller).await,
                    Err(Refusal::Unauthorized(m)) => {
                        station::StationError::new(StatusCode::UNAUTHORIZED, m).into_response()
                    }
                    Err(Refusal::Forbidden(m)) => station::StationError::new(StatusCode::FORBIDDEN, m).into_response(),
                },
                None => match api.engine_call(&req, tcp, path).await {
                    Ok(()) => api.engine.handle(req).await,
                    Err(Refusal::Unauthorized(m)) => {
                        let mut r = api.engine.refuse(StatusCode::UNAUTHORIZED, m);
                        r.headers_mut().insert(
                            "www-authenticate",
                            "Bearer realm=\"depot\"".parse().expect("static header"),
                        );
                        r
                    }
                    Err(Refusal::Forbidden(m)) => api.engine.refuse(StatusCode::FORBIDDEN, m),
                },
            }
        }
    }
}
