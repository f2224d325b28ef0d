//! `depot bundle create`: images, templates and signatures from the store into one `oci-archive` tar. Planned
//! first (every name resolved, so an unknown one fails before the first byte), then written with every blob
//! re-hashed as it is read: a blob found damaged in the store fails the bundle (and is put aside for the next
//! pull to fetch again) rather than shipping a file that no NAS would take.

use super::*;
use crate::digest::{Digest, Verified};
use crate::image::archive::TarWriter;
use crate::image::{ImageError, ImageService};
use crate::oci::{OCI_INDEX, OCI_MANIFEST};
use crate::policy::sigstore::{parse_signature_manifest, signature_tag};
use crate::reference::Reference;
use serde_json::{json, Map, Value};
use std::io::Write;

/// What to put in a bundle.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSpec {
    /// Image references, by tag or digest.
    #[serde(default)]
    pub images: Vec<String>,
    /// Template names, `dist/release/arch/variant`.
    #[serde(default)]
    pub templates: Vec<String>,
    /// The app whose pins the bundle carries: each image and template is pinned for it on import.
    #[serde(default)]
    pub owner: Option<String>,
}

/// What a planned bundle holds: its `index.json` entries, the store's blobs it copies, and the blobs made for
/// it (templates' manifests).
#[derive(Debug, Default)]
pub struct BundlePlan {
    entries: Vec<Value>,
    blobs: Vec<Digest>,
    made: Vec<(Digest, Vec<u8>)>,
    pub images: usize,
    pub templates: usize,
    pub signatures: usize,
}

impl BundlePlan {
    fn blob(&mut self, d: &Digest) {
        if !self.blobs.contains(d) {
            self.blobs.push(d.clone());
        }
    }

    /// A blob made for the bundle (not in the store), once.
    fn make(&mut self, bytes: Vec<u8>) -> Digest {
        let d = Digest::of(&bytes);
        if !self.made.iter().any(|(m, _)| *m == d) {
            self.made.push((d.clone(), bytes));
        }
        d
    }
}

impl ImageService {
    /// Resolve what `spec` names into a plan.
    pub fn bundle_plan(&self, spec: &BundleSpec) -> Result<BundlePlan, ImageError> {
        if spec.images.is_empty() && spec.templates.is_empty() {
            return Err(ImageError::InvalidParameter("an empty bundle".into()));
        }
        if let Some(o) = &spec.owner {
            crate::image::pins::Pins::owner(o)?;
        }
        let mut plan = BundlePlan::default();
        for name in &spec.images {
            self.plan_image(&mut plan, name, spec.owner.as_deref())?;
        }
        for name in &spec.templates {
            self.plan_template(&mut plan, name, spec.owner.as_deref())?;
        }
        Ok(plan)
    }

    fn plan_image(&self, plan: &mut BundlePlan, name: &str, owner: Option<&str>) -> Result<(), ImageError> {
        let r = Reference::parse(name)?;
        let r = if r.digest().is_some() { r } else { r.with_default_tag() };
        let (id, _) = self.resolve(&r.to_string())?;
        let images = self.db.images();
        let manifests = images.manifests_of(&id)?;
        // the index it was pulled through names it, when there is one: its signatures name that digest
        let top = self.top_manifest(&id)?;
        let (top, media_type) = (top.digest, top.media_type);
        let layers = images.image_layers(&id)?;
        let sizes: Vec<String> = layers.iter().map(|l| l.uncompressed_size.to_string()).collect();
        let mut ann = Map::new();
        ann.insert(REF_NAME.into(), r.to_string().into());
        ann.insert(CONTAINERD_NAME.into(), r.to_string().into());
        ann.insert(UNCOMPRESSED.into(), sizes.join(",").into());
        if let Some(o) = owner {
            ann.insert(PIN_OWNER.into(), o.into());
        }
        plan.entries.push(self.descriptor(&top, &media_type, None, ann)?);
        for (d, _) in &manifests {
            plan.blob(d);
        }
        plan.blob(&id);
        for l in &layers {
            plan.blob(&l.digest);
        }
        plan.images += 1;
        for (sig, signs) in images.signature_manifests(&r.name(), Some(&id))? {
            let m = parse_signature_manifest(&self.store.read(&sig, self.registry.options().max_manifest_bytes)?)
                .map_err(ImageError::InvalidParameter)?;
            let mut ann = Map::new();
            ann.insert(
                REF_NAME.into(),
                format!("{}:{}", r.name(), signature_tag(&signs)).into(),
            );
            ann.insert(SIGNATURE_OF.into(), signs.to_string().into());
            plan.entries.push(self.descriptor(&sig, OCI_MANIFEST, None, ann)?);
            plan.blob(&sig);
            for (d, _) in &m.blobs {
                plan.blob(d);
            }
            plan.signatures += 1;
        }
        Ok(())
    }

    fn plan_template(&self, plan: &mut BundlePlan, name: &str, owner: Option<&str>) -> Result<(), ImageError> {
        let t = self.db.templates().lxc_template(name)?.ok_or_else(|| {
            ImageError::InvalidParameter(format!(
                "no LXC template {name} here (name it as dist/release/arch/variant: depot lxc ls)"
            ))
        })?;
        let record = TemplateRecord {
            name: t.name.clone(),
            build: t.build.clone(),
            source: t.source.clone(),
            meta: t.meta.clone(),
        };
        let empty = plan.make(EMPTY_JSON.to_vec());
        let mut layers =
            vec![json!({"mediaType": LXC_ROOTFS, "digest": t.rootfs_digest.as_str(), "size": t.rootfs_size})];
        if let Some(m) = &t.meta_digest {
            let size = self.store.size(m).unwrap_or_default();
            layers.push(json!({"mediaType": LXC_META, "digest": m.as_str(), "size": size}));
            plan.blob(m);
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": LXC_ARTIFACT,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty.as_str(), "size": EMPTY_JSON.len()},
            "layers": layers,
            "annotations": {TEMPLATE: serde_json::to_string(&record).unwrap_or_default()},
        }))
        .unwrap_or_default();
        let size = manifest.len();
        let d = plan.make(manifest);
        let mut ann = Map::new();
        ann.insert(REF_NAME.into(), format!("lxc:{}", t.name).into());
        if let Some(o) = owner {
            ann.insert(PIN_OWNER.into(), o.into());
        }
        plan.entries
            .push(json!({"mediaType": OCI_MANIFEST, "artifactType": LXC_ARTIFACT,
            "digest": d.as_str(), "size": size, "annotations": ann}));
        plan.blob(&t.rootfs_digest);
        plan.templates += 1;
        Ok(())
    }

    fn descriptor(
        &self,
        d: &Digest,
        media_type: &str,
        kind: Option<&str>,
        ann: Map<String, Value>,
    ) -> Result<Value, ImageError> {
        let size = self
            .store
            .size(d)
            .ok_or_else(|| ImageError::InvalidParameter(format!("blob {d} is not in the store")))?;
        let mut v = json!({"mediaType": media_type, "digest": d.as_str(), "size": size, "annotations": ann});
        if let Some(k) = kind {
            v["artifactType"] = k.into();
        }
        Ok(v)
    }

    /// Write the bundle `plan` describes to `out`: `oci-layout`, the blobs (each re-hashed on the way), then
    /// `index.json`. Returns the bytes of blobs written.
    pub fn bundle_write(&self, plan: &BundlePlan, out: &mut dyn Write) -> Result<u64, ImageError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| ImageError::Io { context, source }
        };
        let mut tw = TarWriter::new(out, 0);
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        tw.file("oci-layout", layout.len() as u64, &mut &layout[..])
            .map_err(io("writing oci-layout"))?;
        let mut bytes = 0;
        // (one the store holds too goes with the store's blobs)
        for (d, b) in plan.made.iter().filter(|(d, _)| !plan.blobs.contains(d)) {
            tw.file(&blob_path(d), b.len() as u64, &mut &b[..])
                .map_err(io("writing a template's manifest"))?;
        }
        for d in &plan.blobs {
            let size = self.store.size(d).unwrap_or_default();
            let mut r = Verified::new(std::io::BufReader::new(self.store.open_blob(d)?), d.clone());
            tw.file(&blob_path(d), size, &mut r)
                .and_then(|_| r.finish())
                .map_err(|e| crate::image::save::read_failed(&self.store, d, e, format!("writing blob {d}")))?;
            bytes += size;
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": plan.entries,
        }))
        .unwrap_or_default();
        tw.file("index.json", index.len() as u64, &mut &index[..])
            .map_err(io("writing index.json"))?;
        tw.finish().map_err(io("ending the bundle"))?;
        Ok(bytes)
    }
}
