//! Private registries (`/registry/`) and private image records (`POST/GET/PATCH/DELETE /image/`): the
//! Tutum-style resources of the station API. Passwords are write-only.

use super::dto;
use super::{blocking, ok, require_admin, Answer, Caller, Station, StationError};
use crate::http::{json, query_get, query_pairs, read_body, Req, MAX_SMALL_BODY};
use crate::image::registries::{PrivateImage, RegistryInfo, RegistryPatch};
use crate::store::db::PrivateImageRow;
use hyper::StatusCode;
use serde_json::Value;

fn registry_json(r: &RegistryInfo) -> dto::Registry {
    dto::Registry {
        has_password: r.has_password,
        host: r.host.clone(),
        id: r.id,
        insecure: r.insecure,
        name: r.name.clone(),
        resource_uri: format!("/api/v1/registry/{}/", r.id),
        url: r.url.clone(),
        username: r.username.clone(),
    }
}

fn image_json(i: &PrivateImage) -> dto::PrivateImage {
    let full = match &i.registry {
        Some(r) => format!("{}/{}", r.host, i.row.name),
        None => i.row.name.clone(),
    };
    dto::PrivateImage {
        description: i.row.description.clone(),
        id: i.row.id,
        in_use: false,
        is_private_image: i.row.is_private,
        name: i.row.name.clone(),
        registry: i.registry.as_ref().map(|r| format!("/api/v1/registry/{}/", r.id)),
        resource_uri: format!("/api/v1/image/{}/", i.row.id),
        state: i.state.as_str(),
        tags: i
            .tags
            .iter()
            .map(|t| format!("/api/v1/image/docker/{full}/{t}/inspect"))
            .collect(),
    }
}

fn list<T: serde::Serialize>(objects: Vec<T>) -> Answer {
    ok(&dto::Objects::of(objects))
}

fn id_of(id: &str) -> Result<i64, StationError> {
    id.parse()
        .map_err(|_| StationError::bad_request(format!("id {id:?} is not a number")))
}

async fn body_of<T: serde::de::DeserializeOwned>(req: Req) -> Result<T, StationError> {
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed body: {e}")))
}

/// Tell `"key": null` (clear it) from an absent key (leave it).
fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(serde::Deserialize::deserialize(d)?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryBody {
    name: Option<String>,
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    password: Option<Option<String>>,
    insecure: Option<bool>,
}

impl From<RegistryBody> for RegistryPatch {
    fn from(b: RegistryBody) -> RegistryPatch {
        RegistryPatch {
            name: b.name,
            url: b.url,
            username: b.username,
            password: b.password,
            insecure: b.insecure,
        }
    }
}

pub async fn registries(st: &Station) -> Answer {
    let images = st.images.clone();
    list(
        blocking(move || images.registries.list())
            .await?
            .iter()
            .map(registry_json)
            .collect(),
    )
}

pub async fn registry(st: &Station, id: &str) -> Answer {
    let id = id_of(id)?;
    let images = st.images.clone();
    ok(&registry_json(&blocking(move || images.registries.get(id)).await?))
}

pub async fn save_registry(st: &Station, req: Req, caller: &Caller, id: Option<&str>) -> Answer {
    require_admin(caller)?;
    let id = id.map(id_of).transpose()?;
    let b: RegistryBody = body_of(req).await?;
    let images = st.images.clone();
    let r = blocking(move || images.registries.save(id, b.into())).await?;
    let status = if id.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &registry_json(&r)))
}

pub async fn delete_registry(st: &Station, caller: &Caller, id: &str) -> Answer {
    require_admin(caller)?;
    let id = id_of(id)?;
    let images = st.images.clone();
    blocking(move || images.registries.delete(id)).await?;
    ok(&dto::Done {})
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageBody {
    name: Option<String>,
    description: Option<String>,
    /// A registry's resource URI (`/api/v1/registry/1/`), id or name; null for Docker Hub.
    #[serde(default, deserialize_with = "present")]
    registry: Option<Option<Value>>,
    is_private_image: Option<bool>,
}

/// The registry id a body names.
fn registry_ref(st: &Station, v: &Value) -> Result<i64, StationError> {
    let text = match v {
        Value::Number(n) => return n.as_i64().ok_or_else(|| StationError::bad_request("registry: an id")),
        Value::String(s) => s.as_str(),
        _ => return Err(StationError::bad_request("registry: a resource URI, an id or a name")),
    };
    let uri = text.trim_end_matches('/');
    if let Some(id) = uri
        .rsplit('/')
        .next()
        .filter(|_| uri.contains("/registry/"))
        .and_then(|x| x.parse().ok())
    {
        return Ok(id);
    }
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    st.images
        .registries
        .list()?
        .into_iter()
        .find(|r| r.name == text)
        .map(|r| r.id)
        .ok_or_else(|| StationError::new(StatusCode::NOT_FOUND, format!("no registry named {text:?}")))
}

/// `GET /image/` with `name`, `is_private_image` or `registry` and no `category`: the records, filtered.
pub fn is_record_query(req: &Req) -> bool {
    let q = query_pairs(req.uri().query());
    query_get(&q, "category").is_none()
        && ["name", "is_private_image", "registry"]
            .iter()
            .any(|k| query_get(&q, k).is_some())
}

pub async fn images(st: &Station, req: &Req) -> Answer {
    let q = query_pairs(req.uri().query());
    let name = query_get(&q, "name").map(str::to_string);
    let private = query_get(&q, "is_private_image").map(|v| crate::http::bool_value(Some(v)));
    let registry = match query_get(&q, "registry") {
        None => None,
        Some(v) => Some(registry_ref(st, &Value::String(v.to_string()))?),
    };
    let images = st.images.clone();
    let all = blocking(move || images.registries.private_images()).await?;
    list(
        all.iter()
            .filter(|i| name.as_ref().is_none_or(|n| i.row.name.contains(n.as_str())))
            .filter(|i| private.is_none_or(|p| i.row.is_private == p))
            .filter(|i| registry.is_none_or(|r| i.row.registry_id == Some(r)))
            .map(image_json)
            .collect(),
    )
}

pub async fn image(st: &Station, id: &str) -> Answer {
    let id = id_of(id)?;
    let images = st.images.clone();
    ok(&image_json(
        &blocking(move || images.registries.private_image_info(id)).await?,
    ))
}

pub async fn save_image(st: &Station, req: Req, caller: &Caller, id: Option<&str>) -> Answer {
    require_admin(caller)?;
    let id = id.map(id_of).transpose()?;
    let b: ImageBody = body_of(req).await?;
    let registry_id = match &b.registry {
        None => None,
        Some(None) => Some(None),
        Some(Some(v)) => Some(Some(registry_ref(st, v)?)),
    };
    let images = st.images.clone();
    let created = id.is_none();
    let saved = blocking(move || {
        let mut row = match id {
            Some(id) => images.registries.private_image_info(id)?.row,
            None => PrivateImageRow {
                id: 0,
                name: String::new(),
                description: String::new(),
                registry_id: None,
                is_private: true,
            },
        };
        if let Some(n) = b.name {
            row.name = n.trim().to_string();
        }
        if let Some(d) = b.description {
            row.description = d;
        }
        if let Some(r) = registry_id {
            row.registry_id = r;
        }
        if let Some(p) = b.is_private_image {
            row.is_private = p;
        }
        if row.name.is_empty() {
            return Err(crate::image::ImageError::InvalidParameter(
                "an image record needs a name".into(),
            ));
        }
        images.registries.save_private_image(row)
    })
    .await?;
    Ok(json(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        &image_json(&saved),
    ))
}

pub async fn delete_image(st: &Station, caller: &Caller, id: &str) -> Answer {
    require_admin(caller)?;
    let id = id_of(id)?;
    let images = st.images.clone();
    blocking(move || images.registries.delete_private_image(id)).await?;
    ok(&dto::Done {})
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorsBody {
    mirrors: Vec<String>,
}

/// `GET /registry/mirrors`: Docker Hub's mirrors, in the order they are tried.
pub async fn hub_mirrors(st: &Station) -> Answer {
    let images = st.images.clone();
    ok(&dto::Mirrors {
        mirrors: blocking(move || images.registries.hub_mirrors()).await,
    })
}

/// `PUT /registry/mirrors` `{"mirrors": ["https://host[:port]", …]}` (admin): at once and across restarts.
pub async fn set_hub_mirrors(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: MirrorsBody =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed mirrors: {e}")))?;
    let images = st.images.clone();
    let m = blocking(move || images.registries.set_hub_mirrors(&b.mirrors)).await?;
    ok(&dto::Mirrors { mirrors: m })
}

/// `GET /lan-registry`: whether the LAN registry serves, where, how, and the fingerprint of the CA its clients
/// trust.
pub async fn lan(st: &Station) -> Answer {
    let lan = st.lan.clone();
    ok(&blocking(move || lan.status()).await)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LanBody {
    enabled: bool,
}

/// `PUT /lan-registry` `{"enabled": bool}` (admin): turn the LAN registry on or off, at once and across restarts.
pub async fn set_lan(st: &Station, req: Req, caller: &Caller) -> Answer {
    require_admin(caller)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let b: LanBody = serde_json::from_slice(&body)
        .map_err(|e| StationError::bad_request(format!("malformed LAN registry setting: {e}")))?;
    let lan = st.lan.clone();
    match blocking(move || lan.set(b.enabled)).await {
        Ok(status) => ok(&status),
        Err(e) => Err(StationError::new(StatusCode::CONFLICT, e)),
    }
}

/// `GET /lan-registry/ca.crt`: the CA LAN clients trust (PEM), while the registry serves with a certificate
/// depot issued.
pub async fn lan_ca(st: &Station) -> Answer {
    let lan = st.lan.clone();
    match blocking(move || lan.ca_pem()).await {
        Some(pem) => {
            let mut r = crate::http::full(StatusCode::OK, "application/x-pem-file", pem);
            if let Ok(v) = hyper::header::HeaderValue::from_str("attachment; filename=\"depot-registry-ca.crt\"") {
                r.headers_mut().insert("content-disposition", v);
            }
            Ok(r)
        }
        None => Err(StationError::new(
            StatusCode::NOT_FOUND,
            "the LAN registry is off, or serves with the NAS's own certificate",
        )),
    }
}
