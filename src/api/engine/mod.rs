//! The Docker Engine image API (spec/docker-engine-api.md), for the docker CLI, docker-py and skopeo.
//! This module holds routing, version negotiation and error mapping; one file per endpoint group.

mod archive;
mod auth;
pub mod dto;
mod events;
mod images;
pub mod inspect;
mod pull;
mod stream;
mod system;
mod timestamp;

use crate::error::ErrorClass;
use crate::http::{decoded_path, full, json, Found, Params, Req, Resp, Router};
use crate::image::{ImageError, ImageService};
use hyper::{Method, StatusCode};
use std::sync::Arc;

pub const API_VERSION: &str = "1.47";
/// dockerd 28 accepts 1.24 and up; 1.22 and 1.23 are accepted as dockerd 20.10 did, because containers/image
/// (skopeo's `docker-daemon:` transport) pins its client to 1.22. Below 1.24 errors are plain text, as in moby.
pub const MIN_API_VERSION: &str = "1.22";

#[derive(Clone)]
pub struct Engine {
    pub images: Arc<ImageService>,
    routes: Arc<Router<Route>>,
}

/// Every endpoint of the Engine API depot serves; [`routes`] maps methods and paths to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ping,
    Version,
    ImagesCreate,
    ImagesList,
    ImageDelete,
    Events,
    Info,
    BuildPrune,
    ImageInspect,
    ImageHistory,
    ImageTag,
    ImagesPrune,
    SystemDf,
    ImageSave,
    ImagesSave,
    ImagesLoad,
    Auth,
    ImagePush,
    Distribution,
    ImagesSearch,
}

/// The routing table (spec §0): fixed paths before the patterns that could also match them.
pub fn routes() -> Router<Route> {
    use Method as M;
    Router::new(vec![
        (M::GET, "/_ping", Route::Ping),
        (M::HEAD, "/_ping", Route::Ping),
        (M::GET, "/version", Route::Version),
        (M::POST, "/images/create", Route::ImagesCreate),
        (M::GET, "/images/json", Route::ImagesList),
        (M::POST, "/images/prune", Route::ImagesPrune),
        (M::GET, "/images/get", Route::ImagesSave),
        (M::GET, "/images/search", Route::ImagesSearch),
        (M::POST, "/images/load", Route::ImagesLoad),
        (M::GET, "/system/df", Route::SystemDf),
        (M::GET, "/images/{name…}/json", Route::ImageInspect),
        (M::GET, "/images/{name…}/history", Route::ImageHistory),
        (M::POST, "/images/{name…}/tag", Route::ImageTag),
        (M::GET, "/images/{name…}/get", Route::ImageSave),
        (M::POST, "/images/{name…}/push", Route::ImagePush),
        (M::DELETE, "/images/{name…}", Route::ImageDelete),
        (M::GET, "/events", Route::Events),
        (M::GET, "/info", Route::Info),
        (M::POST, "/auth", Route::Auth),
        (M::GET, "/distribution/{name…}/json", Route::Distribution),
        (M::POST, "/build/prune", Route::BuildPrune),
    ])
}

impl Engine {
    pub fn new(images: Arc<ImageService>) -> Engine {
        Engine {
            images,
            routes: Arc::new(routes()),
        }
    }
}

impl crate::api::Served for Engine {
    fn is_public(&self, _req: &Req, rest: &str) -> bool {
        is_ping(rest)
    }

    fn handle(&self, req: Req, _caller: crate::api::Caller) -> crate::api::Answering<'_> {
        Box::pin(async move { with_headers(self.route(req).await) })
    }

    /// A 401 names the scheme, as a registry's does, so a client knows to send a token.
    fn refuse(&self, status: StatusCode, message: &str) -> Resp {
        let mut r = with_headers(ApiError::new(status, message).into_response());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                "www-authenticate",
                "Bearer realm=\"depot\"".parse().expect("static header"),
            );
        }
        r
    }
}

/// An error answered as `{"message": …}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Resp {
        json(self.status, &dto::ErrorMessage { message: &self.message })
    }

    /// As a client of API `v` expects it: JSON from 1.24 on, plain text below (moby `MakeErrorHandler`).
    pub fn into_response_for(self, v: ApiVersion<'_>) -> Resp {
        if v.before("1.24") {
            full(self.status, "text/plain; charset=utf-8", format!("{}\n", self.message))
        } else {
            self.into_response()
        }
    }
}

/// The Engine API's status for each class of error: the APIs' common one, except where dockerd differs.
pub fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        // dockerd answers a full disk with 500; the message says why
        ErrorClass::InsufficientStorage => StatusCode::INTERNAL_SERVER_ERROR,
        c => crate::api::status_of(c),
    }
}

impl From<crate::http::BodyError> for ApiError {
    fn from(e: crate::http::BodyError) -> ApiError {
        let status = match e {
            crate::http::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            crate::http::BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
            crate::http::BodyError::TooSlow(_) | crate::http::BodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
        };
        ApiError::new(status, e.to_string())
    }
}

/// An image error in dockerd's words (the CLI and scripts match on them); depot's own words where dockerd has
/// none for the case.
pub fn docker_message(e: &ImageError) -> String {
    match e {
        ImageError::BlankName => "image name cannot be blank".into(),
        ImageError::NotFound { reference } => format!("No such image: {reference}"),
        ImageError::UnknownTag { .. } => "reference does not exist".into(),
        ImageError::NoLocalTag { reference } => format!("tag does not exist: {reference}"),
        ImageError::NoLocalRepo { name } => format!("An image does not exist locally with the tag: {name}"),
        ImageError::LoginFailed { url } => format!("Get \"{url}\": unauthorized: incorrect username or password"),
        ImageError::InUse { id } => format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            id.short()
        ),
        ImageError::Pinned { reference, owners } => format!(
            "conflict: unable to remove {reference} (must be forced) - image is pinned by {}",
            owners.join(", ")
        ),
        ImageError::Reserved(name) => format!("'{name}' is a reserved name"),
        ImageError::ManifestUnknown { reference, errors } => format!("manifest for {reference} not found: {errors}"),
        ImageError::AccessDenied { name, errors } => format!(
            "pull access denied for {name}, repository does not exist or may require 'docker login': {}",
            if errors.0.is_empty() {
                "denied: requested access to the resource is denied".to_string()
            } else {
                errors.to_string()
            }
        ),
        ImageError::Reference(_)
        | ImageError::Busy(_)
        | ImageError::NoSpace { .. }
        | ImageError::Paused { .. }
        | ImageError::Cancelled { .. }
        | ImageError::NoDownload { .. }
        | ImageError::NoRecord { .. }
        | ImageError::Handoff { .. }
        | ImageError::Unrecorded { .. }
        | ImageError::Incomplete { .. }
        | ImageError::Refused { .. }
        | ImageError::Platform(_)
        | ImageError::InvalidParameter(_)
        | ImageError::Registry(_)
        | ImageError::Manifest(_)
        | ImageError::Transfer(_)
        | ImageError::Blob(_)
        | ImageError::Db(_)
        | ImageError::Io { .. } => e.to_string(),
    }
}

impl From<std::sync::Arc<ImageError>> for ApiError {
    fn from(e: std::sync::Arc<ImageError>) -> ApiError {
        ApiError::from(e.as_ref())
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> ApiError {
        ApiError::from(&e)
    }
}

impl From<&ImageError> for ApiError {
    fn from(e: &ImageError) -> ApiError {
        ApiError::new(status_of(e.class()), docker_message(e))
    }
}

/// Whether `path` (with or without a version) is `/_ping`, which answers on TCP without a token: clients probe
/// it before anything else.
pub fn is_ping(path: &str) -> bool {
    split_version(path).1 == "/_ping"
}

/// Compare dotted versions numerically per segment (`1.9 < 1.10`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| s.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parse(a).cmp(&parse(b))
}

/// Split `/v1.47/images/json` into the version and the route.
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            let v = &rest[..i];
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return (Some(v), &rest[i..]);
            }
        }
    }
    (None, path)
}

/// The API version a request speaks: its path's, or the newest.
#[derive(Debug, Clone, Copy)]
pub struct ApiVersion<'a>(&'a str);

impl ApiVersion<'_> {
    /// The newest version: what a client that names none gets.
    pub fn newest() -> ApiVersion<'static> {
        ApiVersion(API_VERSION)
    }

    pub fn before(&self, v: &str) -> bool {
        version_cmp(self.0, v) == std::cmp::Ordering::Less
    }
}

/// The headers dockerd puts on every answer.
fn with_headers(mut r: Resp) -> Resp {
    {
        let h = r.headers_mut();
        let ver = concat!("Docker/", env!("CARGO_PKG_VERSION"), " (linux) depot");
        h.insert("server", ver.parse().expect("static header"));
        h.insert("api-version", API_VERSION.parse().expect("static header"));
        h.insert("ostype", "linux".parse().expect("static header"));
        h.insert("docker-experimental", "false".parse().expect("static header"));
    }
    r
}

impl Engine {
    async fn route(&self, req: Req) -> Resp {
        let path = decoded_path(req.uri().path());
        let (version, route) = split_version(&path);
        if let Some(v) = version {
            if version_cmp(v, MIN_API_VERSION).is_lt() {
                let msg = format!(
                    "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                );
                return full(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", msg);
            }
            if version_cmp(v, API_VERSION).is_gt() {
                let msg = format!("client version {v} is too new. Maximum supported API version is {API_VERSION}");
                return ApiError::new(StatusCode::BAD_REQUEST, msg).into_response();
            }
        }
        let v = ApiVersion(version.unwrap_or(API_VERSION));
        let method = req.method().clone();
        if method == Method::OPTIONS {
            return full(StatusCode::OK, "", "");
        }
        let (route, params) = match self.routes.find(&method, route) {
            Found::Route(r, p) => (*r, p),
            // dockerd answers a known path with the wrong method like an unknown one
            Found::WrongMethod | Found::NotFound => {
                return ApiError::new(StatusCode::NOT_FOUND, "page not found").into_response_for(v)
            }
        };
        let res = self.dispatch(route, params, req, v).await;
        res.unwrap_or_else(|e| e.into_response_for(v))
    }
}

impl Engine {
    async fn dispatch(&self, route: Route, params: Params, req: Req, v: ApiVersion<'_>) -> Result<Resp, ApiError> {
        let name = || params.get("name").unwrap_or_default().to_string();
        match route {
            Route::Ping => Ok(ping(req.method() == Method::HEAD)),
            Route::Version => Ok(version_info()),
            // one endpoint, two operations: an import names its source, a pull its image
            Route::ImagesCreate
                if crate::http::query_get(&crate::http::query_pairs(req.uri().query()), "fromSrc")
                    .is_some_and(|s| !s.is_empty()) =>
            {
                archive::import(self, req).await
            }
            Route::ImagesCreate => pull::create(self, req).await,
            Route::ImagesList => images::list(self, &req, v).await,
            Route::ImageDelete => images::delete(self, &req, &name()).await,
            Route::Events => events::events(self, &req).await,
            Route::ImagesPrune => images::prune(self, &req).await,
            Route::ImageSave => archive::save(self, vec![name()]).await,
            Route::ImagesSave => archive::save_many(self, &req).await,
            Route::ImagesLoad => archive::load(self, req).await,
            Route::ImagesSearch => images::search(self, &req).await,
            Route::ImagePush => archive::push(self, req, &name()).await,
            Route::SystemDf => images::df(self, &req, v).await,
            Route::ImageInspect => inspect::inspect(self, &name(), v).await,
            Route::ImageHistory => inspect::history(self, &name()).await,
            Route::ImageTag => inspect::tag(self, &req, &name()).await,
            Route::Info => system::info(self).await,
            Route::Auth => auth::login(self, req).await,
            Route::Distribution => inspect::distribution(self, &req, &name()).await,
            Route::BuildPrune => system::build_prune(&crate::http::query_pairs(req.uri().query())),
        }
    }
}

fn ping(head: bool) -> Resp {
    let mut r = full(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        if head { "" } else { "OK" },
    );
    let h = r.headers_mut();
    for (k, v) in [
        ("cache-control", "no-cache, no-store, must-revalidate"),
        ("pragma", "no-cache"),
        ("builder-version", "2"),
        ("swarm", "inactive"),
    ] {
        h.insert(k, v.parse().expect("static header"));
    }
    if head {
        h.insert("content-length", "0".parse().expect("static header"));
    }
    r
}

/// Go's name for this CPU, as `/version` reports it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn version_info() -> Resp {
    let v = env!("CARGO_PKG_VERSION");
    let kernel = kernel_version();
    let build = "";
    json(
        StatusCode::OK,
        &dto::Version {
            api_version: API_VERSION,
            arch: go_arch(),
            build_time: build,
            components: [dto::Component {
                details: dto::ComponentDetails {
                    api_version: API_VERSION,
                    arch: go_arch(),
                    build_time: build,
                    experimental: "false",
                    git_commit: "",
                    go_version: "",
                    kernel_version: kernel.clone(),
                    min_api_version: MIN_API_VERSION,
                    os: "linux",
                },
                name: "Engine",
                version: v,
            }],
            experimental: false,
            git_commit: "",
            go_version: "",
            kernel_version: kernel,
            min_api_version: MIN_API_VERSION,
            os: "linux",
            platform: dto::Named { name: "depot" },
            version: v,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(split_version("/v1.47/images/json"), (Some("1.47"), "/images/json"));
        assert_eq!(split_version("/images/json"), (None, "/images/json"));
        assert_eq!(split_version("/version"), (None, "/version"));
        assert_eq!(split_version("/v1.41/_ping"), (Some("1.41"), "/_ping"));
        assert!(version_cmp("1.9", "1.10").is_lt());
        assert!(version_cmp("1.47", "1.47").is_eq());
        assert!(ApiVersion("1.41").before("1.43"));
        assert!(!ApiVersion("1.47").before("1.43"));
    }
}
