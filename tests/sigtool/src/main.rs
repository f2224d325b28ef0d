//! depot-sigtool: the independent reference for depot's signature policy, built on sigstore's own Rust crate
//! (its cosign client signs, fetches and verifies). A test tool: never linked into depot.
//!
//!   depot-sigtool keygen PREFIX
//!       writes PREFIX.key (cosign's encrypted private key, empty password) and PREFIX.pub
//!   depot-sigtool sign KEY IMAGE [--identity REF] [--claim-digest DIGEST] [--tamper]
//!       signs what IMAGE (REGISTRY/REPO:TAG or @DIGEST) resolves to and pushes the signature to its
//!       `sha256-<hex>.sig` tag; --identity names another image in the payload, --claim-digest another manifest,
//!       --tamper changes the payload after signing
//!   depot-sigtool verify PUBKEY IMAGE RULE
//!       prints `admit` (exit 0) when a signature of what IMAGE resolves to verifies with PUBKEY and its identity
//!       passes RULE (matchRepository | matchExact | matchRepoDigestOrExact), else `refuse: WHY` (exit 1)
//!
//! Registries are reached over plain HTTP (the test registry on loopback).

use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraint};
use sigstore::cosign::{ClientBuilder, Constraint, CosignCapabilities, SignatureLayer};
use sigstore::crypto::signing_key::ecdsa::{ECDSAKeys, EllipticCurve};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use zeroize::Zeroizing;

type Res<T> = Result<T, String>;

fn client() -> Res<sigstore::cosign::Client> {
    let config = ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    };
    ClientBuilder::default()
        .with_oci_client_config(config)
        .build()
        .map_err(|e| e.to_string())
}

fn image(s: &str) -> Res<OciReference> {
    s.parse().map_err(|e| format!("{s}: {e:?}"))
}

/// The repository of an image, without tag or digest: what cosign names in a payload.
fn repository(r: &OciReference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

fn keygen(prefix: &str) -> Res<()> {
    let keys = ECDSAKeys::new(EllipticCurve::P256).map_err(|e| e.to_string())?;
    let pair = SigStoreKeyPair::ECDSA(keys);
    let private = pair.private_key_to_encrypted_pem(b"").map_err(|e| e.to_string())?;
    let public = pair.public_key_to_pem().map_err(|e| e.to_string())?;
    std::fs::write(format!("{prefix}.key"), private.as_bytes()).map_err(|e| e.to_string())?;
    std::fs::write(format!("{prefix}.pub"), public).map_err(|e| e.to_string())
}

async fn sign(key: &str, target: &str, identity: Option<&str>, claim: Option<&str>, tamper: bool) -> Res<()> {
    let mut c = client()?;
    let target = image(target)?;
    let (sig_ref, digest) = c.triangulate(&target, &Auth::Anonymous).await.map_err(|e| e.to_string())?;
    let mut layer = SignatureLayer::new_unsigned(&target, claim.unwrap_or(&digest)).map_err(|e| e.to_string())?;
    layer.simple_signing.critical.identity.docker_reference = match identity {
        Some(i) => i.to_string(),
        None => repository(&target),
    };
    let raw = Zeroizing::new(std::fs::read(key).map_err(|e| format!("{key}: {e}"))?);
    // cosign's encrypted key with an empty password
    let pair = SigStoreKeyPair::from_encrypted_pem(&raw, b"").map_err(|e| e.to_string())?;
    let signer = pair
        .to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)
        .map_err(|e| e.to_string())?;
    PrivateKeySigner::new_with_signer(signer)
        .add_constraint(&mut layer)
        .map_err(|e| e.to_string())?;
    if tamper {
        // the pushed payload is what simple_signing serialises to: now another image than was signed
        layer.simple_signing.critical.identity.docker_reference.push_str("-tampered");
    }
    c.push_signature(None, &Auth::Anonymous, &sig_ref, vec![layer])
        .await
        .map_err(|e| e.to_string())?;
    println!("{sig_ref}");
    Ok(())
}

/// Whether a payload naming `claimed` passes `rule` for an image asked for as `asked`.
fn identity_passes(rule: &str, asked: &OciReference, claimed: &str) -> Res<bool> {
    let claimed_ref = image(claimed)?;
    let same_repo = repository(asked) == repository(&claimed_ref);
    let exact = claimed == asked.whole();
    Ok(match rule {
        "matchRepository" => same_repo,
        "matchExact" => exact,
        "matchRepoDigestOrExact" if asked.digest().is_some() => same_repo,
        "matchRepoDigestOrExact" => exact,
        other => return Err(format!("unknown rule {other}")),
    })
}

async fn verify(pubkey: &str, target: &str, rule: &str) -> Res<bool> {
    let mut c = client()?;
    let target = image(target)?;
    // the .sig of what the reference resolves to; layers whose payload names another digest are dropped here
    let layers = match c.trusted_signature_layers(&Auth::Anonymous, &target).await {
        Ok(l) => l,
        Err(e) => {
            println!("refuse: {e}");
            return Ok(false);
        }
    };
    let pem = std::fs::read(pubkey).map_err(|e| format!("{pubkey}: {e}"))?;
    let verifier = PublicKeyVerifier::new(&pem, &SigningScheme::ECDSA_P256_SHA256_ASN1).map_err(|e| e.to_string())?;
    let mut why = "no signature".to_string();
    for l in &layers {
        if !verifier.verify(l).unwrap_or(false) {
            why = "no signature verifies with the key".into();
            continue;
        }
        let claimed = &l.simple_signing.critical.identity.docker_reference;
        if identity_passes(rule, &target, claimed)? {
            println!("admit: {claimed}");
            return Ok(true);
        }
        why = format!("identity {claimed}");
    }
    println!("refuse: {why}");
    Ok(false)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str);
    let r = match args.first().map(String::as_str) {
        Some("keygen") if args.len() == 2 => keygen(&args[1]).map(|_| true),
        Some("sign") if args.len() >= 3 => sign(
            &args[1],
            &args[2],
            flag("--identity"),
            flag("--claim-digest"),
            args.iter().any(|a| a == "--tamper"),
        )
        .await
        .map(|_| true),
        Some("verify") if args.len() == 4 => verify(&args[1], &args[2], &args[3]).await,
        _ => Err("usage: depot-sigtool keygen PREFIX | sign KEY IMAGE [--identity REF] [--claim-digest D] [--tamper] | verify PUBKEY IMAGE RULE".into()),
    };
    match r {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("depot-sigtool: {e}");
            std::process::exit(2);
        }
    }
}
