//! What the LAN registry serves, read from the store: a repository's tags, manifests and blobs under the names
//! depot keeps them by (`docker.io/library/alpine`). Read-only.

use super::{ImageError, ImageService};
use crate::digest::Digest;
use crate::oci::{DOCKER_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::policy::sigstore::signature_tag;

/// A manifest as served: its digest and media type (its bytes are the blob of that digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedManifest {
    pub digest: Digest,
    pub media_type: String,
}

impl ImageService {
    /// The manifest image `id` goes by: the index it was pulled through when there is one (what its tag named
    /// at the registry, and what its signatures name), else its own.
    pub fn top_manifest(&self, id: &Digest) -> Result<ServedManifest, ImageError> {
        let images = self.db.images();
        let row = images.image_row(id)?.ok_or_else(|| ImageError::NotFound {
            reference: id.to_string(),
        })?;
        let manifests = images.manifests_of(id)?;
        manifests
            .iter()
            .find(|(_, mt)| mt == OCI_INDEX || mt == DOCKER_LIST)
            .or_else(|| manifests.iter().find(|(d, _)| *d == row.manifest_digest))
            .map(|(digest, media_type)| ServedManifest {
                digest: digest.clone(),
                media_type: media_type.clone(),
            })
            .ok_or_else(|| ImageError::InvalidParameter(format!("{id}: no manifest recorded")))
    }

    /// The manifest `reference` (a tag, cosign's `sha256-<hex>.sig`, or a digest) names in repository `repo`.
    pub fn served_manifest(&self, repo: &str, reference: &str) -> Result<Option<ServedManifest>, ImageError> {
        let images = self.db.images();
        if let Ok(d) = reference.parse::<Digest>() {
            return Ok(images
                .manifest_in_repo(repo, &d)?
                .map(|media_type| ServedManifest { digest: d, media_type }));
        }
        if reference.ends_with(".sig") {
            let sig = images
                .signature_manifests(repo, None)?
                .into_iter()
                .find(|(_, signs)| signature_tag(signs) == reference);
            return Ok(sig.map(|(digest, _)| ServedManifest {
                digest,
                media_type: OCI_MANIFEST.into(),
            }));
        }
        match images.resolve_ref(&format!("{repo}:{reference}"))? {
            Some(id) => self.top_manifest(&id).map(Some),
            None => Ok(None),
        }
    }

    /// Repository `repo`'s tags, with cosign's `.sig` tags of the signatures kept with its images, sorted.
    pub fn served_tags(&self, repo: &str) -> Result<Vec<String>, ImageError> {
        let images = self.db.images();
        let mut tags: Vec<String> = images
            .repo_tags(repo)?
            .into_iter()
            .filter_map(|(name, _)| name.rsplit_once(':').map(|(_, t)| t.to_string()))
            .collect();
        tags.extend(
            images
                .signature_manifests(repo, None)?
                .iter()
                .map(|(_, signs)| signature_tag(signs)),
        );
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Blob `d` and its size, when an image of repository `repo` needs it.
    pub fn served_blob(&self, repo: &str, d: &Digest) -> Result<Option<(std::fs::File, u64)>, ImageError> {
        if !self.db.images().blob_in_repo(repo, d)? {
            return Ok(None);
        }
        let size = self.store.size(d).ok_or_else(|| ImageError::Incomplete {
            names: repo.to_string(),
            blob: d.clone(),
        })?;
        Ok(Some((self.store.open_blob(d)?, size)))
    }

    /// Every repository with a tag or digest ref.
    pub fn repositories(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.db.images().repositories()?)
    }
}

impl ImageService {
    /// A blob of the store, whole (a manifest), at most `limit` bytes.
    pub fn store_read(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, ImageError> {
        Ok(self.store.read(d, limit)?)
    }
}
