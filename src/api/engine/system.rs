//! `GET /info` (spec §1.3), `GET /system/df` (§5.15), `POST /build/prune` (§5.14): what the docker CLI asks of a
//! daemon besides images, answered for an image-only daemon.

use super::{dto, go_arch, kernel_version, ApiError, Engine, API_VERSION};
use crate::http::{json, Resp};
use hyper::StatusCode;
use std::collections::BTreeMap;

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// The registries as dockerd shows them: Docker Hub and every mirrored or insecure registry, with mirrors as
/// URLs (http for an insecure one), and the insecure CIDRs beside loopback's.
fn registry_config(f: &crate::image::Facts) -> dto::RegistryConfig {
    let mut insecure_cidrs = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
    let mirrors_of = |d: &str| -> Vec<String> {
        f.mirrors
            .iter()
            .filter(|(r, _)| r == d)
            .map(|(_, m)| {
                let scheme = if f.insecure_registries.contains(m) {
                    "http"
                } else {
                    "https"
                };
                format!("{scheme}://{m}/")
            })
            .collect()
    };
    let index = |name: &str, official: bool| dto::IndexInfo {
        mirrors: mirrors_of(name),
        name: name.to_string(),
        official,
        secure: official || !f.insecure_registries.iter().any(|r| r == name),
    };
    let mut index_configs = BTreeMap::from([("docker.io".to_string(), index("docker.io", true))]);
    for (d, _) in &f.mirrors {
        if d != "docker.io" && !index_configs.contains_key(d) {
            index_configs.insert(d.clone(), index(d, false));
        }
    }
    for r in &f.insecure_registries {
        if r.contains('/') {
            insecure_cidrs.push(r.clone());
        } else {
            index_configs.insert(
                r.clone(),
                dto::IndexInfo {
                    mirrors: Vec::new(),
                    ..index(r, false)
                },
            );
        }
    }
    dto::RegistryConfig {
        index_configs,
        insecure_registry_cidrs: insecure_cidrs,
        mirrors: mirrors_of("docker.io"),
    }
}

pub async fn info(e: &Engine) -> Result<Resp, ApiError> {
    let images = e.images.clone();
    let f = crate::pool::run(move || images.facts()).await?;
    let uname = nix::sys::utsname::uname().ok();
    let machine = uname
        .as_ref()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = uname
        .as_ref()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let proxy = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_lowercase()))
            .unwrap_or_default()
    };
    let body = dto::Info {
        architecture: machine,
        cgroup_driver: "none",
        cgroup_version: "2",
        docker_root_dir: f.data_root.display().to_string(),
        driver: "depot",
        driver_status: vec![["Data root".into(), f.data_root.display().to_string()]],
        http_proxy: proxy("HTTP_PROXY"),
        https_proxy: proxy("HTTPS_PROXY"),
        id: f.id.clone(),
        images: f.images,
        index_server_address: "https://index.docker.io/v1/",
        kernel_version: kernel_version(),
        labels: vec![format!("depot.platform={}", f.platform)],
        mem_total: mem_total(),
        ncpu: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        name,
        no_proxy: proxy("NO_PROXY"),
        os_type: "linux",
        operating_system: os_name(),
        product_license: format!("depot (API {API_VERSION}, {})", go_arch()),
        registry_config: registry_config(&f),
        server_version: env!("CARGO_PKG_VERSION"),
        swarm: dto::Swarm {
            local_node_state: "inactive",
            ..Default::default()
        },
        system_time: now,
        // no containers, runtimes, plugins or limits: an image-only daemon
        ..Default::default()
    };
    Ok(json(StatusCode::OK, &body))
}

/// `POST /build/prune`: depot builds nothing, so there is never anything to reclaim; the numeric parameters are
/// still checked as dockerd checks them.
pub fn build_prune(q: &[(String, String)]) -> Result<Resp, ApiError> {
    for k in ["keep-storage", "reserved-space", "max-used-space", "min-free-space"] {
        if let Some(v) = crate::http::query_get(q, k).filter(|v| !v.is_empty()) {
            if v.parse::<i64>().is_err() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{k} is in bytes and expects an integer, got {v}"),
                ));
            }
        }
    }
    Ok(json(
        StatusCode::OK,
        &dto::BuildPruneReport {
            caches_deleted: None,
            space_reclaimed: 0,
        },
    ))
}
