//! Sigstore (cosign) signatures made with a key: the simple-signing payload, signed with ECDSA P-256 over
//! SHA-256, the signature base64 in the payload layer's `dev.cosignproject.cosign/signature` annotation, all in
//! the `sha256-<hex>.sig` manifest beside the image. Pure: the bytes come from a registry or a bundle.
//!
//! A signature vouches for an image when it verifies with a key the policy names, its payload is a
//! `cosign container image signature` naming the image's digest, and the identity it names is one the policy
//! accepts for the image's name: in that order, as containers/image checks them.

use crate::digest::Digest;
use crate::reference::Reference;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use std::collections::BTreeMap;

/// The media type of a simple-signing payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature of a payload layer.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The largest payload read: a real one is a few hundred bytes.
pub const MAX_PAYLOAD_BYTES: u64 = 64 << 10;
/// The payload's `critical.type`.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1, a 66-byte bit string):
/// followed by the 65-byte uncompressed point, it is the whole key.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An ECDSA P-256 public key, as `cosign generate-key-pair` writes it (`-----BEGIN PUBLIC KEY-----`).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    point: Vec<u8>,
    /// `sha256:` and the first 16 hex digits of the key's DER: how messages and `inspect` name it.
    pub fingerprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint)
    }
}

impl PublicKey {
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_string())?;
        let body = text
            .split("-----BEGIN PUBLIC KEY-----")
            .nth(1)
            .and_then(|rest| rest.split("-----END PUBLIC KEY-----").next())
            .ok_or("no PUBLIC KEY block (an ECDSA P-256 public key, as cosign writes it)")?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
            .map_err(|e| format!("the PUBLIC KEY block is not base64: {e}"))?;
        if der.len() != P256_SPKI_PREFIX.len() + 65 || der[..P256_SPKI_PREFIX.len()] != P256_SPKI_PREFIX {
            return Err("not an ECDSA P-256 public key (only those are accepted)".into());
        }
        let point = der[P256_SPKI_PREFIX.len()..].to_vec();
        if point[0] != 0x04 {
            return Err("the key's point is not uncompressed".into());
        }
        Ok(PublicKey {
            point,
            fingerprint: format!("sha256:{}", &Digest::of(&der).hex()[..16]),
        })
    }

    fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(payload, signature)
            .is_ok()
    }
}

/// One signature as it arrived: the payload blob and its layer's signature annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature_b64: String,
}

/// What the best of an image's signatures established, worst first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    NoSignature,
    /// None verifies with the policy's keys.
    OtherKey,
    /// One verifies but is no cosign image signature.
    Malformed(String),
    /// One verifies but names another manifest.
    OtherImage(String),
    /// One verifies for this digest but names an identity the policy does not accept.
    OtherIdentity(String),
    Valid {
        key: String,
        identity: String,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::NoSignature => write!(f, "no signature"),
            Verdict::OtherKey => write!(f, "signed by another key"),
            Verdict::Malformed(why) => write!(f, "a signature that is no cosign image signature ({why})"),
            Verdict::OtherImage(d) => write!(f, "signed for another image ({d})"),
            Verdict::OtherIdentity(r) => write!(f, "signed for another image name ({r})"),
            Verdict::Valid { key, identity } => write!(f, "signed by {key} as {identity}"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: PayloadImage,
    identity: PayloadIdentity,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadIdentity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// Judge one signature: crypto first, then what its payload claims.
fn verdict(keys: &[PublicKey], s: &Signature, digest: &Digest, accepts: &dyn Fn(&Reference) -> bool) -> Verdict {
    let Ok(sig) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s.signature_b64.trim()) else {
        return Verdict::OtherKey;
    };
    let Some(key) = keys.iter().find(|k| k.verifies(&s.payload, &sig)) else {
        return Verdict::OtherKey;
    };
    let p: Payload = match serde_json::from_slice(&s.payload) {
        Ok(p) => p,
        Err(e) => return Verdict::Malformed(e.to_string()),
    };
    if p.critical.kind != PAYLOAD_TYPE {
        return Verdict::Malformed(format!("type {:?}", p.critical.kind));
    }
    if p.critical.image.digest != digest.as_str() {
        return Verdict::OtherImage(p.critical.image.digest);
    }
    match Reference::parse(&p.critical.identity.reference) {
        Ok(r) if accepts(&r) => Verdict::Valid {
            key: key.fingerprint.clone(),
            identity: p.critical.identity.reference,
        },
        _ => Verdict::OtherIdentity(p.critical.identity.reference),
    }
}

/// The best verdict any of `signatures` earns for the manifest `digest`; `accepts` says whether an identity a
/// signature names is one the policy takes for this image.
pub fn best_verdict(
    keys: &[PublicKey],
    signatures: &[Signature],
    digest: &Digest,
    accepts: impl Fn(&Reference) -> bool,
) -> Verdict {
    signatures
        .iter()
        .map(|s| verdict(keys, s, digest, &accepts))
        .max()
        .unwrap_or(Verdict::NoSignature)
}

/// The parts of a `.sig` manifest read here.
#[derive(serde::Deserialize)]
struct SigManifest {
    config: SigDescriptor,
    layers: Vec<SigDescriptor>,
}

#[derive(serde::Deserialize)]
struct SigDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A signature manifest's blobs and which of them are payloads with their signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureManifest {
    /// Its config and every layer, with sizes: all of them are kept with the image.
    pub blobs: Vec<(Digest, u64)>,
    /// (payload blob, its base64 signature).
    pub payloads: Vec<(Digest, String)>,
}

/// Read a `.sig` manifest. Layers that are no signed payload are kept as blobs and otherwise passed by.
pub fn parse_signature_manifest(bytes: &[u8]) -> Result<SignatureManifest, String> {
    let m: SigManifest = serde_json::from_slice(bytes).map_err(|e| format!("signature manifest: {e}"))?;
    let mut out = SignatureManifest {
        blobs: vec![(m.config.digest.clone(), m.config.size)],
        payloads: Vec::new(),
    };
    for l in m.layers {
        out.blobs.push((l.digest.clone(), l.size));
        if l.media_type == PAYLOAD_MEDIA_TYPE {
            if let Some(sig) = l.annotations.get(SIGNATURE_ANNOTATION) {
                if l.size > MAX_PAYLOAD_BYTES {
                    return Err(format!("signature payload {} declares {} bytes", l.digest, l.size));
                }
                out.payloads.push((l.digest, sig.clone()));
            }
        }
    }
    Ok(out)
}

/// The tag cosign puts an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}
