//! `GET /images/json`, `DELETE /images/{name}`, `POST /images/prune` and `GET /system/df`.

use super::dto::{DeleteResponse, DiskUsage, PruneReport, SearchResult};
use super::{ApiError, ApiVersion, Engine};
use crate::http::{bool_value, json, query_get, query_pairs, Req, Resp};
use crate::image::{label_matches, DeleteItem, PruneFilter};
use crate::reference::Reference;
use crate::store::db::ImageRow;
use hyper::StatusCode;
use std::collections::{BTreeMap, BTreeSet};

/// Parse `filters` in both encodings: the CLI's `{"k":{"v":true}}` and docker-py's `{"k":["v"]}`.
pub fn parse_filters(raw: Option<&str>) -> Result<BTreeMap<String, BTreeSet<String>>, ApiError> {
    let mut out = BTreeMap::new();
    let raw = raw.unwrap_or("").trim();
    if raw.is_empty() {
        return Ok(out);
    }
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid filter: {e}"));
    let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("filters must be a JSON object".into()))?;
    for (k, vals) in obj {
        let set: BTreeSet<String> = match vals {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, b)| b.as_bool() == Some(true))
                .map(|(s, _)| s.clone())
                .collect(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("{k}: values must be strings")))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad(format!("{k}: expected an object or a list"))),
        };
        out.insert(k.clone(), set);
    }
    Ok(out)
}

/// Go's `path.Match` for reference filters (`*`, `?`, `[...]`; `*` does not cross `/`).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(&c)) => c != b'/' && m(&p[1..], &s[1..]),
            (Some(b'['), Some(&c)) => {
                let Some(end) = p.iter().position(|&x| x == b']') else {
                    return false;
                };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some(b'^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && c != b'/' && m(&p[end + 1..], &s[1..])
            }
            (Some(b'\\'), Some(&c)) => p.len() > 1 && p[1] == c && m(&p[2..], &s[1..]),
            (Some(&pc), Some(&c)) => pc == c && m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

fn bool_filter(f: &BTreeMap<String, BTreeSet<String>>, key: &str) -> Result<Option<bool>, ApiError> {
    let Some(vals) = f.get(key) else { return Ok(None) };
    let t = vals.iter().any(|v| v == "true" || v == "1");
    let fl = vals.iter().any(|v| v == "false" || v == "0");
    let other = vals.iter().any(|v| !matches!(v.as_str(), "true" | "1" | "false" | "0"));
    if t == fl || other {
        let shown = vals.iter().cloned().collect::<Vec<_>>().join(" ");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid filter '{key}=[{shown}]'"),
        ));
    }
    Ok(Some(t))
}

fn labels_of(row: &ImageRow) -> Option<BTreeMap<String, String>> {
    row.labels.as_deref().and_then(|l| serde_json::from_str(l).ok())
}

/// The filters of `GET /images/json`, checked; `filter=` (before API 1.41) is a reference filter.
fn list_filters(q: &[(String, String)], v: ApiVersion<'_>) -> Result<BTreeMap<String, BTreeSet<String>>, ApiError> {
    let mut filters = parse_filters(query_get(q, "filters"))?;
    if v.before("1.41") {
        if let Some(f) = query_get(q, "filter").filter(|f| !f.is_empty()) {
            filters.entry("reference".into()).or_default().insert(f.to_string());
        }
    }
    for k in filters.keys() {
        if !matches!(
            k.as_str(),
            "dangling" | "label" | "before" | "since" | "reference" | "until"
        ) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("invalid filter '{k}'")));
        }
    }
    Ok(filters)
}

pub async fn list(e: &Engine, req: &Req, v: ApiVersion<'_>) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let filters = list_filters(&q, v)?;
    let until = until_filter(&filters)?;
    let dangling = bool_filter(&filters, "dangling")?;
    let images = e.images.clone();
    let sharing = if bool_value(query_get(&q, "shared-size")) {
        let images = images.clone();
        Some(crate::pool::run(move || images.layer_sharing()).await?.0)
    } else {
        None
    };
    let (b, s) = (filters.get("before").cloned(), filters.get("since").cloned());
    // One trip to the pool: the list and the images `before`/`since` name.
    let (rows, before_ids, since_ids) = crate::pool::run(move || {
        let ids = |names: Option<BTreeSet<String>>| {
            names
                .map(|n| {
                    n.iter()
                        .map(|n| images.resolve(n).map(|r| r.0))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()
        };
        Ok::<_, crate::image::ImageError>((images.list()?, ids(b)?, ids(s)?))
    })
    .await
    .map_err(ApiError::from)?;
    let created_of = |ids: Option<Vec<crate::digest::Digest>>| {
        ids.map(|ids| {
            ids.iter()
                .map(|id| rows.iter().find(|r| &r.id == id).and_then(|r| r.created).unwrap_or(0))
                .collect::<Vec<_>>()
        })
    };
    let before = created_of(before_ids);
    let since = created_of(since_ids);
    let labels_filter = filters.get("label");
    let mut out = Vec::new();
    for row in &rows {
        let created = row.created.unwrap_or(0);
        if before.as_ref().is_some_and(|b| b.iter().any(|t| created >= *t))
            || since.as_ref().is_some_and(|s| s.iter().any(|t| created <= *t))
            || until.is_some_and(|u| created >= u)
            || dangling.is_some_and(|d| d != row.tags.is_empty())
        {
            continue;
        }
        let labels = labels_of(row);
        if labels_filter.is_some_and(|lf| !lf.iter().all(|w| label_matches(labels.as_ref(), w))) {
            continue;
        }
        let Some((tags, digests)) = listed_names(row, filters.get("reference"), v) else {
            continue;
        };
        let shared = sharing
            .as_ref()
            .map(|s| s.get(&row.id).copied().unwrap_or(0) as i64)
            .unwrap_or(-1);
        out.push(summary(row, tags, digests, labels, shared, -1, v));
    }
    // `all` shows intermediate images, which depot never has: every image is a top-level one.
    let _ = bool_value(query_get(&q, "all"));
    Ok(json(StatusCode::OK, &out))
}

/// An image's tags and digests as the list shows them (familiar), those the reference patterns match when
/// there are some (`None`: the image is not listed), with the placeholders clients before API 1.43 expect.
fn listed_names(
    row: &crate::store::db::ImageRow,
    patterns: Option<&BTreeSet<String>>,
    v: ApiVersion<'_>,
) -> Option<(Vec<String>, Vec<String>)> {
    let mut tags: Vec<String> = row.tags.iter().map(|t| Reference::familiar_of(t)).collect();
    let mut digests: Vec<String> = row.digests.iter().map(|t| Reference::familiar_of(t)).collect();
    if let Some(pats) = patterns {
        let keep = |s: &String| {
            let name = s.split(['@']).next().unwrap_or(s);
            let name = crate::reference::split_tag(name).0;
            pats.iter().any(|p| glob_match(p, s) || glob_match(p, name))
        };
        tags.retain(keep);
        digests.retain(keep);
        if tags.is_empty() && digests.is_empty() {
            return None;
        }
    }
    if v.before("1.43") {
        if tags.is_empty() {
            tags.push("<none>:<none>".into());
        }
        if digests.is_empty() {
            digests.push("<none>@<none>".into());
        }
    }
    Some((tags, digests))
}

/// Docker's `ImageSummary`, serialised straight from this (a listing of 1,000 images builds no JSON tree).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Summary<'a> {
    containers: i64,
    created: i64,
    id: &'a str,
    labels: Option<BTreeMap<String, String>>,
    parent_id: &'static str,
    repo_digests: Vec<String>,
    repo_tags: Vec<String>,
    shared_size: i64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_size: Option<u64>,
}

fn summary<'a>(
    row: &'a ImageRow,
    tags: Vec<String>,
    digests: Vec<String>,
    labels: Option<BTreeMap<String, String>>,
    shared: i64,
    containers: i64,
    v: ApiVersion<'_>,
) -> Summary<'a> {
    Summary {
        containers,
        created: row.created.unwrap_or(0),
        id: row.id.as_str(),
        labels,
        parent_id: "",
        repo_digests: digests,
        repo_tags: tags,
        shared_size: shared,
        size: row.size,
        virtual_size: v.before("1.44").then_some(row.size),
    }
}

/// The `until` filter (one value at most) as unix seconds.
fn until_filter(filters: &BTreeMap<String, BTreeSet<String>>) -> Result<Option<i64>, ApiError> {
    let Some(vals) = filters.get("until") else {
        return Ok(None);
    };
    if vals.len() > 1 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "more than one until filter specified",
        ));
    }
    let now = crate::events::now_nano();
    vals.iter()
        .next()
        .map(|v| {
            super::timestamp::parse(v, now)
                .map(|ns| ns / 1_000_000_000)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
        })
        .transpose()
}

fn items(list: Vec<DeleteItem>) -> Vec<DeleteResponse> {
    list.into_iter().map(DeleteResponse::from).collect()
}

/// `POST /images/prune?filters=` (spec §5.10).
pub async fn prune(e: &Engine, req: &Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let filters = parse_filters(query_get(&q, "filters"))?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "dangling" | "until" | "label" | "label!") {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("invalid filter '{k}'")));
        }
    }
    let f = PruneFilter {
        all: bool_filter(&filters, "dangling")? == Some(false),
        until: until_filter(&filters)?,
        labels: filters
            .get("label")
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default(),
        not_labels: filters
            .get("label!")
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default(),
    };
    let images = e.images.clone();
    let r = crate::pool::run(move || images.prune(&f)).await?;
    Ok(json(
        StatusCode::OK,
        &PruneReport {
            images_deleted: Some(items(r.deleted)).filter(|d| !d.is_empty()),
            space_reclaimed: r.reclaimed,
        },
    ))
}

/// `GET /system/df` (spec §5.15): images with their shared sizes; no containers, volumes or build cache.
pub async fn df(e: &Engine, req: &Req, v: ApiVersion<'_>) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let types: Vec<&str> = q.iter().filter(|(k, _)| k == "type").map(|(_, v)| v.as_str()).collect();
    let want = |t: &str| types.is_empty() || types.contains(&t);
    let images = e.images.clone();
    let (rows, (shared, layers_size)) =
        crate::pool::run(move || Ok::<_, crate::image::ImageError>((images.list()?, images.layer_sharing()?))).await?;
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            let fam = |v: &[String]| v.iter().map(|t| Reference::familiar_of(t)).collect::<Vec<_>>();
            let s = shared.get(&r.id).copied().unwrap_or(0) as i64;
            summary(r, fam(&r.tags), fam(&r.digests), labels_of(r), s, 0, v)
        })
        .collect();
    let body = DiskUsage {
        build_cache: want("build-cache").then_some([]),
        containers: want("container").then_some([]),
        images: want("image").then_some(list),
        layers_size,
        volumes: want("volume").then_some([]),
    };
    Ok(json(StatusCode::OK, &body))
}

pub async fn delete(e: &Engine, req: &Req, name: &str) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let force = bool_value(query_get(&q, "force"));
    let (images, name) = (e.images.clone(), name.to_string());
    let list = crate::pool::run(move || images.delete(&name, force))
        .await
        .map_err(ApiError::from)?;
    Ok(json(StatusCode::OK, &items(list)))
}

/// `GET /images/search?term=&limit=&filters=` (spec §5.7).
pub async fn search(e: &Engine, req: &Req) -> Result<Resp, ApiError> {
    let q = query_pairs(req.uri().query());
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let term = query_get(&q, "term").unwrap_or("").to_string();
    if term.contains("://") {
        return Err(bad(format!(
            "invalid repository name: repository name ({term}) should not have a scheme"
        )));
    }
    let limit = match query_get(&q, "limit").filter(|l| !l.is_empty()) {
        None => 25,
        Some(l) => match l.parse::<u32>() {
            Ok(n @ 1..=100) => n,
            _ => return Err(bad("limit must be between 1 and 100".into())),
        },
    };
    let filters = parse_filters(query_get(&q, "filters"))?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "is-official" | "is-automated" | "stars") {
            return Err(bad(format!("invalid filter '{k}'")));
        }
    }
    if bool_filter(&filters, "is-automated")? == Some(true) {
        return Ok(json(StatusCode::OK, &[(); 0]));
    }
    let official = bool_filter(&filters, "is-official")?;
    let mut stars = 0u64;
    for v in filters.get("stars").into_iter().flatten() {
        let n: u64 = v.parse().map_err(|_| bad(format!("invalid filter 'stars={v}'")))?;
        stars = stars.max(n);
    }
    let creds = super::auth::decode(req.headers().get("x-registry-auth").and_then(|h| h.to_str().ok()));
    let images = e.images.clone();
    let hits = crate::pool::run(move || images.registries.search(&term, limit, creds)).await?;
    let out: Vec<SearchResult> = hits
        .into_iter()
        .filter(|h| official.is_none_or(|o| h.official == o) && h.stars >= stars)
        .map(|h| SearchResult {
            description: h.description,
            is_automated: false,
            is_official: h.official,
            name: h.name,
            star_count: h.stars,
        })
        .collect();
    Ok(json(StatusCode::OK, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_both_encodings() {
        let cli = parse_filters(Some(
            r#"{"dangling":{"false":true},"reference":{"127.0.0.1:5000/*":true}}"#,
        ))
        .unwrap();
        let py = parse_filters(Some(r#"{"dangling":["false"],"reference":["127.0.0.1:5000/*"]}"#)).unwrap();
        assert_eq!(cli, py);
        assert!(parse_filters(Some("")).unwrap().is_empty());
        assert!(parse_filters(Some("[1]")).is_err());
        assert!(parse_filters(Some(r#"{"a":1}"#)).is_err());
        let f = parse_filters(Some(r#"{"dangling":["maybe"]}"#)).unwrap();
        assert_eq!(
            bool_filter(&f, "dangling").err().unwrap().message,
            "invalid filter 'dangling=[maybe]'"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("127.0.0.1:5000/*", "127.0.0.1:5000/test"));
        assert!(!glob_match("127.0.0.1:5000/*", "127.0.0.1:5000/a/b"));
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("b?sybox:[l]atest", "busybox:latest"));
        assert!(glob_match("[^a]usybox", "busybox"));
        assert!(!glob_match("busybox", "busybox:latest"));
    }
}
