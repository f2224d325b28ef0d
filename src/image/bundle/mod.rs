//! Offline bundles: one file that carries images, LXC templates, the images' signatures and the pins an app
//! asks for, to a NAS without a network (a firmware update, a USB stick). The file is an OCI image layout in a
//! tar, what skopeo reads as `oci-archive:FILE:NAME`:
//!
//! - `oci-layout`, every blob once under `blobs/sha256/`, then `index.json`;
//! - an image: its manifest as pulled (an index when it came through one: the digest its signatures name),
//!   named by `org.opencontainers.image.ref.name` and `io.containerd.image.name` (the whole reference);
//! - its signatures: the cosign `.sig` manifest, named `REPO:sha256-<hex>.sig` as in a registry, and
//!   `dev.depot.signature-of` the manifest it signs;
//! - an LXC template: an OCI artifact (`artifactType` [`LXC_ARTIFACT`]) whose layers are the rootfs and the
//!   metadata archive, its record in `dev.depot.lxc.template`;
//! - a pin: `dev.depot.pin.owner` on the image's or template's entry.
//!
//! [`create`] writes one from the store; [`import`] takes one in from a stream, every blob verified against its
//! name as it arrives, nothing visible before every blob is in and every image passed the admission step.

pub mod create;
pub mod import;

pub use create::BundleSpec;
pub use import::{ImportEvent, ImportSummary};

/// The artifact type of an LXC template in a bundle.
pub const LXC_ARTIFACT: &str = "application/vnd.depot.lxc.template.v1";
/// The media type of a template's rootfs layer (its compression is in the file, as LXC reads it).
pub const LXC_ROOTFS: &str = "application/vnd.depot.lxc.rootfs.v1.tar";
/// The media type of a template's `meta.tar.xz`.
pub const LXC_META: &str = "application/vnd.depot.lxc.meta.v1.tar+xz";
/// OCI's empty descriptor's content (`{}`), the config of an artifact without one.
pub const EMPTY_JSON: &[u8] = b"{}";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const SIGNATURE_OF: &str = "dev.depot.signature-of";
pub const PIN_OWNER: &str = "dev.depot.pin.owner";
pub const TEMPLATE: &str = "dev.depot.lxc.template";
/// The uncompressed sizes of an image's layers, in order (the manifest has the compressed ones only).
pub const UNCOMPRESSED: &str = "dev.depot.layers.uncompressed-sizes";

/// A template's record as a bundle carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRecord {
    pub name: String,
    pub build: String,
    pub source: String,
    /// The metadata as depot parsed it (JSON, see `lxc::meta`).
    pub meta: String,
}

/// A blob's path in the layout.
pub fn blob_path(d: &crate::digest::Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}
