//! The OCI image spec's (and Docker schema 2's) shared vocabulary: media types and descriptors. Below the
//! registry client, the store and the image service, which all speak it; nothing here does I/O.

use crate::digest::Digest;
use serde::Deserialize;

/// The largest manifest depot takes in from a registry (by default), reads back from its store, or serves.
pub const MAX_MANIFEST: u64 = 4 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Every OCI layer type, `nondistributable.` ones included, starts so.
const OCI_LAYER_PREFIX: &str = "application/vnd.oci.image.layer.";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: every format we read, schema 1 deliberately absent.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A layer media type none of the specs defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported layer media type {0:?}")]
pub struct UnknownLayerType(pub String);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlatformJson {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Descriptor {
    /// How a layer blob is compressed, from its media type.
    pub fn compression(&self) -> Result<Compression, UnknownLayerType> {
        Descriptor::compression_of(&self.media_type)
    }

    /// How a layer of media type `mt` is compressed.
    pub fn compression_of(mt: &str) -> Result<Compression, UnknownLayerType> {
        let base = mt
            .strip_prefix(OCI_LAYER_PREFIX)
            .map(|r| r.trim_start_matches("nondistributable.").to_string());
        match (mt, base.as_deref()) {
            (_, Some("v1.tar")) => Ok(Compression::None),
            (_, Some("v1.tar+gzip")) => Ok(Compression::Gzip),
            (_, Some("v1.tar+zstd")) => Ok(Compression::Zstd),
            (DOCKER_LAYER_GZIP, _) | (DOCKER_FOREIGN_LAYER_GZIP, _) => Ok(Compression::Gzip),
            (DOCKER_LAYER, _) => Ok(Compression::None),
            _ => Err(UnknownLayerType(mt.to_string())),
        }
    }
}

impl Compression {
    /// The OCI layer media type of a layer so compressed.
    pub fn oci_layer_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}
