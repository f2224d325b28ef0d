use super::sigstore::{parse_signature_manifest, signature_tag, PublicKey, Signature};
use super::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

struct Key {
    pair: EcdsaKeyPair,
    pem: String,
}

fn key() -> Key {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(pair.public_key().as_ref());
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    Key {
        pair,
        pem: format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
    }
}

fn payload(repo: &str, digest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

fn sign(k: &Key, payload: Vec<u8>) -> Signature {
    let sig = k.pair.sign(&SystemRandom::new(), &payload).unwrap();
    Signature {
        payload,
        signature_b64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig.as_ref()),
    }
}

fn policy(json: &str) -> PolicyFile {
    PolicyFile::parse(json.as_bytes(), Path::new("/nonexistent")).unwrap()
}

fn signed_policy(k: &Key, scope: &str, identity: &str) -> PolicyFile {
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &k.pem);
    policy(&format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{scope}":[{{"type":"sigstoreSigned","keyData":"{data}","signedIdentity":{{"type":"{identity}"}}}}]}}}}}}"#
    ))
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

#[test]
fn each_way_a_signature_can_fall_short_has_its_reason() {
    let (a, b) = (key(), key());
    let d = Digest::of(b"the manifest");
    let other = Digest::of(b"another manifest");
    let p = signed_policy(&a, "example.com/vendor", "matchRepository");
    let name = r("example.com/vendor/app:1");
    let judge = |sigs: &[Signature]| p.judge(Some(&name), &d, sigs);
    let ok = judge(&[sign(&a, payload("example.com/vendor/app", &d))]).unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].scope, "example.com/vendor");
    assert_eq!(ok[0].identity, "example.com/vendor/app");
    assert!(ok[0].key.starts_with("sha256:") && ok[0].key.len() == 23);
    let why = |sigs: &[Signature]| judge(sigs).unwrap_err().reason;
    assert_eq!(why(&[]), "no signature");
    assert_eq!(
        why(&[sign(&b, payload("example.com/vendor/app", &d))]),
        "signed by another key"
    );
    let mut tampered = sign(&a, payload("example.com/vendor/app", &other));
    tampered.payload = payload("example.com/vendor/app", &d);
    assert_eq!(
        why(&[tampered]),
        "signed by another key",
        "a payload changed after signing"
    );
    assert!(
        why(&[sign(&a, payload("example.com/vendor/app", &other))]).starts_with("signed for another image (sha256:")
    );
    assert!(why(&[sign(&a, payload("example.com/vendor/other", &d))]).starts_with("signed for another image name"));
    assert!(why(&[sign(&a, b"{}".to_vec())]).starts_with("a signature that is no cosign image signature"));
    // the best of several counts
    assert!(judge(&[
        sign(&b, payload("example.com/vendor/app", &d)),
        sign(&a, payload("example.com/vendor/app", &d))
    ])
    .is_ok());
    // outside the scope, the default lets anything in
    assert_eq!(p.judge(Some(&r("example.com/other/app:1")), &d, &[]), Ok(vec![]));
    assert!(p.wants_signatures(Some(&name)) && !p.wants_signatures(Some(&r("busybox"))));
}

#[test]
fn identities_follow_containers_policy() {
    let a = key();
    let d = Digest::of(b"m");
    let by_tag = r("example.com/app:1");
    let by_digest = r(&format!("example.com/app@{d}"));
    let repo_sig = [sign(&a, payload("example.com/app", &d))];
    let tag_sig = [sign(&a, payload("example.com/app:1", &d))];
    // the default identity: by digest the repository, by tag the whole reference (cosign names repositories)
    let p = signed_policy(&a, "example.com", "matchRepoDigestOrExact");
    assert!(p.judge(Some(&by_digest), &d, &repo_sig).is_ok());
    assert!(p.judge(Some(&by_tag), &d, &repo_sig).is_err());
    assert!(p.judge(Some(&by_tag), &d, &tag_sig).is_ok());
    let p = signed_policy(&a, "example.com", "matchExact");
    assert!(p.judge(Some(&by_tag), &d, &tag_sig).is_ok());
    assert!(p.judge(Some(&r("example.com/app:2")), &d, &tag_sig).is_err());
    let p = signed_policy(&a, "example.com", "matchRepository");
    assert!(p.judge(Some(&by_tag), &d, &repo_sig).is_ok() && p.judge(Some(&by_tag), &d, &tag_sig).is_ok());
    // docker.io names compare normalised
    let p = signed_policy(&a, "docker.io/library/alpine", "matchRepository");
    assert!(p
        .judge(
            Some(&r("alpine:3")),
            &d,
            &[sign(&a, payload("index.docker.io/library/alpine", &d))]
        )
        .is_ok());
    // an image without a name is judged by the default
    assert_eq!(p.judge(None, &d, &[]), Ok(vec![]));
}

#[test]
fn the_most_specific_scope_wins() {
    let p = policy(
        r#"{"default":[{"type":"reject"}],"transports":{"docker":{
            "":[{"type":"insecureAcceptAnything"}],
            "example.com":[{"type":"reject"}],
            "example.com/ok":[{"type":"insecureAcceptAnything"}],
            "example.com/ok/no:1":[{"type":"reject"}],
            "*.corp.example":[{"type":"reject"}]}}}"#,
    );
    let d = Digest::of(b"m");
    let ok = |s: &str| p.judge(Some(&r(s)), &d, &[]).is_ok();
    assert!(ok("busybox"));
    assert!(!ok("example.com/app:1"));
    assert!(ok("example.com/ok/app:1") && ok("example.com/ok/no:2"));
    assert!(!ok("example.com/ok/no:1"));
    assert!(!ok("reg.corp.example/x:1") && ok("corp.example/x:1"));
    let refused = p.judge(Some(&r("example.com/app:1")), &d, &[]).unwrap_err();
    assert_eq!(refused.scope, "example.com");
    assert!(p.judge(None, &d, &[]).is_err(), "no name: the default rejects");
}

#[test]
fn what_depot_does_not_check_is_refused_at_load() {
    let bad = |json: &str| PolicyFile::parse(json.as_bytes(), Path::new("/nonexistent")).unwrap_err();
    assert!(bad("{").contains("not JSON"));
    assert!(bad(r#"{"transports":{}}"#).contains("no \"default\""));
    assert!(bad(r#"{"default":[]}"#).contains("empty"));
    assert!(bad(r#"{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}"#).contains("GPG"));
    assert!(bad(r#"{"default":[{"type":"sigstoreSigned","fulcio":{}}]}"#).contains("fulcio"));
    assert!(bad(r#"{"default":[{"type":"sigstoreSigned"}]}"#).contains("exactly one"));
    assert!(bad(r#"{"default":[{"type":"sigstoreSigned","keyPath":"missing.pub"}]}"#).contains("missing.pub"));
    assert!(bad(r#"{"default":[{"type":"sigstoreSigned","keyData":"bm90IGEga2V5"}]}"#).contains("PUBLIC KEY"));
    assert!(bad(
        r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"alpine":[{"type":"reject"}]}}}"#
    )
    .contains("docker.io/library/alpine"));
    assert!(bad(r#"{"default":[{"type":"insecureAcceptAnything"}],"extra":1}"#).contains("extra"));
    // other transports are checked, then not used
    policy(
        r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker-daemon":{"":[{"type":"reject"}]}}}"#,
    );
}

#[test]
fn keys_other_than_p256_are_refused() {
    let k = key();
    assert!(PublicKey::from_pem(k.pem.as_bytes()).is_ok());
    // an Ed25519 SubjectPublicKeyInfo
    let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    assert!(PublicKey::from_pem(ed.as_bytes()).unwrap_err().contains("P-256"));
}

#[test]
fn a_cosign_signature_manifest_is_read() {
    let payload_digest = Digest::of(b"payload");
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":233}},
        "layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":7,
        "annotations":{{"dev.cosignproject.cosign/signature":"MEUC"}}}}]}}"#,
        c = Digest::of(b"config")
    );
    let s = parse_signature_manifest(m.as_bytes()).unwrap();
    assert_eq!(s.blobs.len(), 2);
    assert_eq!(s.payloads, vec![(payload_digest, "MEUC".to_string())]);
    let d = Digest::of(b"x");
    assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
}
