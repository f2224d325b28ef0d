//! `import`: a root filesystem tarball (plain or compressed) becomes a one-layer image, its config written here:
//! the platform, the comment (`message`), and the Dockerfile-style `changes` (CMD, ENTRYPOINT, ENV, EXPOSE,
//! LABEL, ONBUILD, USER, VOLUME, WORKDIR) applied to the run configuration.

use super::load::LoadEvent;
use super::{pull, ImageError, ImageService};
use crate::digest::Digest;
use crate::events;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::db::RefKind;
use serde_json::{json, Map, Value};
use std::path::Path;

/// What an import makes.
#[derive(Debug, Clone)]
pub struct ImportSpec {
    /// The tag the image gets, if any.
    pub reference: Option<Reference>,
    /// The config's comment (`Imported from <source>` when none was given).
    pub message: String,
    /// Dockerfile instructions, one per item.
    pub changes: Vec<String>,
    pub platform: Platform,
}

/// A JSON array (`["a", "b"]`) or, for `shell`, words run by `/bin/sh -c`.
fn args(rest: &str, shell: bool) -> Result<Value, String> {
    let rest = rest.trim();
    if rest.starts_with('[') {
        let v: Vec<String> = serde_json::from_str(rest).map_err(|e| format!("{rest}: {e}"))?;
        return Ok(json!(v));
    }
    Ok(if shell {
        json!(["/bin/sh", "-c", rest])
    } else {
        json!(rest.split_whitespace().collect::<Vec<_>>())
    })
}

/// `K=V K2=V2`, or the old `K V` form.
fn pairs(rest: &str) -> Result<Vec<(String, String)>, String> {
    let rest = rest.trim();
    if !rest.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or(format!("{rest}: expected KEY VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    rest.split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .ok_or(format!("{kv}: expected KEY=VALUE"))
        })
        .collect()
}

/// Apply one Dockerfile instruction to a config's `config` object.
pub fn apply_change(cfg: &mut Map<String, Value>, line: &str) -> Result<(), String> {
    let line = line.trim();
    let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match cmd.to_ascii_uppercase().as_str() {
        "CMD" => {
            cfg.insert("Cmd".into(), args(rest, true)?);
        }
        "ENTRYPOINT" => {
            cfg.insert("Entrypoint".into(), args(rest, true)?);
        }
        "ENV" => {
            let env = cfg.entry("Env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().ok_or("Env is not a list")?;
            for (k, v) in pairs(rest)? {
                list.retain(|e| e.as_str().is_none_or(|s| s.split('=').next() != Some(&k)));
                list.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
            let m = labels.as_object_mut().ok_or("Labels is not an object")?;
            for (k, v) in pairs(rest)? {
                m.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
            let m = ports.as_object_mut().ok_or("ExposedPorts is not an object")?;
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                m.insert(p, json!({}));
            }
        }
        "VOLUME" => {
            let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
            let m = vols.as_object_mut().ok_or("Volumes is not an object")?;
            for v in args(rest, false)?.as_array().into_iter().flatten() {
                m.insert(v.as_str().unwrap_or("").to_string(), json!({}));
            }
        }
        "USER" => {
            cfg.insert("User".into(), json!(rest.trim()));
        }
        "WORKDIR" => {
            cfg.insert("WorkingDir".into(), json!(rest.trim()));
        }
        "ONBUILD" => {
            let list = cfg.entry("OnBuild").or_insert_with(|| json!([]));
            list.as_array_mut()
                .ok_or("OnBuild is not a list")?
                .push(json!(rest.trim()));
        }
        _ => return Err(format!("{cmd} is not a valid change command")),
    }
    Ok(())
}

impl ImageService {
    /// Import the tarball in `path` as a one-layer image; its id.
    pub fn import(&self, path: &Path, spec: &ImportSpec, on: &mut dyn FnMut(LoadEvent)) -> Result<Digest, ImageError> {
        let mut run = Map::new();
        for c in &spec.changes {
            apply_change(&mut run, c).map_err(ImageError::InvalidParameter)?;
        }
        let f = std::fs::File::open(path).map_err(|source| ImageError::Io {
            context: "opening the upload".into(),
            source,
        })?;
        let _no_gc = self.transfers.no_gc();
        let layer = super::load::Archive::single(self, &f).whole(on)?;
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut config = json!({
            "architecture": spec.platform.architecture, "os": spec.platform.os, "created": now,
            "comment": spec.message, "config": run,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.as_str()]},
            "history": [{"created": now, "comment": spec.message, "created_by": "depot import"}],
        });
        if let Some(v) = &spec.platform.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let id = Digest::of(&config);
        self.store.put(&id, &config)?;
        let cfg = crate::registry::manifest::parse_config(&config)?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": crate::oci::OCI_MANIFEST,
            "config": {"mediaType": crate::oci::OCI_CONFIG, "digest": id.as_str(), "size": config.len()},
            "layers": [{"mediaType": layer.media_type, "digest": layer.digest.as_str(), "size": layer.size}],
        }))
        .unwrap_or_default();
        let mdigest = Digest::of(&manifest);
        self.store.put(&mdigest, &manifest)?;
        let refs: Vec<(String, String, RefKind)> = spec
            .reference
            .iter()
            .map(|r| {
                let r = r.clone().with_default_tag();
                (r.to_string(), r.name(), RefKind::Tag)
            })
            .collect();
        self.admit(super::admit::Candidate {
            image: pull::new_image(
                &id,
                &mdigest,
                vec![(mdigest.clone(), crate::oci::OCI_MANIFEST.into())],
                &cfg,
                vec![layer],
            ),
            refs,
            entry: super::admit::Entry::Import,
            signatures: Default::default(),
        })?;
        drop(_no_gc);
        self.events
            .emit(events::Action::Import, id.as_str(), self.event_attrs(&id, id.as_str()));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_changes() {
        let mut c = Map::new();
        for l in [
            "CMD [\"/bin/app\", \"-v\"]",
            "ENTRYPOINT run me",
            "ENV A=1 B=two",
            "ENV A 3",
            "EXPOSE 80 53/udp",
            "VOLUME /data /logs",
            "USER nobody",
            "WORKDIR /srv",
            "LABEL org.example=x",
            "ONBUILD RUN true",
        ] {
            apply_change(&mut c, l).unwrap();
        }
        let v = Value::Object(c.clone());
        assert_eq!(v["Cmd"], json!(["/bin/app", "-v"]));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh", "-c", "run me"]));
        assert_eq!(v["Env"], json!(["B=two", "A=3"]));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Volumes"], json!({"/data": {}, "/logs": {}}));
        assert_eq!(
            (v["User"].as_str(), v["WorkingDir"].as_str()),
            (Some("nobody"), Some("/srv"))
        );
        assert_eq!(v["Labels"]["org.example"], "x");
        assert_eq!(v["OnBuild"], json!(["RUN true"]));
        assert!(apply_change(&mut c, "RUN rm -rf /")
            .unwrap_err()
            .contains("not a valid change command"));
        assert!(apply_change(&mut c, "CMD [broken").is_err());
    }
}
