//! `GET /images/{name}/json` (spec §5.3), `GET /images/{name}/history` (§5.4) and `POST /images/{name}/tag`
//! (§5.5): Docker's shapes over the image service's stored facts.

use super::{ApiError, ApiVersion, Engine};
use crate::http::{empty, json, query_get, query_pairs, Req, Resp};
use crate::image::Inspected;
use crate::reference::Reference;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with nanoseconds, trailing zeros trimmed (Go's `RFC3339Nano`).
fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ZERO_TIME.into())
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// The config keys dockerd always sends below API 1.50, with their zero values (`legacyConfigFields`).
fn legacy_config() -> Map<String, Value> {
    let v = json!({
        "AttachStderr": false, "AttachStdin": false, "AttachStdout": false, "Cmd": null, "Domainname": "",
        "Entrypoint": null, "Env": null, "Hostname": "", "Image": "", "Labels": null, "OnBuild": null,
        "OpenStdin": false, "StdinOnce": false, "Tty": false, "User": "", "Volumes": null, "WorkingDir": "",
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn familiar(names: &[String]) -> Vec<String> {
    names.iter().map(|n| Reference::familiar_of(n)).collect()
}

/// Docker's inspect document for `i`, as API version `v` has it.
pub fn document(i: &Inspected, v: ApiVersion<'_>) -> ImageInspect {
    let cfg: Value = serde_json::from_slice(&i.config).unwrap_or(Value::Null);
    let s = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let created = cfg.get("created").and_then(Value::as_str).and_then(parse_time);
    let comment = match s("comment") {
        c if !c.is_empty() => c,
        _ => cfg
            .get("history")
            .and_then(Value::as_array)
            .and_then(|h| h.last())
            .and_then(|h| h.get("comment"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    };
    let mut config = legacy_config();
    if let Some(Value::Object(c)) = cfg.get("config") {
        for (k, val) in c {
            config.insert(k.clone(), val.clone());
        }
    }
    let r = &i.row;
    let old = v.before("1.44");
    ImageInspect {
        architecture: r.architecture.clone(),
        author: s("author"),
        comment,
        config,
        container: v.before("1.45").then_some(""),
        container_config: v.before("1.45").then(legacy_config),
        created: match created {
            Some(t) => Some(rfc3339(t)),
            None if old => Some(ZERO_TIME.into()),
            None => None,
        },
        docker_version: s("docker_version"),
        graph_driver: GraphDriver {
            data: None,
            name: "depot",
        },
        id: r.id.to_string(),
        metadata: Metadata {
            last_tag_time: r
                .last_tag_time
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .map(rfc3339)
                .unwrap_or_else(|| ZERO_TIME.into()),
        },
        os: r.os.clone(),
        os_version: cfg
            .get("os.version")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        parent: "",
        repo_digests: familiar(&r.digests),
        repo_tags: familiar(&r.tags),
        root_fs: RootFs {
            kind: "layers",
            layers: i.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
        size: r.size,
        variant: r.variant.clone().filter(|v| !v.is_empty()),
        virtual_size: old.then_some(r.size),
        signatures: i.signers.iter().map(Signer::from).collect(),
    }
}

/// Who vouched for an image the signature policy admitted: depot's own key, sent only for such images (a
/// client that does not know it passes it by, as Docker's own clients do with unknown keys).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Signer {
    scope: String,
    key: String,
    identity: String,
    signed_manifest: String,
}

impl From<&crate::store::db::SignerRow> for Signer {
    fn from(r: &crate::store::db::SignerRow) -> Signer {
        Signer {
            scope: r.scope.clone(),
            key: r.key.clone(),
            identity: r.identity.clone(),
            signed_manifest: r.signed.clone(),
        }
    }
}

/// Docker's `image.InspectResponse`: the keys an API version does not have are left out.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    architecture: String,
    author: String,
    comment: String,
    /// The image's own `config`, over the keys dockerd always sends below 1.50.
    config: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_config: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    docker_version: String,
    graph_driver: GraphDriver,
    id: String,
    metadata: Metadata,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    os_version: Option<String>,
    parent: &'static str,
    repo_digests: Vec<String>,
    repo_tags: Vec<String>,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_size: Option<u64>,
    #[serde(rename = "DepotSignatures", skip_serializing_if = "Vec::is_empty")]
    signatures: Vec<Signer>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDriver {
    data: Option<()>,
    name: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    last_tag_time: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: &'static str,
    layers: Vec<String>,
}

/// One row of `GET /images/{name}/history`.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryRow {
    comment: String,
    created: i64,
    created_by: String,
    id: String,
    size: u64,
    tags: Option<Vec<String>>,
}

/// Docker's history rows for `i`, newest first: one per config `history` entry, with the uncompressed size of
/// the layer each non-empty entry made.
pub fn history_rows(i: &Inspected) -> Vec<HistoryRow> {
    let cfg: Value = serde_json::from_slice(&i.config).unwrap_or(Value::Null);
    let entries = cfg
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut layers = i.layers.iter();
    let mut rows: Vec<HistoryRow> = entries
        .iter()
        .map(|h| {
            let empty = h.get("empty_layer").and_then(Value::as_bool).unwrap_or(false);
            let size = if empty {
                0
            } else {
                layers.next().map(|l| l.uncompressed_size).unwrap_or(0)
            };
            let created = h
                .get("created")
                .and_then(Value::as_str)
                .and_then(parse_time)
                .map(|t| t.unix_timestamp())
                .unwrap_or(0);
            let text = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            HistoryRow {
                comment: text("comment"),
                created,
                created_by: text("created_by"),
                id: "<missing>".into(),
                size,
                tags: None,
            }
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = i.row.id.to_string();
        top.tags = Some(familiar(&i.row.tags)).filter(|t| !t.is_empty());
    }
    rows
}

async fn inspected(e: &Engine, name: &str) -> Result<Inspected, ApiError> {
    let (images, name) = (e.images.clone(), name.to_string());
    Ok(crate::pool::run(move || images.inspect(&name)).await?)
}

pub async fn inspect(e: &Engine, name: &str, v: ApiVersion<'_>) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &document(&inspected(e, name).await?, v)))
}

pub async fn history(e: &Engine, name: &str) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &history_rows(&inspected(e, name).await?)))
}

/// `repo` may carry a tag; `tag` overrides it. Always moves an existing tag. 201 with no body.
pub async fn tag(e: &Engine, req: &Req, name: &str) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let repo = query_get(&q, "repo").unwrap_or("");
    let mut target = Reference::parse(repo).map_err(|e| bad(e.to_string()))?;
    if target.digest().is_some() {
        return Err(bad("cannot import digest reference".into()));
    }
    if let Some(t) = query_get(&q, "tag").filter(|t| !t.is_empty()) {
        target = target.with_tag(t).map_err(|e| bad(e.to_string()))?;
    }
    if target.tag().is_some_and(|t| t == "sha256") {
        return Err(bad(
            "refusing to create an ambiguous tag using digest algorithm as name".into(),
        ));
    }
    let (images, name) = (e.images.clone(), name.to_string());
    crate::pool::run(move || images.tag(&name, &target)).await?;
    Ok(empty(StatusCode::CREATED))
}

/// `GET /distribution/{name}/json`: the registry's descriptor and platforms for `name`, without pulling.
pub async fn distribution(e: &Engine, req: &Req, name: &str) -> Result<Resp, ApiError> {
    let r = Reference::parse(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let creds = super::auth::decode(req.headers().get("x-registry-auth").and_then(|h| h.to_str().ok()));
    let images = e.images.clone();
    let d = crate::pool::run(move || images.registries.remote_descriptor(&r, creds)).await?;
    Ok(json(
        StatusCode::OK,
        &DistributionInspect {
            descriptor: Descriptor {
                media_type: d.media_type,
                digest: d.digest.to_string(),
                size: d.size,
            },
            platforms: d
                .platforms
                .iter()
                .map(|p| Platform {
                    architecture: p.architecture.clone(),
                    os: p.os.clone(),
                    variant: p.variant.clone(),
                })
                .collect(),
        },
    ))
}

/// Docker's `registry.DistributionInspect`.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DistributionInspect {
    descriptor: Descriptor,
    platforms: Vec<Platform>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    media_type: String,
    size: u64,
}

#[derive(serde::Serialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::store::db::{ImageRow, LayerRecord};

    fn sample(config: Value, tags: &[&str]) -> Inspected {
        let layer = |n: &str, size| LayerRecord {
            digest: Digest::of(n.as_bytes()),
            diff_id: Digest::of(format!("diff-{n}").as_bytes()),
            media_type: crate::oci::OCI_LAYER_GZIP.into(),
            size: 10,
            uncompressed_size: size,
        };
        Inspected {
            row: ImageRow {
                id: Digest::of(b"cfg"),
                manifest_digest: Digest::of(b"m"),
                os: "linux".into(),
                architecture: "arm".into(),
                variant: Some("v7".into()),
                created: None,
                size: 300,
                labels: None,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                digests: vec![],
                last_tag_time: None,
            },
            config: serde_json::to_vec(&config).unwrap(),
            layers: vec![layer("a", 100), layer("b", 200)],
            signers: vec![],
        }
    }

    #[test]
    fn inspect_document_per_version() {
        let i = sample(
            json!({"created": "2024-09-26T21:31:42.120000000Z", "architecture": "arm", "os": "linux",
                   "config": {"Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}},
                   "history": [{"comment": "first"}, {"comment": "last"}],
                   "rootfs": {"type": "layers", "diff_ids": []}}),
            &["docker.io/library/busybox:latest"],
        );
        let d = serde_json::to_value(document(&i, ApiVersion("1.47"))).unwrap();
        assert_eq!(d["RepoTags"], json!(["busybox:latest"]));
        assert_eq!(d["RepoDigests"], json!([]));
        assert_eq!(d["Created"], "2024-09-26T21:31:42.12Z");
        assert_eq!(
            d["Comment"], "last",
            "the last history comment when the config has none"
        );
        assert_eq!(d["Config"]["Cmd"], json!(["sh"]));
        assert_eq!(d["Config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(d["Config"]["Tty"], false, "legacy keys are present below 1.50");
        assert_eq!(d["Variant"], "v7");
        assert_eq!(d["Metadata"]["LastTagTime"], ZERO_TIME);
        assert_eq!(d["RootFS"]["Layers"].as_array().unwrap().len(), 2);
        assert!(d.get("VirtualSize").is_none() && d.get("ContainerConfig").is_none());
        let old = serde_json::to_value(document(&i, ApiVersion("1.41"))).unwrap();
        assert_eq!(old["VirtualSize"], 300);
        assert!(old["ContainerConfig"].is_object());
        let no_time = sample(json!({"rootfs": {"type": "layers", "diff_ids": []}}), &[]);
        assert!(serde_json::to_value(document(&no_time, ApiVersion("1.47")))
            .unwrap()
            .get("Created")
            .is_none());
        assert_eq!(
            serde_json::to_value(document(&no_time, ApiVersion("1.43"))).unwrap()["Created"],
            ZERO_TIME
        );
    }

    #[test]
    fn history_newest_first_with_layer_sizes() {
        let i = sample(
            json!({"history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "ADD a"},
                {"created": "2024-01-02T00:00:00Z", "created_by": "ENV x", "empty_layer": true},
                {"created": "2024-01-03T00:00:00Z", "created_by": "ADD b", "comment": "c"}]}),
            &["docker.io/library/x:1"],
        );
        let h = serde_json::to_value(history_rows(&i)).unwrap();
        assert_eq!(h.as_array().map(Vec::len), Some(3));
        assert_eq!(h[0]["CreatedBy"], "ADD b");
        assert_eq!(
            (h[0]["Size"].as_u64(), h[1]["Size"].as_u64(), h[2]["Size"].as_u64()),
            (Some(200), Some(0), Some(100))
        );
        assert_eq!(h[0]["Id"], i.row.id.as_str());
        assert_eq!(h[1]["Id"], "<missing>");
        assert_eq!(h[0]["Tags"], json!(["x:1"]));
        assert_eq!(h[1]["Tags"], Value::Null);
        assert_eq!(h[2]["Created"], 1_704_067_200);
    }
}
