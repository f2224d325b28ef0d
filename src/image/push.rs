//! `push`: an image's own manifest, config and layer blobs, byte for byte as stored (so digests survive a pull
//! and a push), to a registry: blobs it has are skipped, blobs another repository of the same registry has are
//! mounted, the rest uploaded whole; each blob with one retry budget.

use super::{ImageError, ImageService};
use crate::digest::{Corrupt, Digest, Verified};
use crate::events;
use crate::reference::Reference;
use crate::registry::manifest::{parse_manifest, Manifest};
use crate::registry::push::Sent;
use crate::registry::{Credentials, RegistryError};
use std::io::Read;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// Per layer (`id`: the short diff_id, as Docker shows them).
    Preparing {
        id: String,
    },
    Progress {
        id: String,
        current: u64,
        total: u64,
    },
    Pushed {
        id: String,
    },
    Exists {
        id: String,
    },
    Mounted {
        id: String,
        from: String,
    },
    /// One tag done: the manifest's digest and size.
    Done {
        tag: String,
        digest: Digest,
        size: u64,
    },
}

/// Counts bytes as they are read, reporting every 1%.
struct Counting<'a> {
    inner: Verified<std::fs::File>,
    done: u64,
    last: u64,
    total: u64,
    report: &'a mut dyn FnMut(u64, u64),
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.last >= (self.total / 100).max(256 * 1024) || (n == 0 && self.done != self.last) {
            (self.report)(self.done, self.total);
            self.last = self.done;
        }
        Ok(n)
    }
}

impl ImageService {
    /// The tags a push of `name` sends: `name` with its tag, or every tag of the repository when it has none.
    pub fn push_targets(&self, name: &Reference) -> Result<Vec<(Reference, Digest)>, ImageError> {
        if name.tag().is_some() {
            let id = self
                .db
                .images()
                .resolve_ref(&name.to_string())?
                .ok_or_else(|| ImageError::NoLocalTag {
                    reference: name.familiar(),
                })?;
            return Ok(vec![(name.clone(), id)]);
        }
        let tags = self.db.images().repo_tags(&name.name())?;
        if tags.is_empty() {
            return Err(ImageError::NoLocalRepo {
                name: name.familiar_name(),
            });
        }
        tags.into_iter()
            .map(|(t, id)| Ok((Reference::parse(&t)?, id)))
            .collect()
    }

    /// Push each of `targets` (from [`ImageService::push_targets`]).
    pub fn push(
        &self,
        targets: &[(Reference, Digest)],
        creds: Option<Credentials>,
        on: &mut dyn FnMut(PushEvent),
    ) -> Result<(), ImageError> {
        for (r, id) in targets {
            let push = Push {
                svc: self,
                repo: self.registry.repo_for_push(r.domain(), r.path(), creds.clone()),
                r,
            };
            push.run(id, on)?;
        }
        Ok(())
    }
}

/// The push of one tag: the image service it reads from, the repository it goes to, the reference it is under.
struct Push<'a> {
    svc: &'a ImageService,
    repo: crate::registry::Repo,
    r: &'a Reference,
}

impl Push<'_> {
    /// Send image `id`'s layers, config and manifest, then record the digest the registry now has it under.
    fn run(&self, id: &Digest, on: &mut dyn FnMut(PushEvent)) -> Result<(), ImageError> {
        let (svc, r) = (self.svc, self.r);
        let row = svc.db.images().image_row(id)?.ok_or_else(|| ImageError::NotFound {
            reference: r.familiar(),
        })?;
        let mdigest = row.manifest_digest.clone();
        let media_type = svc
            .db
            .images()
            .manifest_media_type(id, &mdigest)?
            .unwrap_or_else(|| crate::oci::OCI_MANIFEST.into());
        let bytes = svc.store.read(&mdigest, svc.registry.options().max_manifest_bytes)?;
        let Manifest::Image(m) = parse_manifest(&bytes, Some(&media_type))? else {
            return Err(ImageError::InvalidParameter(format!(
                "{mdigest} is an index, not an image manifest"
            )));
        };
        let diff_ids: std::collections::HashMap<Digest, Digest> = svc
            .db
            .images()
            .image_layers(id)?
            .into_iter()
            .map(|l| (l.digest, l.diff_id))
            .collect();
        let short = |d: &Digest| diff_ids.get(d).unwrap_or(d).short().to_string();
        for l in &m.layers {
            on(PushEvent::Preparing { id: short(&l.digest) });
        }
        let blobs =
            m.layers
                .iter()
                .map(|l| (&l.digest, l.size, true))
                .chain([(&m.config.digest, m.config.size, false)]);
        for (d, size, is_layer) in blobs {
            let lid = short(d);
            let sent = self.blob(d, size, &mut |current, total| {
                if is_layer {
                    on(PushEvent::Progress {
                        id: lid.clone(),
                        current,
                        total,
                    });
                }
            })?;
            if is_layer {
                on(match sent {
                    Sent::Exists => PushEvent::Exists { id: lid },
                    Sent::Mounted { from } => PushEvent::Mounted { id: lid, from },
                    Sent::Uploaded => PushEvent::Pushed { id: lid },
                });
            }
        }
        let tag = r.tag().unwrap_or("latest").to_string();
        retrying(&svc.transfers.retry, || {
            self.repo.put_manifest(&tag, &media_type, &bytes)
        })?;
        svc.db
            .images()
            .add_digest_ref(&format!("{}@{mdigest}", r.name()), &r.name(), id)?;
        svc.layout.sync();
        svc.events.emit(
            events::Action::Push,
            r.familiar(),
            svc.event_attrs(id, &r.familiar_name()),
        );
        on(PushEvent::Done {
            tag,
            digest: mdigest,
            size: bytes.len() as u64,
        });
        Ok(())
    }

    /// Send blob `d` of `size` bytes, unless the repository has it or another repository of the registry
    /// lends it.
    fn blob(&self, d: &Digest, size: u64, report: &mut dyn FnMut(u64, u64)) -> Result<Sent, ImageError> {
        let (svc, repo, r) = (self.svc, &self.repo, self.r);
        let policy = &svc.transfers.retry;
        if retrying(policy, || repo.has_blob(d))? {
            return Ok(Sent::Exists);
        }
        // Another repository of the same registry that has it lends it without an upload.
        let domain = format!("{}/", r.domain());
        for other in svc.db.images().repos_with_blob(d)? {
            let Some(path) = other.strip_prefix(&domain).filter(|p| *p != r.path()) else {
                continue;
            };
            if retrying(policy, || repo.mount(d, path))? {
                return Ok(Sent::Mounted { from: path.to_string() });
            }
        }
        // What is sent is hashed on the way: a blob damaged on disk is put out of the store (the next pull
        // fetches it again) and the push fails naming it, without retrying a copy that cannot get better.
        let mut corrupt = None;
        retrying(policy, || {
            let f = svc.store.open_blob(d).map_err(|e| RegistryError::Transport {
                url: d.to_string(),
                msg: e.to_string(),
            })?;
            let mut body = Counting {
                inner: Verified::new(f, d.clone()),
                done: 0,
                last: 0,
                total: size,
                report: &mut *report,
            };
            let sent = repo.upload(d, size, &mut body);
            // The client may stop reading at `size` bytes, before the end that triggers the check.
            match body.inner.finish() {
                Err(e) if Corrupt::of(&e).is_some() => {
                    corrupt = Some(e);
                    Ok(())
                }
                _ => sent,
            }
        })?;
        match corrupt {
            Some(e) => Err(super::save::read_failed(&svc.store, d, e, format!("pushing blob {d}"))),
            None => Ok(Sent::Uploaded),
        }
    }
}

/// Run `f` within one retry budget of `policy`.
fn retrying<T>(
    policy: &crate::net::retry::RetryPolicy,
    mut f: impl FnMut() -> Result<T, RegistryError>,
) -> Result<T, ImageError> {
    let mut budget = policy.budget();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => match budget.failed(e.retry()) {
                Some(delay) => std::thread::sleep(delay),
                None => return Err(e.into()),
            },
        }
    }
}
