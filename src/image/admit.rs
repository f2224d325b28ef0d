//! The one way an image becomes visible. A pull, a load, an import and a rebuild from `index.json` (and the
//! bundle import to come) each bring their blobs into the store their own way, then hand the image to
//! [`Gate::admit`], which checks that every blob it names is committed, asks the policies, and records the image
//! and moves its refs in one transaction. Policies (a signature required, a pinned digest) plug in here and
//! nowhere else, so no way in can skip them.

use super::error::ImageError;
use crate::digest::Digest;
use crate::policy::sigstore::Signature;
use crate::policy::PolicyFile;
use crate::reference::Reference;
use crate::store::db::{NewImage, RefKind, SignatureArtifact, Signed, SignerRow};
use crate::store::{BlobStore, Db};
use crate::sync::RwLocked;
use std::sync::{Arc, RwLock};

/// How an image came in: what a policy may judge by, and what becomes of a pull's download record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Pulled from a registry by download `download`, which becomes `committed` with the image.
    Pull { download: i64 },
    /// From an archive (`docker load`, `depot load`).
    Load,
    /// From a root file system tarball (`docker import`).
    Import,
    /// Restored from the data root's `index.json` into a rebuilt database.
    Rebuild,
    /// From an offline bundle, with the signatures it brought.
    Bundle,
}

/// An image whose blobs are in the store, asking to be recorded under `refs`.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub image: NewImage,
    /// (ref, repository name, kind): tags move to this image, digest refs name it.
    pub refs: Vec<(String, String, RefKind)>,
    pub entry: Entry,
    /// The signatures that came with it (from the registry, or inside a bundle).
    pub signatures: Signatures,
}

/// An image's signatures as they arrived: what a signature policy judges.
#[derive(Debug, Clone, Default)]
pub struct Signatures {
    pub list: Vec<Signature>,
    /// The signature manifest they came in, its blobs all in the store: kept with the image once it is
    /// admitted.
    pub artifact: Option<SignatureArtifact>,
}

impl Candidate {
    /// Every blob the image needs: its config, its manifests and its layers, and the signature manifest's.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.image.id)
            .chain(self.image.manifests.iter().map(|(d, _)| d))
            .chain(self.image.layers.iter().map(|l| &l.digest))
            .chain(
                self.signatures
                    .artifact
                    .iter()
                    .flat_map(|a| std::iter::once(&a.manifest).chain(&a.blobs)),
            )
    }

    /// The manifest its signatures must name: the first one a reference resolved to (an index, or the image
    /// manifest itself).
    pub fn signed_digest(&self) -> &Digest {
        self.image
            .manifests
            .first()
            .map(|(d, _)| d)
            .unwrap_or(&self.image.manifest_digest)
    }

    /// What the image is called, for messages: its refs, else its id.
    pub fn names(&self) -> String {
        if self.refs.is_empty() {
            return self.image.id.to_string();
        }
        self.refs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// A rule an image must pass to become visible.
pub trait Policy: Send + Sync {
    /// Why `c` may not enter, if it may not.
    fn refuse(&self, c: &Candidate) -> Option<String>;
}

/// The admission step and the policies it asks, shared by every way in.
#[derive(Default)]
pub struct Gate {
    policies: RwLock<Vec<Arc<dyn Policy>>>,
    signatures: RwLock<Option<Arc<PolicyFile>>>,
}

impl Gate {
    pub fn add(&self, p: Arc<dyn Policy>) {
        self.policies.write_locked().push(p);
    }

    /// Judge every image by `p` from now on (containers-policy.json; see [`crate::policy`]).
    pub fn set_signature_policy(&self, p: Option<Arc<PolicyFile>>) {
        *self.signatures.write_locked() = p;
    }

    pub fn signature_policy(&self) -> Option<Arc<PolicyFile>> {
        self.signatures.read_locked().clone()
    }

    /// Judge `c` by the signature policy: every name it would take (an image without one by the policy's
    /// default). Who vouched for it, or why it may not enter. A rebuild restores what was admitted before.
    fn judge_signatures(&self, c: &Candidate) -> Result<Signed, String> {
        let Some(policy) = self.signature_policy().filter(|_| c.entry != Entry::Rebuild) else {
            return Ok(Signed::default());
        };
        let names = c
            .refs
            .iter()
            .map(|(name, _, _)| Reference::parse(name).map(Some).map_err(|e| format!("{name}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let names = if names.is_empty() { vec![None] } else { names };
        let digest = c.signed_digest();
        let mut signed = Signed::default();
        for name in &names {
            let by = policy
                .judge(name.as_ref(), digest, &c.signatures.list)
                .map_err(|r| r.to_string())?;
            for s in by {
                let row = SignerRow {
                    scope: s.scope,
                    key: s.key,
                    identity: s.identity,
                    signed: digest.to_string(),
                };
                if !signed.signers.contains(&row) {
                    signed.signers.push(row);
                }
            }
        }
        if !signed.signers.is_empty() {
            signed.manifests.extend(c.signatures.artifact.clone());
        }
        Ok(signed)
    }

    /// Whether `c` would be admitted: every blob it names committed in `store`, no policy refusing it. Who
    /// vouched for it, when the signature policy asked. A way in that brings several images at once (a bundle)
    /// checks them all before recording any.
    pub fn check(&self, store: &BlobStore, c: &Candidate) -> Result<Signed, ImageError> {
        if let Some(d) = c.blobs().find(|d| !store.contains(d)) {
            return Err(ImageError::Incomplete {
                names: c.names(),
                blob: d.clone(),
            });
        }
        let policies = self.policies.read_locked().clone();
        if let Some(why) = policies.iter().find_map(|p| p.refuse(c)) {
            return Err(ImageError::Refused { names: c.names(), why });
        }
        self.judge_signatures(c)
            .map_err(|why| ImageError::Refused { names: c.names(), why })
    }

    /// Record `c` if every blob it names is committed in `store` and no policy refuses it. Nothing of it is
    /// visible until the transaction commits, and nothing at all if it is refused: its blobs, owned by no
    /// image, go with the next collection.
    pub fn admit(&self, db: &Db, store: &BlobStore, c: &Candidate) -> Result<(), ImageError> {
        let signed = self.check(store, c)?;
        let download = match c.entry {
            Entry::Pull { download } => Some(download),
            _ => None,
        };
        db.images().commit_signed_image(&c.image, &c.refs, download, &signed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::LayerRecord;

    fn candidate(store: &BlobStore, entry: Entry) -> Candidate {
        let config = store_put(store, b"{\"config\":1}");
        let manifest = store_put(store, b"{\"manifest\":1}");
        let layer = store_put(store, b"layer bytes");
        Candidate {
            image: NewImage {
                id: config,
                manifest_digest: manifest.clone(),
                manifests: vec![(manifest, "application/vnd.oci.image.manifest.v1+json".into())],
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
                created: None,
                labels: None,
                layers: vec![LayerRecord {
                    digest: layer.clone(),
                    diff_id: layer,
                    media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                    size: 11,
                    uncompressed_size: 11,
                }],
            },
            refs: vec![("example.com/a:1".into(), "example.com/a".into(), RefKind::Tag)],
            entry,
            signatures: Signatures::default(),
        }
    }

    fn store_put(store: &BlobStore, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        store.put(&d, bytes).unwrap();
        d
    }

    struct Deny;
    impl Policy for Deny {
        fn refuse(&self, c: &Candidate) -> Option<String> {
            (c.entry == Entry::Load).then(|| "loads are not allowed here".to_string())
        }
    }

    /// A policy's refusal leaves nothing visible; a missing blob is refused before any policy; the rest enters.
    #[test]
    fn nothing_enters_that_a_policy_refuses_or_that_lacks_a_blob() {
        let dir = crate::testutil::tempdir();
        let store = BlobStore::open(&dir).unwrap();
        let db = Db::open_in_memory().unwrap();
        let gate = Gate::default();
        gate.add(Arc::new(Deny));
        let c = candidate(&store, Entry::Load);
        let e = gate.admit(&db, &store, &c).unwrap_err();
        assert!(matches!(e, ImageError::Refused { .. }), "{e}");
        assert!(e.to_string().contains("loads are not allowed here"), "{e}");
        assert!(
            db.images().resolve_ref("example.com/a:1").unwrap().is_none(),
            "a refused image is visible"
        );
        let mut c = candidate(&store, Entry::Import);
        let gone = c.image.layers[0].digest.clone();
        c.image.layers[0].digest = Digest::of(b"never stored");
        let e = gate.admit(&db, &store, &c).unwrap_err();
        assert!(matches!(e, ImageError::Incomplete { .. }), "{e}");
        assert!(db.images().resolve_ref("example.com/a:1").unwrap().is_none());
        c.image.layers[0].digest = gone;
        gate.admit(&db, &store, &c).unwrap();
        assert_eq!(
            db.images().resolve_ref("example.com/a:1").unwrap(),
            Some(c.image.id.clone())
        );
    }
}
