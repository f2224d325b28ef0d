//! What the Engine API answers besides images and streams, as moby's types name it (`types.Info`,
//! `types.Version`, `image.DeleteResponse`, …). Fields go out in the order they are declared here, the order
//! the API has sent them in; the docker CLI and docker-py read them by name.

use serde::Serialize;
use std::collections::BTreeMap;

/// An error: `{"message": "…"}`.
#[derive(Serialize)]
pub struct ErrorMessage<'a> {
    pub message: &'a str,
}

/// One entry of a delete's or a prune's list.
#[derive(Serialize)]
pub enum DeleteResponse {
    Untagged(String),
    Deleted(String),
}

impl From<crate::image::DeleteItem> for DeleteResponse {
    fn from(i: crate::image::DeleteItem) -> DeleteResponse {
        match i {
            crate::image::DeleteItem::Untagged(s) => DeleteResponse::Untagged(s),
            crate::image::DeleteItem::Deleted(s) => DeleteResponse::Deleted(s),
        }
    }
}

/// `POST /images/prune`: `ImagesDeleted` is null, not `[]`, when nothing went.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    pub images_deleted: Option<Vec<DeleteResponse>>,
    pub space_reclaimed: u64,
}

/// `POST /build/prune`: depot builds nothing.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildPruneReport {
    pub caches_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

/// `GET /system/df`: each part only when asked for (`type=`); depot has no containers, volumes or build cache.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage<T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_cache: Option<[(); 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<[(); 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<T>>,
    pub layers_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<[(); 0]>,
}

/// One hit of `GET /images/search`.
#[derive(Serialize)]
pub struct SearchResult {
    pub description: String,
    pub is_automated: bool,
    pub is_official: bool,
    pub name: String,
    pub star_count: u64,
}

/// `POST /auth`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthResponse {
    pub identity_token: String,
    pub status: &'static str,
}

/// One event of `GET /events`, as dockerd words an image's.
#[derive(Serialize)]
pub struct EventMessage<'a> {
    pub status: &'static str,
    pub id: &'a str,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "Action")]
    pub action: &'static str,
    #[serde(rename = "Actor")]
    pub actor: Actor<'a>,
    pub scope: &'static str,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Actor<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
}

/// `GET /version`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    pub api_version: &'static str,
    pub arch: &'static str,
    pub build_time: &'static str,
    pub components: [Component; 1],
    pub experimental: bool,
    pub git_commit: &'static str,
    pub go_version: &'static str,
    pub kernel_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: &'static str,
    pub os: &'static str,
    pub platform: Named,
    pub version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Named {
    pub name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Component {
    pub details: ComponentDetails,
    pub name: &'static str,
    pub version: &'static str,
}

/// moby sends every detail as a string.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentDetails {
    pub api_version: &'static str,
    pub arch: &'static str,
    pub build_time: &'static str,
    pub experimental: &'static str,
    pub git_commit: &'static str,
    pub go_version: &'static str,
    pub kernel_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: &'static str,
    pub os: &'static str,
}

/// `GET /info` for an image-only daemon: no containers, no runtimes, no swarm.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    pub architecture: String,
    #[serde(rename = "CDISpecDirs")]
    pub cdi_spec_dirs: [(); 0],
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    pub cgroup_driver: &'static str,
    pub cgroup_version: &'static str,
    pub containerd_commit: Commit,
    pub containers: u64,
    pub containers_paused: u64,
    pub containers_running: u64,
    pub containers_stopped: u64,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    pub debug: bool,
    pub default_runtime: &'static str,
    pub docker_root_dir: String,
    pub driver: &'static str,
    pub driver_status: Vec<[String; 2]>,
    pub experimental_build: bool,
    pub generic_resources: Option<()>,
    pub http_proxy: String,
    pub https_proxy: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    pub images: usize,
    pub index_server_address: &'static str,
    pub init_binary: &'static str,
    pub init_commit: Commit,
    pub isolation: &'static str,
    pub kernel_version: String,
    pub labels: Vec<String>,
    pub live_restore_enabled: bool,
    pub logging_driver: &'static str,
    pub mem_total: u64,
    pub memory_limit: bool,
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    pub n_events_listener: u64,
    pub n_fd: u64,
    pub n_goroutines: u64,
    pub name: String,
    pub no_proxy: String,
    #[serde(rename = "OSType")]
    pub os_type: &'static str,
    #[serde(rename = "OSVersion")]
    pub os_version: &'static str,
    pub oom_kill_disable: bool,
    pub operating_system: String,
    pub pids_limit: bool,
    pub plugins: Plugins,
    pub product_license: String,
    pub registry_config: RegistryConfig,
    pub runc_commit: Commit,
    pub runtimes: BTreeMap<String, ()>,
    pub security_options: [(); 0],
    pub server_version: &'static str,
    pub swap_limit: bool,
    pub swarm: Swarm,
    pub system_time: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Commit {
    pub expected: &'static str,
    #[serde(rename = "ID")]
    pub id: &'static str,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Plugins {
    pub authorization: Option<Vec<String>>,
    pub log: [(); 0],
    pub network: [(); 0],
    pub volume: [(); 0],
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryConfig {
    /// By registry host, as dockerd keys them.
    pub index_configs: BTreeMap<String, IndexInfo>,
    #[serde(rename = "InsecureRegistryCIDRs")]
    pub insecure_registry_cidrs: Vec<String>,
    pub mirrors: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexInfo {
    pub mirrors: Vec<String>,
    pub name: String,
    pub official: bool,
    pub secure: bool,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Swarm {
    pub control_available: bool,
    pub error: &'static str,
    pub local_node_state: &'static str,
    pub node_addr: &'static str,
    #[serde(rename = "NodeID")]
    pub node_id: &'static str,
    pub remote_managers: Option<Vec<String>>,
}
