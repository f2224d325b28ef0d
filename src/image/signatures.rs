//! A pull's signatures: when the signature policy judges the image by them, the `sha256-<hex>.sig` manifest
//! beside it in the same repository is fetched, its blobs stored (each owned by the download, so no collection
//! takes them before the image exists), and the image judged before its first layer byte is fetched. The
//! admission step judges it again from the same bytes: that is the check no way in can skip; this one only
//! saves a refused image's download.

use super::admit::Signatures;
use super::error::ImageError;
use super::job::PullJob;
use super::ImageService;
use crate::digest::Digest;
use crate::policy::sigstore::{
    parse_signature_manifest, signature_tag, Signature, SignatureManifest, MAX_PAYLOAD_BYTES,
};
use crate::reference::Reference;
use crate::registry::{RegistryError, Repo};

/// More signatures on one image than any signer makes: a hostile registry's list is refused.
const MAX_SIGNATURES: usize = 64;

/// Fetch the signatures of the manifest `signed` that `r` resolved to, if the policy wants them; then judge,
/// whether it wants them or not (a policy that rejects the image refuses it here, before anything of it is
/// fetched or served).
pub(crate) fn fetch_and_judge(
    svc: &ImageService,
    job: &PullJob,
    repo: &Repo,
    r: &Reference,
    signed: &Digest,
) -> Result<Signatures, ImageError> {
    let Some(policy) = svc.gate.signature_policy() else {
        return Ok(Signatures::default());
    };
    let sigs = match policy.wants_signatures(Some(r)) {
        true => fetch(svc, job, repo, r, signed)?,
        false => Signatures::default(),
    };
    policy
        .judge(Some(r), signed, &sigs.list)
        .map_err(|refusal| ImageError::Refused {
            names: r.familiar(),
            why: refusal.to_string(),
        })?;
    Ok(sigs)
}

fn fetch(
    svc: &ImageService,
    job: &PullJob,
    repo: &Repo,
    r: &Reference,
    signed: &Digest,
) -> Result<Signatures, ImageError> {
    let refused = |why: String| ImageError::Refused {
        names: r.familiar(),
        why,
    };
    let (bytes, digest) = match repo.manifest_bytes(&signature_tag(signed)) {
        Ok((bytes, digest, _)) => (bytes, digest),
        Err(RegistryError::NotFound { .. }) => return Ok(Signatures::default()),
        Err(e) => return Err(refused(format!("its signatures could not be read: {e}"))),
    };
    let m = parse_signature_manifest(&bytes).map_err(refused)?;
    if m.payloads.len() > MAX_SIGNATURES {
        return Err(refused(format!(
            "{} signatures, more than {MAX_SIGNATURES}",
            m.payloads.len()
        )));
    }
    super::pull::own(svc, job.download, &digest, bytes.len() as u64)?;
    svc.store.put(&digest, &bytes)?;
    for (d, size) in &m.blobs {
        if !super::pull::own(svc, job.download, d, *size)? {
            let cap = (*size).min(super::pull::MAX_CONFIG_BYTES);
            let bytes = repo.blob_bytes(d, cap)?;
            svc.store.put(d, &bytes)?;
        }
    }
    stored(svc, digest, signed, &r.name(), m)
}

/// The signatures of the signature manifest `manifest` (read as `m`) signing `signed`, fetched for repository
/// `repo`, their payloads read from the store, where every blob of it is: what a pull fetched, or what a bundle
/// brought.
pub(crate) fn stored(
    svc: &ImageService,
    manifest: Digest,
    signed: &Digest,
    repo: &str,
    m: SignatureManifest,
) -> Result<Signatures, ImageError> {
    let mut list = Vec::with_capacity(m.payloads.len());
    for (d, sig) in m.payloads {
        list.push(Signature {
            payload: svc.store.read(&d, MAX_PAYLOAD_BYTES)?,
            signature_b64: sig,
        });
    }
    Ok(Signatures {
        list,
        artifact: Some(crate::store::db::SignatureArtifact {
            manifest,
            signs: signed.clone(),
            blobs: m.blobs.into_iter().map(|(d, _)| d).collect(),
            repo: repo.to_string(),
        }),
    })
}
