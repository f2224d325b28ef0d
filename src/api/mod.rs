//! The HTTP APIs. Handlers parse a request into a typed call, call one service function and map the result.
//!
//! [`Api`] is what both listeners serve: a table of [`Mount`]s (base paths, the API, its access policy), first
//! match first, behind one gate: the station API under its base paths, the Engine API everywhere else. Another API
//! (a registry under `/v2`) is one more row and an implementation of [`Served`]. The unix socket is trusted by its file mode and group; on TCP every route needs a session
//! (cookie) or an API token (`Authorization: Bearer`), except `POST …/login` and `/_ping`. The Engine API on TCP
//! is off unless enabled, and then takes tokens only: a browser's cookie never reaches it.

pub mod engine;
pub mod registry;
pub mod station;

use crate::auth::{Auth, Principal};
use crate::http::{decoded_path, peer_of, Handler, Peer, Req, Resp};
use hyper::StatusCode;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// An answer on its way.
pub type Answering<'a> = Pin<Box<dyn Future<Output = Resp> + Send + 'a>>;

/// One API the listeners serve. The gate ([`Api::admit`]) decides who may call it; the API only answers.
pub trait Served: Send + Sync {
    /// Whether `rest` (the path below the mount) names a route anyone may call on TCP (a login, a ping).
    fn is_public(&self, req: &Req, rest: &str) -> bool;
    /// Answer a request the gate let through.
    fn handle(&self, req: Req, caller: Caller) -> Answering<'_>;
    /// A refusal in the API's own error shape.
    fn refuse(&self, status: StatusCode, message: &str) -> Resp;
    /// The `WWW-Authenticate` challenge a 401 for `rest` carries, if the API's clients expect one (a registry's
    /// token flow).
    fn challenge(&self, _req: &Req, _rest: &str) -> Option<String> {
        None
    }
}

/// Who may call a mounted API on TCP (the unix socket is trusted by its mode and group).
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// A session (cookie) or an API token; public routes need neither. The 401's hint.
    SessionOrToken(&'static str),
    /// An API token only, so a browser's cookie never reaches it, and only while `served`; public routes need
    /// nothing. The 401's and the 403's hints.
    Token {
        served: bool,
        needs: &'static str,
        off: &'static str,
    },
    /// The LAN registry: an API token, or a pull token its token endpoint issued, as a bearer, or an API token
    /// as Basic's password (what `docker login` and skopeo's `--creds` send); everyone when `anonymous`. The
    /// 401's hint; it carries the API's challenge.
    Registry { anonymous: bool, needs: &'static str },
}

/// A row of the table: the base paths an API answers under (`""`: every path no earlier row took), the API,
/// and its access policy.
pub struct Mount {
    pub bases: &'static [&'static str],
    pub api: Arc<dyn Served>,
    pub access: Access,
}

impl Mount {
    /// The path below this mount's base, if `path` is under one.
    fn strip<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.bases.iter().find_map(|b| {
            let rest = path.strip_prefix(b)?;
            (b.is_empty() || rest.is_empty() || rest.starts_with('/')).then_some(rest)
        })
    }
}

/// What both listeners serve: the table of mounted APIs, first match first, behind one gate.
#[derive(Clone)]
pub struct Api {
    mounts: Arc<Vec<Mount>>,
    auth: Arc<Auth>,
    /// Whether the owner's page is served beside the APIs (not on the LAN registry's listener).
    page: bool,
}

impl Api {
    /// The station API under its base paths, the Engine API everywhere else (on TCP only for token holders,
    /// and only when `engine_tcp`).
    pub fn new(engine: engine::Engine, station: station::Station, auth: Arc<Auth>, engine_tcp: bool) -> Api {
        Api::of(
            vec![
                Mount {
                    bases: &station::BASES,
                    api: Arc::new(station),
                    access: Access::SessionOrToken("log in (POST /api/v1/login) or send an API token"),
                },
                Mount {
                    bases: &[""],
                    api: Arc::new(engine),
                    access: Access::Token {
                        served: engine_tcp,
                        needs: "the Engine API on TCP needs an API token (Authorization: Bearer; `depot token create`)",
                        off:
                            "the Engine API is not served on TCP here (engine_tcp = true enables it for token holders)",
                    },
                },
            ],
            auth,
        )
    }

    /// Serve `mounts`; the last should take every path (`bases: &[""]`), else other paths get a bare 404.
    pub fn of(mounts: Vec<Mount>, auth: Arc<Auth>) -> Api {
        Api {
            mounts: Arc::new(mounts),
            auth,
            page: true,
        }
    }

    /// The LAN registry's listener: the registry under `/v2` and nothing else, not even the page.
    pub fn registry(registry: registry::Registry, auth: Arc<Auth>, anonymous: bool) -> Api {
        Api {
            mounts: Arc::new(vec![Mount {
                bases: &registry::BASES,
                api: Arc::new(registry),
                access: Access::Registry {
                    anonymous,
                    needs: "this registry needs an API token of depot (`depot token create`): as the password, or from its token endpoint",
                },
            }]),
            auth,
            page: false,
        }
    }
}

/// Who is asking, as the gate established it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` for a public route called on TCP without credentials.
    pub principal: Option<Principal>,
    /// The session cookie's value, when one came with the request.
    pub session: Option<String>,
}

impl Caller {
    /// The user name events and answers show.
    pub fn user(&self) -> &str {
        match &self.principal {
            Some(Principal::User { name, .. }) => name,
            Some(Principal::Token { name, .. }) => name,
            Some(Principal::Local) => "admin",
            None => "anonymous",
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

/// The password of an `Authorization: Basic …` header (the user name is not checked: a token is the secret).
fn basic_password(req: &Req) -> Option<String> {
    use base64::Engine;
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, creds) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(creds.trim()).ok()?;
    let (_, password) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some(password.to_string())
}

/// Why a TCP request is refused: 401 (nobody), 403 (somebody, not for this).
enum Refusal {
    Unauthorized(&'static str),
    Forbidden(&'static str),
}

impl Api {
    /// The token's principal, if the request carries a valid one.
    async fn token_principal(&self, req: &Req) -> Option<Principal> {
        self.api_token(bearer(req)?.to_string()).await
    }

    /// The principal of an API token presented as Basic's password.
    async fn basic_principal(&self, req: &Req) -> Option<Principal> {
        self.api_token(basic_password(req)?).await
    }

    /// The principal of `token`, if it is one of depot's API tokens.
    async fn api_token(&self, token: String) -> Option<Principal> {
        let auth = self.auth.clone();
        match crate::pool::run(move || auth.token(&token)).await {
            Ok(t) => t.map(|t| Principal::Token { id: t.id, name: t.name }),
            Err(e) => {
                log::warn!("checking an API token: {e}");
                None
            }
        }
    }

    /// A registry client's principal: a pull token (memory only, no database read), an API token as a bearer,
    /// or one as Basic's password.
    async fn registry_principal(&self, req: &Req) -> Option<Principal> {
        if let Some(p) = bearer(req).and_then(|t| self.auth.pull_token(t)) {
            return Some(p);
        }
        match self.token_principal(req).await {
            Some(p) => Some(p),
            None => self.basic_principal(req).await,
        }
    }

    /// The gate: who the caller is, or why the request is refused, by the mount's access policy.
    async fn admit(&self, mount: &Mount, req: &Req, tcp: bool, rest: &str) -> Result<Caller, Refusal> {
        let session = station::session_cookie(req);
        let caller = |principal| Caller {
            principal,
            session: session.clone(),
        };
        if !tcp {
            return Ok(caller(Some(Principal::Local)));
        }
        let public = mount.api.is_public(req, rest);
        match mount.access {
            // credentials count even on public routes: the token endpoint issues for the API token it is shown
            Access::Registry { anonymous, needs } => match self.registry_principal(req).await {
                Some(p) => Ok(caller(Some(p))),
                None if anonymous || public => Ok(caller(None)),
                None => Err(Refusal::Unauthorized(needs)),
            },
            _ if public => Ok(caller(None)),
            Access::SessionOrToken(needs) => {
                if let Some(s) = session.as_deref().and_then(|id| self.auth.session(id)) {
                    return Ok(caller(Some(Principal::User {
                        name: s.user,
                        admin: s.admin,
                    })));
                }
                self.token_principal(req)
                    .await
                    .map(|p| caller(Some(p)))
                    .ok_or(Refusal::Unauthorized(needs))
            }
            Access::Token { served, needs, off } => match self.token_principal(req).await {
                None => Err(Refusal::Unauthorized(needs)),
                Some(_) if !served => Err(Refusal::Forbidden(off)),
                Some(p) => Ok(caller(Some(p))),
            },
        }
    }
}

impl Handler for Api {
    fn handle(&self, req: Req) -> Pin<Box<dyn Future<Output = Resp> + Send>> {
        let api = self.clone();
        Box::pin(async move {
            let tcp = matches!(peer_of(&req), Peer::Tcp(_));
            let https = crate::http::via_https(&req);
            let path = decoded_path(req.uri().path());
            if api.page && crate::web::is_page(&path) {
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
        // the plumbing refuses before routing: in the shape of the catch-all API (the Engine's, which the docker
        // CLI prints)
        let r = match self.mounts.last() {
            Some(m) => m.api.refuse(status, message),
            None => crate::http::full(status, "text/plain; charset=utf-8", format!("{message}\n")),
        };
        crate::web::secure(r)
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
        let Some((mount, rest)) = self.mounts.iter().find_map(|m| Some((m, m.strip(path)?))) else {
            return crate::http::full(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "page not found\n");
        };
        match self.admit(mount, &req, tcp, rest).await {
            Ok(caller) => mount.api.handle(req, caller).await,
            Err(Refusal::Unauthorized(m)) => {
                let mut r = mount.api.refuse(StatusCode::UNAUTHORIZED, m);
                let challenge = mount.api.challenge(&req, rest);
                if let Some(v) = challenge.and_then(|c| hyper::header::HeaderValue::from_str(&c).ok()) {
                    r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
                }
                r
            }
            Err(Refusal::Forbidden(m)) => mount.api.refuse(StatusCode::FORBIDDEN, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{full, serve_tcp, TcpPolicy};
    use std::io::{Read, Write};

    /// An API that answers with its name and the path below its mount; `/open` is public.
    struct Named(&'static str);

    impl Served for Named {
        fn is_public(&self, _req: &Req, rest: &str) -> bool {
            rest == "/open"
        }
        fn handle(&self, req: Req, caller: Caller) -> Answering<'_> {
            let body = format!("{} {} {}", self.0, req.uri().path(), caller.user());
            Box::pin(async move { full(StatusCode::OK, "text/plain", body) })
        }
        fn refuse(&self, status: StatusCode, message: &str) -> Resp {
            full(status, "text/plain", format!("{} refuses: {message}", self.0))
        }
    }

    fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        let status = r[9..12].parse().unwrap();
        (status, r.split_once("\r\n\r\n").unwrap().1.to_string())
    }

    /// A new API is one row: its base, its answers and its policy; the rows before it keep theirs.
    #[test]
    fn each_row_routes_its_bases_with_its_own_access_policy() {
        let db = Arc::new(crate::store::Db::open_in_memory().unwrap());
        let auth = Arc::new(Auth::new(db));
        let (token, _) = auth.create_token("ci").unwrap();
        let api = Api::of(
            vec![
                Mount {
                    bases: &["/v2"],
                    api: Arc::new(Named("registry")),
                    access: Access::Token {
                        served: true,
                        needs: "a token",
                        off: "off",
                    },
                },
                Mount {
                    bases: &["/closed"],
                    api: Arc::new(Named("closed")),
                    access: Access::Token {
                        served: false,
                        needs: "a token",
                        off: "not served",
                    },
                },
                Mount {
                    bases: &[""],
                    api: Arc::new(Named("rest")),
                    access: Access::SessionOrToken("log in"),
                },
            ],
            auth,
        );
        let listener = smol::block_on(async_net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Arc<dyn Handler> = Arc::new(api);
        std::thread::spawn(move || {
            smol::block_on(serve_tcp(
                listener,
                handler,
                crate::http::Serving {
                    policy: Some(TcpPolicy::default()),
                    max_connections: 16,
                    ..Default::default()
                },
            ))
        });

        assert_eq!(get(addr, "/v2/x", None), (401, "registry refuses: a token".into()));
        assert_eq!(get(addr, "/v2/x", Some(&token)), (200, "registry /v2/x ci".into()));
        assert_eq!(get(addr, "/v2/open", None), (200, "registry /v2/open anonymous".into()));
        assert_eq!(
            get(addr, "/v2", Some("dpt_wrong")),
            (401, "registry refuses: a token".into())
        );
        // a base matches whole segments only: /v2x is the catch-all's
        assert_eq!(get(addr, "/v2x", None), (401, "rest refuses: log in".into()));
        assert_eq!(
            get(addr, "/closed/x", Some(&token)),
            (403, "closed refuses: not served".into())
        );
        assert_eq!(get(addr, "/closed/x", None), (401, "closed refuses: a token".into()));
        assert_eq!(get(addr, "/other", Some(&token)), (200, "rest /other ci".into()));
        assert_eq!(get(addr, "/open", None), (200, "rest /open anonymous".into()));
    }
}
