//! The Container Station API (spec/container-station-api.md), for the NAS's web UI and scripts written for
//! Container Station: sessions and tokens, the image catalogs, downloads to watch and steer.
//!
//! It answers under every base path Container Station has used (`/api/v1`, `/containerstation/api/v1`,
//! `/container-station/api/v1`), and every error as `{"error":{"code":N,"message":"…"}}`.

mod background;
mod bundle;
pub mod dto;
mod ensure;
mod events;
mod images;
mod lxc;
mod pins;
mod registries;
mod session;

pub use session::session_cookie;

use crate::auth::{Auth, Principal};
use crate::http::{decoded_path, json, Found, Params, Req, Resp, Router};
use crate::image::{ImageError, ImageService};
use hyper::{Method, StatusCode};
use std::sync::Arc;

/// Base paths of the API, newest last.
pub const BASES: [&str; 3] = ["/api/v1", "/containerstation/api/v1", "/container-station/api/v1"];

/// The path below the API's base, if `path` is under one (`/api/v1/image/` → `/image/`).
pub fn strip_base(path: &str) -> Option<&str> {
    BASES.iter().find_map(|b| {
        let rest = path.strip_prefix(b)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    })
}

#[derive(Clone)]
pub struct Station {
    pub images: Arc<ImageService>,
    pub lxc: Arc<crate::lxc::LxcService>,
    pub downloads: Arc<crate::jobs::Downloads>,
    pub auth: Arc<Auth>,
    routes: Arc<Router<Route>>,
    tasks: Arc<background::Tasks>,
    /// Where `image_export` tasks may write.
    export_dirs: Arc<Vec<std::path::PathBuf>>,
    catalog: Arc<crate::catalog::Catalog>,
    /// The LAN registry's switch.
    lan: Arc<crate::api::registry::switch::Lan>,
}

/// Every endpoint of the station API; [`routes`] maps methods and paths to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Login,
    LoginRefresh,
    Logout,
    TokenCreate,
    TokenList,
    TokenDelete,
    ImageList,
    DownloadStatus,
    Download,
    DownloadPause,
    DownloadResume,
    DownloadCancel,
    DownloadSettings,
    SetDownloadSettings,
    ImageInspect,
    RemoteInspect,
    Tags,
    ImageDelete,
    Events,
    Registries,
    Registry,
    RegistryCreate,
    RegistryUpdate,
    RegistryDelete,
    PrivateImageCreate,
    PrivateImage,
    PrivateImageUpdate,
    PrivateImageDelete,
    Tasks,
    Task,
    TaskCreate,
    TaskDelete,
    LxcSources,
    LxcUnpack,
    Convert,
    DownloadEvents,
    Storage,
    HubMirrors,
    SetHubMirrors,
    Pins,
    PinAdd,
    PinRemove,
    Ensure,
    BundleCreate,
    BundleImport,
    LanRegistry,
    SetLanRegistry,
    LanRegistryCa,
}

/// The routing table, below the base path: fixed paths before the patterns that could also match them.
pub fn routes() -> Router<Route> {
    use Method as M;
    Router::new(vec![
        (M::POST, "/login", Route::Login),
        (M::GET, "/login_refresh", Route::LoginRefresh),
        (M::PUT, "/logout", Route::Logout),
        (M::POST, "/tokens", Route::TokenCreate),
        (M::GET, "/tokens", Route::TokenList),
        (M::DELETE, "/tokens/{id}", Route::TokenDelete),
        (M::GET, "/image/", Route::ImageList),
        (M::GET, "/image", Route::ImageList),
        (M::GET, "/image/downloadstatus", Route::DownloadStatus),
        (M::GET, "/image/downloads/settings", Route::DownloadSettings),
        (M::GET, "/image/downloads/events", Route::DownloadEvents),
        (M::GET, "/storage", Route::Storage),
        (M::GET, "/registry/mirrors", Route::HubMirrors),
        (M::GET, "/pins", Route::Pins),
        (M::POST, "/pins", Route::PinAdd),
        (M::DELETE, "/pins/{owner}", Route::PinRemove),
        (M::POST, "/ensure", Route::Ensure),
        (M::GET, "/bundle", Route::BundleCreate),
        (M::POST, "/bundle/import", Route::BundleImport),
        (M::PUT, "/registry/mirrors", Route::SetHubMirrors),
        (M::GET, "/lan-registry", Route::LanRegistry),
        (M::PUT, "/lan-registry", Route::SetLanRegistry),
        (M::GET, "/lan-registry/ca.crt", Route::LanRegistryCa),
        (M::PUT, "/image/downloads/settings", Route::SetDownloadSettings),
        (M::PUT, "/image/downloads/{id}/pause", Route::DownloadPause),
        (M::PUT, "/image/downloads/{id}/resume", Route::DownloadResume),
        (M::DELETE, "/image/downloads/{id}", Route::DownloadCancel),
        (
            M::POST,
            "/image/{repository}/{type}/{name…}/{tag}/download",
            Route::Download,
        ),
        (M::GET, "/image/dockerhub/docker/{official}/{name…}/tags", Route::Tags),
        (M::GET, "/lxc/sources", Route::LxcSources),
        (M::POST, "/image/lxc/{name…}/{tag}/unpack", Route::LxcUnpack),
        (M::POST, "/image/docker/{name…}/{tag}/convert", Route::Convert),
        (M::GET, "/image/{type}/{name…}/{tag}/inspect", Route::ImageInspect),
        (
            M::GET,
            "/image/{type}/{name…}/{tag}/remote_inspect",
            Route::RemoteInspect,
        ),
        (M::DELETE, "/image/local/{type}/{name…}", Route::ImageDelete),
        (M::GET, "/event", Route::Events),
        (M::GET, "/registry/", Route::Registries),
        (M::GET, "/registry", Route::Registries),
        (M::POST, "/registry/", Route::RegistryCreate),
        (M::POST, "/registry", Route::RegistryCreate),
        (M::GET, "/registry/{id}/", Route::Registry),
        (M::GET, "/registry/{id}", Route::Registry),
        (M::PATCH, "/registry/{id}/", Route::RegistryUpdate),
        (M::PATCH, "/registry/{id}", Route::RegistryUpdate),
        (M::PUT, "/registry/{id}/", Route::RegistryUpdate),
        (M::PUT, "/registry/{id}", Route::RegistryUpdate),
        (M::DELETE, "/registry/{id}/", Route::RegistryDelete),
        (M::DELETE, "/registry/{id}", Route::RegistryDelete),
        (M::GET, "/background", Route::Tasks),
        (M::GET, "/background/", Route::Tasks),
        (M::GET, "/background/{id}", Route::Task),
        (M::POST, "/background/{category}", Route::TaskCreate),
        (M::DELETE, "/background/{id}", Route::TaskDelete),
        (M::POST, "/image/", Route::PrivateImageCreate),
        (M::POST, "/image", Route::PrivateImageCreate),
        (M::GET, "/image/{id}/", Route::PrivateImage),
        (M::GET, "/image/{id}", Route::PrivateImage),
        (M::PATCH, "/image/{id}/", Route::PrivateImageUpdate),
        (M::PATCH, "/image/{id}", Route::PrivateImageUpdate),
        (M::DELETE, "/image/{id}/", Route::PrivateImageDelete),
        (M::DELETE, "/image/{id}", Route::PrivateImageDelete),
    ])
}

/// The routes a TCP client may use without a session or token.
pub fn is_public(route: Route) -> bool {
    matches!(route, Route::Login)
}

/// An error answered as `{"error":{"code":N,"message":"…"}}`.
#[derive(Debug)]
pub struct StationError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for `Retry-After` (a throttled login).
    pub retry_after: Option<u64>,
}

impl StationError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> StationError {
        StationError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> StationError {
        StationError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn into_response(self) -> Resp {
        let mut r = json(
            self.status,
            &dto::Error {
                error: dto::ErrorBody {
                    code: self.status.as_u16(),
                    message: &self.message,
                },
            },
        );
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", s.into());
        }
        r
    }
}

impl From<crate::http::BodyError> for StationError {
    fn from(e: crate::http::BodyError) -> StationError {
        let status = match e {
            crate::http::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            crate::http::BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
            crate::http::BodyError::TooSlow(_) | crate::http::BodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
        };
        StationError::new(status, e.to_string())
    }
}

impl From<crate::auth::AuthError> for StationError {
    fn from(e: crate::auth::AuthError) -> StationError {
        use crate::auth::AuthError as A;
        let status = match &e {
            A::BadCredentials => StatusCode::UNAUTHORIZED,
            A::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            A::NoSuchToken(_) => StatusCode::NOT_FOUND,
            A::Invalid(_) => StatusCode::BAD_REQUEST,
            A::Db(_) | A::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &e {
            A::Throttled { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        StationError {
            status,
            message: e.to_string(),
            retry_after,
        }
    }
}

impl From<crate::jobs::JobError> for StationError {
    fn from(e: crate::jobs::JobError) -> StationError {
        StationError::new(crate::api::status_of(e.class()), e.to_string())
    }
}

impl From<crate::lxc::LxcError> for StationError {
    fn from(e: crate::lxc::LxcError) -> StationError {
        StationError::new(crate::api::status_of(e.class()), e.to_string())
    }
}

impl From<ImageError> for StationError {
    fn from(e: ImageError) -> StationError {
        StationError::from(&e)
    }
}

/// In depot's own words (the Engine API's are dockerd's, for its clients to match on).
impl From<&ImageError> for StationError {
    fn from(e: &ImageError) -> StationError {
        StationError::new(crate::api::status_of(e.class()), e.to_string())
    }
}

type Answer = Result<Resp, StationError>;

pub use crate::api::Caller;

impl crate::api::Served for Station {
    fn is_public(&self, req: &Req, rest: &str) -> bool {
        self.find(req.method(), rest).is_some_and(is_public)
    }

    fn handle(&self, req: Req, caller: Caller) -> crate::api::Answering<'_> {
        Box::pin(Station::handle(self, req, caller))
    }

    fn refuse(&self, status: StatusCode, message: &str) -> Resp {
        StationError::new(status, message).into_response()
    }
}

impl Station {
    pub fn new(
        images: Arc<ImageService>,
        lxc: Arc<crate::lxc::LxcService>,
        downloads: Arc<crate::jobs::Downloads>,
        auth: Arc<Auth>,
        export_dirs: Vec<std::path::PathBuf>,
        catalog: Arc<crate::catalog::Catalog>,
        lan: Arc<crate::api::registry::switch::Lan>,
    ) -> Station {
        Station {
            images,
            lxc,
            downloads,
            auth,
            routes: Arc::new(routes()),
            tasks: Arc::default(),
            export_dirs: Arc::new(export_dirs),
            catalog,
            lan,
        }
    }

    /// The host of the registry record named `name` (a `private` download's registry).
    async fn registry_host(&self, name: String) -> Result<String, StationError> {
        let images = self.images.clone();
        blocking(move || -> Result<String, StationError> {
            images
                .registries
                .list()?
                .into_iter()
                .find(|r| r.name == name)
                .map(|r| r.host)
                .ok_or_else(|| StationError::new(StatusCode::NOT_FOUND, format!("no registry named {name:?}")))
        })
        .await
    }

    /// Start (or join) the persistent download of `r` for this NAS's platform.
    async fn start_download(&self, r: crate::reference::Reference) -> Result<Arc<crate::image::PullJob>, StationError> {
        let images = self.images.clone();
        Ok(blocking(move || {
            images.pull(crate::image::PullSpec {
                reference: r,
                platform: None,
                creds: None,
            })
        })
        .await?)
    }

    /// The route a request under the base path goes to, for the gate.
    pub fn find(&self, method: &Method, rest: &str) -> Option<Route> {
        match self.routes.find(method, rest) {
            Found::Route(r, _) => Some(*r),
            Found::WrongMethod | Found::NotFound => None,
        }
    }

    pub async fn handle(&self, req: Req, caller: Caller) -> Resp {
        let path = decoded_path(req.uri().path());
        let rest = strip_base(&path).unwrap_or("");
        let (route, params) = match self.routes.find(req.method(), rest) {
            Found::Route(r, p) => (*r, p),
            Found::WrongMethod => {
                return StationError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not allowed on {path}", req.method()),
                )
                .into_response()
            }
            Found::NotFound => {
                return StationError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")).into_response()
            }
        };
        self.dispatch(route, params, req, caller)
            .await
            .unwrap_or_else(StationError::into_response)
    }

    async fn dispatch(&self, route: Route, params: Params, req: Req, caller: Caller) -> Answer {
        let p = |k: &str| params.get(k).unwrap_or_default().to_string();
        match route {
            Route::Login => session::login(self, req).await,
            Route::LoginRefresh => session::refresh(self, &caller),
            Route::Logout => session::logout(self, &caller),
            Route::TokenCreate => session::create_token(self, req, &caller).await,
            Route::TokenList => session::list_tokens(self, &caller).await,
            Route::TokenDelete => session::delete_token(self, &caller, &p("id")).await,
            Route::ImageList if registries::is_record_query(&req) => registries::images(self, &req).await,
            Route::ImageList => images::list(self, &req).await,
            Route::DownloadStatus => images::download_status(self).await,
            Route::Download => images::download(self, req, &p("repository"), &p("type"), &p("name"), &p("tag")).await,
            Route::DownloadPause => images::pause(self, &p("id")).await,
            Route::DownloadResume => images::resume(self, &p("id")).await,
            Route::DownloadCancel => images::cancel(self, &p("id")).await,
            Route::DownloadSettings => images::settings(self).await,
            Route::SetDownloadSettings => images::set_settings(self, req, &caller).await,
            Route::ImageInspect => images::inspect(self, &p("type"), &p("name"), &p("tag")).await,
            Route::RemoteInspect => images::remote_inspect(self, &p("type"), &p("name"), &p("tag")).await,
            Route::Tags => images::tags(self, &p("official"), &p("name")).await,
            Route::ImageDelete => images::delete(self, &p("type"), &p("name")).await,
            Route::Events => events::events(self, &req).await,
            Route::Tasks => background::list(self).await,
            Route::Task => background::get(self, &p("id")).await,
            Route::TaskCreate => background::create(self, req, &caller, &p("category")).await,
            Route::TaskDelete => background::delete(self, &caller, &p("id")).await,
            Route::Registries => registries::registries(self).await,
            Route::Registry => registries::registry(self, &p("id")).await,
            Route::RegistryCreate => registries::save_registry(self, req, &caller, None).await,
            Route::RegistryUpdate => registries::save_registry(self, req, &caller, Some(&p("id"))).await,
            Route::RegistryDelete => registries::delete_registry(self, &caller, &p("id")).await,
            Route::PrivateImageCreate => registries::save_image(self, req, &caller, None).await,
            Route::PrivateImage => registries::image(self, &p("id")).await,
            Route::PrivateImageUpdate => registries::save_image(self, req, &caller, Some(&p("id"))).await,
            Route::PrivateImageDelete => registries::delete_image(self, &caller, &p("id")).await,
            Route::LxcSources => lxc::sources(self, &req).await,
            Route::DownloadEvents => images::download_events(self).await,
            Route::Storage => images::storage(self).await,
            Route::HubMirrors => registries::hub_mirrors(self).await,
            Route::SetHubMirrors => registries::set_hub_mirrors(self, req, &caller).await,
            Route::LanRegistry => registries::lan(self).await,
            Route::SetLanRegistry => registries::set_lan(self, req, &caller).await,
            Route::LanRegistryCa => registries::lan_ca(self).await,
            Route::Pins => pins::list(self, &req).await,
            Route::PinAdd => pins::add(self, req, &caller).await,
            Route::PinRemove => pins::remove(self, &req, &caller, &p("owner")).await,
            Route::Ensure => ensure::ensure(self, req, &caller).await,
            Route::BundleCreate => bundle::create(self, &req, &caller).await,
            Route::BundleImport => bundle::import(self, req, &caller).await,
            Route::LxcUnpack => lxc::unpack(self, req, &caller, &p("name"), &p("tag")).await,
            Route::Convert => lxc::convert(self, req, &caller, &p("name"), &p("tag")).await,
        }
    }
}

/// An answer of `v` as JSON with 200.
fn ok(v: &impl serde::Serialize) -> Answer {
    Ok(json(StatusCode::OK, v))
}

/// Only an admin (or the trusted socket) may do this.
fn require_admin(caller: &Caller) -> Result<(), StationError> {
    match &caller.principal {
        Some(Principal::Local) | Some(Principal::User { admin: true, .. }) => Ok(()),
        _ => Err(StationError::new(StatusCode::FORBIDDEN, "this needs an administrator")),
    }
}

/// Run blocking work on the pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    crate::pool::run(f).await
}
