//! The data root is a valid OCI image layout (image-spec `image-layout.md`): `oci-layout`, `blobs/sha256/…` and
//! `index.json`, whose descriptors name every stored image manifest, one per ref, with the ref in
//! `org.opencontainers.image.ref.name`. So the store outlives its database — `depot fsck --repair` rebuilds
//! `depot.db` from it — and other tools read it without depot (`skopeo copy oci:<data root>:<ref> …`).
//!
//! `index.json` is derived from the database and rewritten atomically after every ref change and at every start
//! (a crash between a database commit and the rewrite leaves the old file, made right at the next start).

use crate::digest::Digest;
use crate::fsutil;
use crate::store::db::LayoutRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
use crate::oci::OCI_INDEX as INDEX_MEDIA_TYPE;
const LAYOUT_VERSION: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

/// A manifest the layout names, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manifest: Digest,
    pub media_type: String,
    pub ref_name: Option<String>,
}

/// Write `oci-layout` if it is missing. Survives a crash as: no file (written at the next start) or the file.
pub fn init(root: &Path) -> io::Result<()> {
    let p = super::DataRoot::new(root).oci_layout();
    if p.exists() {
        return Ok(());
    }
    fsutil::write_atomic(&p, LAYOUT_VERSION.as_bytes(), 0o644)
}

/// The `index.json` text for `rows`; `size_of` gives each manifest blob's size.
pub fn render(rows: &[LayoutRow], size_of: impl Fn(&Digest) -> Option<u64>) -> String {
    let manifests = rows
        .iter()
        .filter_map(|r| {
            Some(Descriptor {
                media_type: r.media_type.clone(),
                digest: r.manifest.to_string(),
                size: size_of(&r.manifest)?,
                platform: Some(Platform {
                    architecture: r.architecture.clone(),
                    os: r.os.clone(),
                    variant: r.variant.clone(),
                }),
                annotations: r.ref_name.iter().map(|n| (REF_NAME.to_string(), n.clone())).collect(),
            })
        })
        .collect();
    let index = Index {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.into()),
        manifests,
    };
    serde_json::to_string_pretty(&index).expect("the index serialises")
}

/// Replace `index.json` atomically: after a crash it is the old or the new one, whole.
pub fn write_index(root: &Path, text: &str) -> io::Result<()> {
    fsutil::write_atomic(&super::DataRoot::new(root).index_json(), text.as_bytes(), 0o644)
}

/// What `index.json` names (empty when there is none), for rebuilding the database.
pub fn read_index(root: &Path) -> io::Result<Vec<Entry>> {
    let text = match std::fs::read(super::DataRoot::new(root).index_json()) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let index: Index = serde_json::from_slice(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("index.json: {e}")))?;
    index
        .manifests
        .into_iter()
        .map(|d| {
            Ok(Entry {
                manifest: d
                    .digest
                    .parse()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("index.json: {e}")))?,
                media_type: d.media_type,
                ref_name: d.annotations.get(REF_NAME).cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_read_back() {
        let d = crate::testutil::tempdir();
        init(&d).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("oci-layout")).unwrap(), LAYOUT_VERSION);
        let m = Digest::of(b"manifest");
        let row = |name: Option<&str>| LayoutRow {
            manifest: m.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
            ref_name: name.map(str::to_string),
        };
        let rows = [row(Some("127.0.0.1:5000/test:1")), row(None), {
            let mut r = row(Some("gone"));
            r.manifest = Digest::of(b"missing blob");
            r
        }];
        let text = render(&rows, |d| (d == &m).then_some(8));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(
            v["manifests"].as_array().unwrap().len(),
            2,
            "a manifest whose blob is gone is left out"
        );
        assert_eq!(v["manifests"][0]["annotations"][REF_NAME], "127.0.0.1:5000/test:1");
        assert_eq!(v["manifests"][0]["platform"]["variant"], "v7");
        assert!(v["manifests"][1].get("annotations").is_none());
        write_index(&d, &text).unwrap();
        let back = read_index(&d).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].ref_name.as_deref(), Some("127.0.0.1:5000/test:1"));
        assert_eq!(back[1].ref_name, None);
        assert_eq!(back[0].manifest, m);
        std::fs::write(d.join("index.json"), "{").unwrap();
        assert!(read_index(&d).is_err());
    }
}
