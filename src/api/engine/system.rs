//! `GET /info` (spec §1.3), `GET /system/df` (§5.15), `POST /build/prune` (§5.14): what the docker CLI asks of a
//! daemon besides images, answered for an image-only daemon.

use super::{go_arch, kernel_version, ApiError, Engine, API_VERSION};
use crate::http::{json, Resp};
use hyper::StatusCode;

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
    let mut index_configs = serde_json::Map::new();
    index_configs.insert(
        "docker.io".into(),
        serde_json::json!({"Name": "docker.io", "Mirrors": mirrors_of("docker.io"), "Secure": true, "Official": true}),
    );
    for (d, _) in &f.mirrors {
        if d != "docker.io" && !index_configs.contains_key(d) {
            index_configs.insert(
                d.clone(),
                serde_json::json!({"Name": d, "Mirrors": mirrors_of(d), "Secure": !f.insecure_registries.contains(d), "Official": false}),
            );
        }
    }
    for r in &f.insecure_registries {
        if r.contains('/') {
            insecure_cidrs.push(r.clone());
        } else {
            index_configs.insert(
                r.clone(),
                serde_json::json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
            );
        }
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let proxy = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_lowercase()))
            .unwrap_or_default()
    };
    // Two halves: one `json!` of every field is deeper than the macro's recursion limit.
    let mut body = serde_json::json!({
            "ID": f.id, "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
            "Images": f.images, "Driver": "depot", "DriverStatus": [["Data root", f.data_root.display().to_string()]],
            "Plugins": {"Volume": [], "Network": [], "Authorization": null, "Log": []},
            "MemoryLimit": false, "SwapLimit": false, "CpuCfsPeriod": false, "CpuCfsQuota": false,
            "CPUShares": false, "CPUSet": false, "PidsLimit": false, "IPv4Forwarding": false, "Debug": false,
            "NFd": 0, "OomKillDisable": false, "NGoroutines": 0, "SystemTime": now, "LoggingDriver": "",
            "CgroupDriver": "none", "CgroupVersion": "2", "NEventsListener": 0, "KernelVersion": kernel_version(),
            "OperatingSystem": os_name(), "OSVersion": "", "OSType": "linux", "Architecture": machine,
    });
    let rest = serde_json::json!({
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"InsecureRegistryCIDRs": insecure_cidrs, "IndexConfigs": index_configs,
                               "Mirrors": mirrors_of("docker.io")},
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem_total(), "GenericResources": null, "DockerRootDir": f.data_root.display().to_string(),
            "HttpProxy": proxy("HTTP_PROXY"), "HttpsProxy": proxy("HTTPS_PROXY"), "NoProxy": proxy("NO_PROXY"),
            "Name": name, "Labels": [format!("depot.platform={}", f.platform)], "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"), "Runtimes": {}, "DefaultRuntime": "",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false,
                      "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": false, "Isolation": "", "InitBinary": "", "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": [], "CDISpecDirs": [], "Warnings": null,
            "ProductLicense": format!("depot (API {API_VERSION}, {})", go_arch()),
    });
    if let (Some(b), serde_json::Value::Object(r)) = (body.as_object_mut(), rest) {
        b.extend(r);
    }
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
        &serde_json::json!({"CachesDeleted": null, "SpaceReclaimed": 0}),
    ))
}
