//! Manifests, indexes and image configs: pure parsing of registry documents (OCI image spec and Docker schema 2).
//! Sizes are capped by the caller before bytes reach here.

use crate::digest::Digest;
use crate::platform::Platform;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::oci::{Descriptor, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::oci::{DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED};

impl From<crate::oci::UnknownLayerType> for ManifestError {
    fn from(e: crate::oci::UnknownLayerType) -> ManifestError {
        ManifestError::LayerType(e.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid manifest: {0}")]
    Json(String),
    #[error("unsupported manifest format: Docker schema 1 ({0}) was deprecated in 2015; the image must be pushed again as Docker schema 2 or OCI")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("manifest declares media type {declared:?} but its content is {actual}")]
    Conflict { declared: String, actual: &'static str },
    #[error("unsupported layer media type {0:?}")]
    LayerType(String),
    #[error("no matching manifest for {want} in the manifest list entries (available: {available})")]
    NoMatch { want: String, available: String },
    #[error("invalid image config: {0}")]
    Config(String),
    #[error("image config has {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

/// Parse a manifest or index. The kind comes from the document's `mediaType`, else the response's
/// `Content-Type`, else its structure (umoci writes OCI manifests without `mediaType`).
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
    let declared = raw
        .media_type
        .clone()
        .or_else(|| ct.filter(|c| is_manifest_type(c)).map(str::to_string));
    if raw.schema_version == Some(1)
        || raw.fs_layers.is_some()
        || matches!(declared.as_deref(), Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED))
    {
        return Err(ManifestError::Schema1(
            declared.unwrap_or_else(|| DOCKER_SCHEMA1_SIGNED.to_string()),
        ));
    }
    let structure = match (&raw.manifests, &raw.config, &raw.layers) {
        (Some(_), None, _) => "an index",
        (None, Some(_), Some(_)) => "an image manifest",
        _ => return Err(ManifestError::Json("neither an image manifest nor an index".into())),
    };
    let is_index = structure == "an index";
    let media_type = match declared {
        Some(mt) => {
            let declared_index = matches!(mt.as_str(), OCI_INDEX | DOCKER_LIST);
            let declared_image = matches!(mt.as_str(), OCI_MANIFEST | DOCKER_MANIFEST);
            if !declared_index && !declared_image {
                return Err(ManifestError::MediaType(mt));
            }
            if declared_index != is_index {
                return Err(ManifestError::Conflict {
                    declared: mt,
                    actual: structure,
                });
            }
            mt
        }
        None if is_index => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    };
    if is_index {
        Ok(Manifest::Index(Index {
            media_type,
            manifests: raw.manifests.unwrap_or_default(),
        }))
    } else {
        let layers = raw.layers.unwrap_or_default();
        for l in &layers {
            l.compression()?;
        }
        Ok(Manifest::Image(ImageManifest {
            media_type,
            config: raw.config.expect("checked above"),
            layers,
        }))
    }
}

fn is_manifest_type(t: &str) -> bool {
    matches!(
        t,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST | DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED
    )
}

impl Index {
    /// The best entry for `want`; attestation entries (`unknown/unknown`) never match.
    pub fn select(&self, want: &Platform) -> Result<&Descriptor, ManifestError> {
        let mut best: Option<(u32, &Descriptor)> = None;
        for d in &self.manifests {
            let Some(p) = &d.platform else { continue };
            let cand = Platform::new(&p.os, &p.architecture, p.variant.as_deref());
            if want.matches(&cand) {
                let r = want.rank(&cand);
                if best.is_none_or(|(br, _)| r < br) {
                    best = Some((r, d));
                }
            }
        }
        best.map(|(_, d)| d).ok_or_else(|| ManifestError::NoMatch {
            want: want.to_string(),
            available: self
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The parts of an image config depot uses. The raw bytes stay in the store for inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    pub platform: Platform,
    /// Unix seconds of `created`, if present and valid RFC 3339.
    pub created: Option<i64>,
    pub labels: Option<BTreeMap<String, String>>,
    pub diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<RawRunConfig>,
    rootfs: RawRootfs,
}

#[derive(Deserialize)]
struct RawRunConfig {
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<Digest>,
}

pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| ManifestError::Config(e.to_string()))?;
    if raw.rootfs.kind != "layers" {
        return Err(ManifestError::Config(format!(
            "rootfs type {:?} is not \"layers\"",
            raw.rootfs.kind
        )));
    }
    let created = raw.created.as_deref().and_then(parse_rfc3339);
    let os = if raw.os.is_empty() { "linux" } else { &raw.os };
    Ok(ImageConfig {
        platform: Platform::new(os, &raw.architecture, raw.variant.as_deref()),
        created,
        labels: raw.config.and_then(|c| c.labels).filter(|l| !l.is_empty()),
        diff_ids: raw.rootfs.diff_ids,
    })
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Compression;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn image_json(mt: Option<&str>, layer_mt: &str) -> String {
        let mt = mt.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":10}},
            "layers":[{{"mediaType":"{layer_mt}","digest":"{D2}","size":20}}]}}"#
        )
    }

    #[test]
    fn manifest_kinds() {
        let m = parse_manifest(
            image_json(None, "application/vnd.oci.image.layer.v1.tar+gzip").as_bytes(),
            None,
        )
        .unwrap();
        assert!(
            matches!(&m, Manifest::Image(i) if i.media_type == OCI_MANIFEST && i.layers[0].compression() == Ok(Compression::Gzip))
        );
        let m = parse_manifest(
            image_json(
                Some(DOCKER_MANIFEST),
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
            .as_bytes(),
            Some("application/json"),
        )
        .unwrap();
        assert!(matches!(&m, Manifest::Image(i) if i.media_type == DOCKER_MANIFEST));
        let m = parse_manifest(
            image_json(None, "application/vnd.oci.image.layer.v1.tar+zstd").as_bytes(),
            Some(DOCKER_MANIFEST),
        )
        .unwrap();
        assert!(
            matches!(&m, Manifest::Image(i) if i.media_type == DOCKER_MANIFEST && i.layers[0].compression() == Ok(Compression::Zstd))
        );
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        assert!(
            matches!(parse_manifest(idx.as_bytes(), None).unwrap(), Manifest::Index(i) if i.media_type == OCI_INDEX)
        );
    }

    #[test]
    fn manifest_errors() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            parse_manifest(s1.as_bytes(), None),
            Err(ManifestError::Schema1(_))
        ));
        assert!(matches!(parse_manifest(b"{", None), Err(ManifestError::Json(_))));
        assert!(matches!(parse_manifest(b"{}", None), Err(ManifestError::Json(_))));
        assert!(matches!(parse_manifest(b"[]", None), Err(ManifestError::Json(_))));
        assert!(matches!(
            parse_manifest(
                image_json(Some(OCI_INDEX), "application/vnd.oci.image.layer.v1.tar").as_bytes(),
                None
            ),
            Err(ManifestError::Conflict { .. })
        ));
        assert!(matches!(
            parse_manifest(
                image_json(Some("text/html"), "application/vnd.oci.image.layer.v1.tar").as_bytes(),
                None
            ),
            Err(ManifestError::MediaType(_))
        ));
        assert!(matches!(
            parse_manifest(image_json(None, "application/x-evil").as_bytes(), None),
            Err(ManifestError::LayerType(_))
        ));
        let bad_digest = image_json(None, "application/vnd.oci.image.layer.v1.tar").replace(D2, "sha256:xyz");
        assert!(matches!(
            parse_manifest(bad_digest.as_bytes(), None),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn platform_selection() {
        let entry = |d: &str, arch: &str, variant: &str| {
            let v = if variant.is_empty() {
                String::new()
            } else {
                format!(r#","variant":"{variant}""#)
            };
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":{{"architecture":"{arch}","os":"linux"{v}}}}}"#
            )
        };
        let att = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}}"#
        );
        let d3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{att},{},{},{},{}]}}"#,
            entry(D1, "amd64", ""),
            entry(D2, "arm64", "v8"),
            entry(d3, "arm", "v6"),
            entry(
                "sha256:4444444444444444444444444444444444444444444444444444444444444444",
                "arm",
                "v7"
            ),
        );
        let Manifest::Index(idx) = parse_manifest(doc.as_bytes(), None).unwrap() else {
            panic!()
        };
        let pick = |p: &str| idx.select(&p.parse().unwrap()).map(|d| d.digest.to_string());
        assert_eq!(pick("linux/amd64").unwrap(), D1);
        assert_eq!(pick("linux/arm64").unwrap(), D2);
        assert!(pick("linux/arm/v7").unwrap().starts_with("sha256:4444"));
        assert_eq!(pick("linux/arm/v6").unwrap(), d3);
        let e = pick("linux/s390x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries (available: linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7)"
        );
    }

    #[test]
    fn configs() {
        let c = format!(
            r#"{{"architecture":"arm64","variant":"v8","os":"linux","created":"2024-09-26T21:31:42.123+02:00",
            "config":{{"Labels":{{"a":"b"}}}},"rootfs":{{"type":"layers","diff_ids":["{D1}"]}}}}"#
        );
        let c = parse_config(c.as_bytes()).unwrap();
        assert_eq!(c.platform.to_string(), "linux/arm64");
        assert_eq!(c.created, Some(1727379102));
        assert_eq!(c.labels.unwrap()["a"], "b");
        assert_eq!(c.diff_ids.len(), 1);
        assert!(parse_config(br#"{"rootfs":{"type":"other","diff_ids":[]}}"#).is_err());
        assert!(parse_config(br#"{"architecture":"amd64"}"#).is_err());
        let c = parse_config(
            br#"{"architecture":"amd64","os":"linux","config":{"Labels":{}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert_eq!((c.created, c.labels), (None, None));
    }
}
