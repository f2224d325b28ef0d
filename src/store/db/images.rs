//! Images, their layers, manifests and refs (tags and digests), and the facts kept about blobs.

use super::*;

/// See the module; `Db::images()` gives it.
pub struct Images<'a> {
    pub(super) db: &'a Db,
}

impl Images<'_> {
    pub fn put_blob_meta(&self, m: &BlobMeta) -> Result<()> {
        self.db.conn().execute(
            "INSERT INTO blobs (digest, size, media_type, diff_id, uncompressed_size) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(digest) DO UPDATE SET diff_id = coalesce(excluded.diff_id, diff_id),
               uncompressed_size = coalesce(excluded.uncompressed_size, uncompressed_size)",
            params![
                m.digest.as_str(),
                m.size as i64,
                m.media_type,
                m.diff_id.as_ref().map(|d| d.as_str()),
                m.uncompressed_size.map(|s| s as i64)
            ],
        )?;
        Ok(())
    }

    pub fn blob_meta(&self, d: &Digest) -> Result<Option<BlobMeta>> {
        let row = self
            .db
            .conn()
            .query_row(
                "SELECT size, media_type, diff_id, uncompressed_size FROM blobs WHERE digest = ?1",
                [d.as_str()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(size, media_type, diff, usize)| {
            Ok(BlobMeta {
                digest: d.clone(),
                size: size as u64,
                media_type,
                diff_id: opt_digest(diff, "blobs.diff_id")?,
                uncompressed_size: usize.map(|u| u as u64),
            })
        })
        .transpose()
    }

    /// Whether the image (config digest) is already stored.
    pub fn has_image(&self, id: &Digest) -> Result<bool> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT 1 FROM images WHERE id = ?1", [id.as_str()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Insert the image (if new) and point `refs` at it, in one transaction: a ref never points at an image whose
    /// rows are not all there. Tags move; a download, if given, becomes `committed`.
    pub fn commit_image(
        &self,
        img: &NewImage,
        refs: &[(String, String, RefKind)],
        download: Option<i64>,
    ) -> Result<()> {
        self.commit_signed_image(img, refs, download, &Signed::default())
    }

    /// [`Images::commit_image`], with who vouched for the image recorded in the same transaction.
    pub fn commit_signed_image(
        &self,
        img: &NewImage,
        refs: &[(String, String, RefKind)],
        download: Option<i64>,
        signed: &Signed,
    ) -> Result<()> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        let t = now();
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO images (id, manifest_digest, os, architecture, variant, created, size, labels, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                img.id.as_str(),
                img.manifest_digest.as_str(),
                img.os,
                img.architecture,
                img.variant,
                img.created,
                img.size() as i64,
                img.labels,
                t
            ],
        )?;
        if inserted == 1 {
            for (i, l) in img.layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, idx, digest, diff_id, media_type, size, uncompressed_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        img.id.as_str(),
                        i as i64,
                        l.digest.as_str(),
                        l.diff_id.as_str(),
                        l.media_type,
                        l.size as i64,
                        l.uncompressed_size as i64
                    ],
                )?;
            }
        }
        for (d, mt) in &img.manifests {
            tx.execute(
                "INSERT OR IGNORE INTO image_manifests (image_id, digest, media_type) VALUES (?1, ?2, ?3)",
                params![img.id.as_str(), d.as_str(), mt],
            )?;
        }
        for (name, repo, kind) in refs {
            let kind = match kind {
                RefKind::Tag => "tag",
                RefKind::Digest => "digest",
            };
            tx.execute(
                "INSERT INTO refs (name, repo, kind, image_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at",
                params![name, repo, kind, img.id.as_str(), t],
            )?;
        }
        if let Some(id) = download {
            set_state(&tx, id, DownloadState::Committed, None)?;
            tx.execute(
                "UPDATE downloads SET image_id = ?2 WHERE id = ?1",
                params![id, img.id.as_str()],
            )?;
        }
        record_signed(&tx, &img.id, signed)?;
        tx.commit()?;
        Ok(())
    }

    /// Who vouched for image `id`, as recorded when it was admitted.
    pub fn signers(&self, id: &Digest) -> Result<Vec<SignerRow>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT scope, key, identity, signed FROM image_signers WHERE image_id = ?1 ORDER BY scope, key",
        )?;
        let rows = st.query_map([id.as_str()], |r| {
            Ok(SignerRow {
                scope: r.get(0)?,
                key: r.get(1)?,
                identity: r.get(2)?,
                signed: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every admitted image's signer keys, by image id: for lists.
    pub fn signer_keys(&self) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached("SELECT DISTINCT image_id, key FROM image_signers ORDER BY image_id, key")?;
        let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (id, key) = row?;
            out.entry(id).or_default().push(key);
        }
        Ok(out)
    }

    /// The signature manifests fetched for repository `repo` and kept with its images (or with image `id`
    /// alone): their digests, and the manifest each one signs.
    pub fn signature_manifests(&self, repo: &str, id: Option<&Digest>) -> Result<Vec<(Digest, Digest)>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT s.digest, s.signs FROM image_signature_blobs s
             JOIN refs r ON r.image_id = s.image_id AND r.repo = s.repo
             WHERE s.repo = ?1 AND s.role = 'manifest' AND (?2 IS NULL OR s.image_id = ?2)
             ORDER BY s.signs, s.digest",
        )?;
        let rows = st.query_map(params![repo, id.map(|d| d.as_str())], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (d, s) = r?;
            Ok((digest_col(d, "signature manifest")?, digest_col(s, "signed manifest")?))
        })
        .collect()
    }

    /// All images with their refs, newest first.
    pub fn list_images(&self) -> Result<Vec<ImageRow>> {
        self.images_where(None)
    }

    /// One image with its refs.
    pub fn image_row(&self, id: &Digest) -> Result<Option<ImageRow>> {
        Ok(self.images_where(Some(id))?.pop())
    }

    fn images_where(&self, id: Option<&Digest>) -> Result<Vec<ImageRow>> {
        let conn = self.db.conn();
        let only = id.map(|d| d.as_str().to_string());
        let mut refs = conn
            .prepare_cached("SELECT image_id, name, kind FROM refs WHERE ?1 IS NULL OR image_id = ?1 ORDER BY name")?;
        let mut by_image: std::collections::HashMap<String, (Vec<String>, Vec<String>)> = Default::default();
        for r in refs.query_map([&only], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })? {
            let (id, name, kind) = r?;
            let e = by_image.entry(id).or_default();
            if kind == "tag" {
                e.0.push(name)
            } else {
                e.1.push(name)
            }
        }
        let mut st = conn.prepare_cached(
            "SELECT id, manifest_digest, os, architecture, variant, created, size, labels, last_tag_time FROM images
             WHERE ?1 IS NULL OR id = ?1 ORDER BY coalesce(created, 0) DESC, id",
        )?;
        let rows = st.query_map([&only], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let ((id, md), os, architecture, variant, created, size, labels, last_tag_time) = r?;
            let (tags, digests) = by_image.remove(&id).unwrap_or_default();
            out.push(ImageRow {
                id: digest_col(id, "images.id")?,
                manifest_digest: digest_col(md, "images.manifest_digest")?,
                os,
                architecture,
                variant,
                created,
                size: size as u64,
                labels,
                tags,
                digests,
                last_tag_time,
            });
        }
        Ok(out)
    }

    /// Record digest ref `name` (`repo@sha256:…`) for image `id` (after a push).
    pub fn add_digest_ref(&self, name: &str, repo: &str, id: &Digest) -> Result<()> {
        self.db.conn().execute(
            "INSERT INTO refs (name, repo, kind, image_id, created_at) VALUES (?1, ?2, 'digest', ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![name, repo, id.as_str(), now()],
        )?;
        Ok(())
    }

    /// Repositories (canonical names) whose images have blob `d`, for cross-repository mounts.
    pub fn repos_with_blob(&self, d: &Digest) -> Result<Vec<String>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT r.repo FROM refs r JOIN image_layers l ON l.image_id = r.image_id WHERE l.digest = ?1
             ORDER BY r.repo",
        )?;
        let rows = st.query_map([d.as_str()], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The media type the image's own manifest was stored with.
    pub fn manifest_media_type(&self, id: &Digest, manifest: &Digest) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row(
                "SELECT media_type FROM image_manifests WHERE image_id = ?1 AND digest = ?2",
                [id.as_str(), manifest.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Point tag `name` (in `repo`) at image `id`, moving it from any other image, and note the time of this
    /// tag operation on the image.
    pub fn tag(&self, name: &str, repo: &str, id: &Digest) -> Result<()> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "INSERT INTO refs (name, repo, kind, image_id, created_at) VALUES (?1, ?2, 'tag', ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at",
            params![name, repo, id.as_str(), t],
        )?;
        tx.execute(
            "UPDATE images SET last_tag_time = ?2 WHERE id = ?1",
            params![id.as_str(), t],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn image_layers(&self, id: &Digest) -> Result<Vec<LayerRecord>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT digest, diff_id, media_type, size, uncompressed_size FROM image_layers WHERE image_id = ?1 ORDER BY idx",
        )?;
        let rows = st.query_map([id.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (d, diff, media_type, size, us) = r?;
            out.push(LayerRecord {
                digest: digest_col(d, "image_layers.digest")?,
                diff_id: digest_col(diff, "image_layers.diff_id")?,
                media_type,
                size: size as u64,
                uncompressed_size: us as u64,
            });
        }
        Ok(out)
    }

    /// The image a canonical ref name points at.
    pub fn resolve_ref(&self, name: &str) -> Result<Option<Digest>> {
        let id: Option<String> = self
            .db
            .conn()
            .query_row("SELECT image_id FROM refs WHERE name = ?1", [name], |r| r.get(0))
            .optional()?;
        opt_digest(id, "refs.image_id")
    }

    /// The tags of repository `repo` (canonical names) with their images, sorted by name.
    pub fn repo_tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
        let conn = self.db.conn();
        let mut st =
            conn.prepare_cached("SELECT name, image_id FROM refs WHERE repo = ?1 AND kind = 'tag' ORDER BY name")?;
        let rows = st.query_map([repo], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (n, i) = r?;
            Ok((n, digest_col(i, "refs.image_id")?))
        })
        .collect()
    }

    /// Images whose id hex starts with `prefix` (lowercase hex).
    pub fn images_by_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached("SELECT id FROM images WHERE substr(id, 8, ?2) = ?1")?;
        let ids = st.query_map(params![prefix, prefix.len() as i64], |r| r.get::<_, String>(0))?;
        ids.map(|r| digest_col(r?, "images.id")).collect()
    }

    /// Refs of an image: (name, repo, kind).
    pub fn refs_of(&self, id: &Digest) -> Result<Vec<(String, String, RefKind)>> {
        let conn = self.db.conn();
        let mut st =
            conn.prepare_cached("SELECT name, repo, kind FROM refs WHERE image_id = ?1 ORDER BY kind DESC, name")?;
        let rows = st.query_map([id.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        rows.map(|r| {
            let (n, repo, k) = r?;
            Ok((n, repo, if k == "tag" { RefKind::Tag } else { RefKind::Digest }))
        })
        .collect()
    }

    /// Remove refs and, if `delete_image`, the image row, in one transaction.
    /// Succeeds on a full volume (see [`Db::with_room`]): a delete is how the owner frees space.
    pub fn remove(&self, refs: &[String], delete_image: Option<&Digest>) -> Result<()> {
        self.db.with_room(|conn| {
            let tx = conn.unchecked_transaction()?;
            for r in refs {
                tx.execute("DELETE FROM refs WHERE name = ?1", [r])?;
            }
            if let Some(id) = delete_image {
                tx.execute("DELETE FROM images WHERE id = ?1", [id.as_str()])?;
            }
            tx.commit()
        })
    }

    /// Every blob some image or LXC template needs: configs, layers, manifests, rootfs and meta files.
    pub fn referenced_blobs(&self) -> Result<HashSet<Digest>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT id FROM images UNION SELECT digest FROM image_layers UNION SELECT digest FROM image_manifests
             UNION SELECT digest FROM image_signature_blobs UNION SELECT rootfs_digest FROM lxc_templates
             UNION SELECT meta_digest FROM lxc_templates WHERE meta_digest IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "referenced blob")).collect()
    }

    /// What `index.json` of the OCI layout lists: every image's manifest with each of its refs (an image with
    /// none is listed once, unnamed), ordered by ref name.
    pub fn layout_entries(&self) -> Result<Vec<LayoutRow>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT i.manifest_digest, m.media_type, i.os, i.architecture, i.variant, r.name
             FROM images i JOIN image_manifests m ON m.image_id = i.id AND m.digest = i.manifest_digest
             LEFT JOIN refs r ON r.image_id = i.id
             ORDER BY r.name IS NULL, r.name, i.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        rows.map(|r| {
            let (d, media_type, os, architecture, variant, ref_name) = r?;
            Ok(LayoutRow {
                manifest: digest_col(d, "images.manifest_digest")?,
                media_type,
                os,
                architecture,
                variant,
                ref_name,
            })
        })
        .collect()
    }

    /// Every (image, layer blob, uncompressed size) triple: what shared sizes and disk usage are computed from.
    pub fn layer_usage(&self) -> Result<Vec<(Digest, Digest, u64)>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached("SELECT image_id, digest, uncompressed_size FROM image_layers")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        rows.map(|r| {
            let (i, d, n) = r?;
            Ok((
                digest_col(i, "image_layers.image_id")?,
                digest_col(d, "image_layers.digest")?,
                n as u64,
            ))
        })
        .collect()
    }

    /// An image's config labels (JSON object text), if it has any.
    pub fn image_labels(&self, id: &Digest) -> Result<Option<String>> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT labels FROM images WHERE id = ?1", [id.as_str()], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?
            .flatten())
    }

    /// The image manifest of every image.
    pub fn image_manifests(&self) -> Result<HashSet<Digest>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached("SELECT manifest_digest FROM images")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "images.manifest_digest")).collect()
    }

    /// One image's manifests with their media types: the image manifest, and the index it was pulled through.
    pub fn manifests_of(&self, id: &Digest) -> Result<Vec<(Digest, String)>> {
        let conn = self.db.conn();
        let mut st =
            conn.prepare_cached("SELECT digest, media_type FROM image_manifests WHERE image_id = ?1 ORDER BY digest")?;
        let rows = st.query_map([id.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (d, mt) = r?;
            Ok((digest_col(d, "image_manifests.digest")?, mt))
        })
        .collect()
    }

    /// The media type of manifest `d` when an image of repository `repo` holds it (its own, the index it came
    /// through, or a signature manifest kept with it): what the LAN registry may serve under that name.
    pub fn manifest_in_repo(&self, repo: &str, d: &Digest) -> Result<Option<String>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT m.media_type FROM image_manifests m JOIN refs r ON r.image_id = m.image_id
             WHERE r.repo = ?1 AND m.digest = ?2
             UNION ALL SELECT 'application/vnd.oci.image.manifest.v1+json' FROM image_signature_blobs s
             JOIN refs r ON r.image_id = s.image_id WHERE r.repo = ?1 AND s.repo = ?1 AND s.digest = ?2
               AND s.role = 'manifest'
             LIMIT 1",
        )?;
        Ok(st
            .query_row(params![repo, d.as_str()], |r| r.get::<_, String>(0))
            .optional()?)
    }

    /// Every manifest repository `repo`'s images hold (their own, the indexes they came through, the signature
    /// manifests kept with them), with its media type: what the LAN registry's referrers API looks through.
    pub fn manifests_in_repo(&self, repo: &str) -> Result<Vec<(Digest, String)>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT m.digest, m.media_type FROM image_manifests m JOIN refs r ON r.image_id = m.image_id
             WHERE r.repo = ?1
             UNION SELECT s.digest, 'application/vnd.oci.image.manifest.v1+json' FROM image_signature_blobs s
             JOIN refs r ON r.image_id = s.image_id WHERE r.repo = ?1 AND s.repo = ?1 AND s.role = 'manifest'
             ORDER BY 1",
        )?;
        let rows = st.query_map(params![repo], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (d, mt) = r?;
            Ok((digest_col(d, "manifest")?, mt))
        })
        .collect()
    }

    /// Whether an image of repository `repo` needs blob `d` (config, layer, manifest, or a signature's).
    pub fn blob_in_repo(&self, repo: &str, d: &Digest) -> Result<bool> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT 1 FROM refs r WHERE r.repo = ?1 AND (r.image_id = ?2
               OR EXISTS (SELECT 1 FROM image_layers l WHERE l.image_id = r.image_id AND l.digest = ?2)
               OR EXISTS (SELECT 1 FROM image_manifests m WHERE m.image_id = r.image_id AND m.digest = ?2)
               OR EXISTS (SELECT 1 FROM image_signature_blobs s
                          WHERE s.image_id = r.image_id AND s.repo = r.repo AND s.digest = ?2))
             LIMIT 1",
        )?;
        Ok(st
            .query_row(params![repo, d.as_str()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every repository with a ref, by name.
    pub fn repositories(&self) -> Result<Vec<String>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached("SELECT DISTINCT repo FROM refs ORDER BY repo")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The blobs one image needs: its config, layers and manifests.
    pub fn blobs_of_image(&self, id: &Digest) -> Result<Vec<Digest>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT id FROM images WHERE id = ?1 UNION SELECT digest FROM image_layers WHERE image_id = ?1
             UNION SELECT digest FROM image_manifests WHERE image_id = ?1",
        )?;
        let rows = st.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
        rows.map(|r| digest_col(r?, "image blob")).collect()
    }

    /// Every (image, blob it needs) pair.
    pub fn image_blobs(&self) -> Result<Vec<(Digest, Digest)>> {
        let conn = self.db.conn();
        let mut st = conn.prepare_cached(
            "SELECT id, id FROM images UNION SELECT image_id, digest FROM image_layers
             UNION SELECT image_id, digest FROM image_manifests ORDER BY 1, 2",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|r| {
            let (i, b) = r?;
            Ok((digest_col(i, "image id")?, digest_col(b, "image blob")?))
        })
        .collect()
    }
}

/// Who vouched for an image: one row per (policy scope, key, identity).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignerRow {
    pub scope: String,
    pub key: String,
    pub identity: String,
    /// The manifest the signature names (the index, for a multi-platform image pulled by tag).
    pub signed: String,
}

/// A cosign signature manifest kept with an image: its digest, the manifest it signs, its blobs (config and
/// payloads), and the repository it was fetched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureArtifact {
    pub manifest: Digest,
    pub signs: Digest,
    pub blobs: Vec<Digest>,
    pub repo: String,
}

/// What the admission step learnt of an image's signatures: the signers, and the signature manifests, kept as
/// long as the image.
#[derive(Debug, Clone, Default)]
pub struct Signed {
    pub signers: Vec<SignerRow>,
    pub manifests: Vec<SignatureArtifact>,
}

fn record_signed(tx: &rusqlite::Transaction<'_>, image: &Digest, s: &Signed) -> Result<()> {
    for r in &s.signers {
        tx.execute(
            "INSERT OR IGNORE INTO image_signers (image_id, scope, key, identity, signed) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![image.as_str(), r.scope, r.key, r.identity, r.signed],
        )?;
    }
    for a in &s.manifests {
        let rows = std::iter::once((&a.manifest, "manifest")).chain(a.blobs.iter().map(|b| (b, "blob")));
        for (d, role) in rows {
            tx.execute(
                "INSERT OR IGNORE INTO image_signature_blobs (image_id, repo, digest, role, signs)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![image.as_str(), a.repo, d.as_str(), role, a.signs.as_str()],
            )?;
        }
    }
    Ok(())
}
