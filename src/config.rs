//! Daemon configuration: a board profile, then a config file, then flags — all three set the same keys through
//! one function ([`Config::set`]), so a key means the same wherever it is given. Every path derives from one data
//! root unless set explicitly.

use crate::board::{parse_kv, Board, BoardError, BOARD_KEYS};
use crate::platform::Platform;
use crate::registry::RegistryOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub board: String,
    pub data_root: PathBuf,
    /// Unix socket of both APIs; `<data root>/depot.sock` unless set.
    pub socket: Option<PathBuf>,
    pub socket_group: Option<String>,
    /// TCP listener; off (`None`) unless set. Every route on it needs a session or an API token.
    pub tcp: Option<SocketAddr>,
    /// Serve the Engine API on TCP too (to API-token holders only).
    pub engine_tcp: bool,
    /// The LAN registry's listener (the OCI distribution API, read-only); off (`None`) unless set.
    pub registry_listen: Option<SocketAddr>,
    /// Serve the LAN registry to clients without credentials (else an API token of depot is needed).
    pub registry_anonymous: bool,
    /// Pull what a LAN registry's client asks for and depot does not hold (the default).
    pub registry_pull_through: bool,
    /// Serve the LAN registry over plain HTTP (else over TLS).
    pub registry_plain_http: bool,
    /// The LAN registry's certificate chain and key (PEM; one file may hold both, as QTS's does); unset or
    /// missing: a certificate depot issues itself under `<data root>/registry-tls/`.
    pub registry_tls_cert: Option<PathBuf>,
    pub registry_tls_key: Option<PathBuf>,
    /// Names and addresses the issued certificate holds besides the machine's own (its host name, its
    /// interfaces' addresses).
    pub registry_tls_names: Vec<String>,
    /// The admin's password (else one is generated once into `<data root>/admin-password`). Never logged.
    pub admin_password: Option<String>,
    /// Bytes per second all downloads share; 0 is no limit. The station API can change it (kept in the
    /// database, which then wins over this).
    pub bandwidth_limit: u64,
    /// Local time of day during which downloads run.
    pub download_window: Option<crate::transfer::throttle::Window>,
    /// The local time's offset from UTC in seconds, read once at start.
    pub utc_offset: i32,
    /// Directories station `image_export` tasks may write into (default `<data root>/exports`).
    pub export_dirs: Vec<PathBuf>,
    /// LXC image servers, in the order they are asked.
    pub lxc_sources: Vec<crate::lxc::SourceConfig>,
    /// Where containers may be unpacked over TCP (default `<data root>/containers`).
    pub lxc_dirs: Vec<PathBuf>,
    /// The NAS's container engine (Container Station's dockerd), for hand-offs.
    pub engine_socket: Option<PathBuf>,
    /// The signature policy (containers-policy.json(5), see [`crate::policy`]); none: every image may enter.
    pub policy: Option<PathBuf>,
    /// Hand every pulled image to `engine_socket` as soon as the pull completes.
    pub handoff_after_pull: bool,
    /// Names TCP clients may use in `Host` besides loopback addresses and `localhost` (DNS-rebinding defence).
    pub tcp_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) a browser's request to the TCP listener may come from besides the
    /// request's own (CSRF defence: every other origin is refused).
    pub origins: Vec<String>,
    pub platform: Platform,
    pub concurrent_downloads: usize,
    pub memory_budget_mb: u64,
    pub catalog_url: Option<String>,
    pub log_file: Option<PathBuf>,
    pub log_level: String,
    pub registry: RegistryOptions,
    /// How long the partial bytes of a failed download are kept for a new pull of the same image to resume from.
    pub stale_ingest: Duration,
}

/// Keys a config file may hold beyond the board keys (flags use the same names with `-` for `_`).
pub const CONFIG_KEYS: &[&str] = &[
    "board",
    "insecure_registries",
    "certs_dir",
    "connect_timeout",
    "read_timeout",
    "retries",
    "retry_delay_ms",
    "log_level",
    "tcp_hosts",
    "origins",
    "search_index",
    "registry_mirrors",
    "mirrors",
    "engine_socket",
    "handoff_after_pull",
    "engine_tcp",
    "registry_anonymous",
    "registry_plain_http",
    "registry_pull_through",
    "registry_tls_names",
    "admin_password",
    "bandwidth_limit",
    "download_window",
    "export_dirs",
    "lxc_sources",
    "lxc_dirs",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error("{key}: {msg} (got {value:?})")]
    Value { key: String, value: String, msg: String },
    #[error("unknown setting {0:?}")]
    Unknown(String),
}

fn secs(key: &str, v: &str) -> Result<Duration, ConfigError> {
    v.parse::<f64>()
        .ok()
        .filter(|x| *x > 0.0 && x.is_finite())
        .map(Duration::from_secs_f64)
        .ok_or_else(|| ConfigError::Value {
            key: key.into(),
            value: v.into(),
            msg: "expected a positive number of seconds".into(),
        })
}

fn count<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| ConfigError::Value {
        key: key.into(),
        value: v.into(),
        msg: "expected a whole number".into(),
    })
}

/// Bytes per second: a number with an optional decimal (k, M, G) or binary (Ki, Mi, Gi) multiplier.
pub fn rate(v: &str) -> Option<u64> {
    let v = v.trim().trim_end_matches("/s").trim_end_matches('B');
    if v.is_empty() || v == "none" {
        return Some(0);
    }
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let n: f64 = num.parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some((n * mult) as u64)
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}

/// A listener's `ADDRESS:PORT`, or `none` (also empty): off.
fn listen(k: &str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match v {
        "" | "none" => Ok(None),
        a => a
            .parse()
            .map(Some)
            .map_err(|_| bad(k, v, "expected ADDRESS:PORT or none")),
    }
}

fn opt(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// A wrong value of `key`, said with what was expected.
fn bad(key: &str, v: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: key.into(),
        value: v.into(),
        msg: msg.into(),
    }
}

/// The comma-separated items of a list value, trimmed, empty ones left out.
fn items(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Absolute directories, comma-separated.
fn dirs(key: &str, v: &str) -> Result<Vec<PathBuf>, ConfigError> {
    items(v)
        .map(|d| match d.starts_with('/') {
            true => Ok(PathBuf::from(d)),
            false => Err(bad(key, v, "expected absolute directories, comma-separated")),
        })
        .collect()
}

fn flag(key: &str, v: &str) -> Result<bool, ConfigError> {
    boolean(v).ok_or_else(|| bad(key, v, "expected true or false"))
}

type Setter = fn(&mut Config, &str, &str) -> Result<(), ConfigError>;

/// Every key a board profile, the config file or a flag may set, and how its value is read and checked.
const SETTERS: &[(&str, Setter)] = &[
    ("name", |c, _, v| {
        c.board = v.to_string();
        Ok(())
    }),
    ("cpu", |_, _, _| Ok(())),
    ("board", |_, _, _| Ok(())),
    ("data_root", |c, _, v| {
        c.data_root = PathBuf::from(v);
        Ok(())
    }),
    ("socket", |c, _, v| {
        c.socket = opt(v).map(PathBuf::from);
        Ok(())
    }),
    ("socket_group", |c, _, v| {
        c.socket_group = opt(v);
        Ok(())
    }),
    ("tcp", |c, k, v| {
        c.tcp = listen(k, v)?;
        Ok(())
    }),
    ("origins", |c, k, v| {
        for o in items(v) {
            match o.split_once("://") {
                Some(("http" | "https", a)) if !a.is_empty() && !a.contains('/') => {
                    c.origins.push(o.to_ascii_lowercase())
                }
                _ => return Err(bad(k, v, "expected origins as scheme://host[:port], comma-separated")),
            }
        }
        Ok(())
    }),
    ("tcp_hosts", |c, _, v| {
        c.tcp_hosts.extend(items(v).map(str::to_lowercase));
        Ok(())
    }),
    ("platform", |c, k, v| {
        c.platform = match v {
            "" | "host" => Platform::host(),
            p => p
                .parse()
                .map_err(|e: crate::platform::PlatformError| bad(k, v, e.to_string()))?,
        };
        Ok(())
    }),
    ("concurrent_downloads", |c, k, v| {
        c.concurrent_downloads = count::<usize>(k, v)?;
        match c.concurrent_downloads {
            0 => Err(bad(k, v, "must be at least 1")),
            _ => Ok(()),
        }
    }),
    ("memory_budget_mb", |c, k, v| {
        c.memory_budget_mb = count(k, v)?;
        match c.memory_budget_mb < 8 {
            true => Err(bad(k, v, "must be at least 8")),
            false => Ok(()),
        }
    }),
    ("catalog_url", |c, _, v| {
        c.catalog_url = opt(v);
        Ok(())
    }),
    ("log_file", |c, _, v| {
        c.log_file = opt(v).map(PathBuf::from);
        Ok(())
    }),
    ("log_level", |c, k, v| {
        v.parse::<log::LevelFilter>()
            .map_err(|_| bad(k, v, "expected error, warn, info, debug or trace"))?;
        c.log_level = v.to_string();
        Ok(())
    }),
    ("insecure_registries", |c, _, v| {
        c.registry.insecure.extend(items(v).map(String::from));
        Ok(())
    }),
    // dockerd's `registry-mirrors`: mirrors of Docker Hub, as URLs
    ("registry_mirrors", |c, k, v| {
        for url in items(v) {
            c.add_mirror("docker.io", url).map_err(|m| bad(k, v, m))?;
        }
        Ok(())
    }),
    // per registry: `HOST=URL[,HOST=URL…]`
    ("mirrors", |c, k, v| {
        for pair in items(v) {
            let (host, url) = pair
                .split_once('=')
                .ok_or_else(|| bad(k, v, "expected REGISTRY=MIRROR-URL"))?;
            c.add_mirror(host.trim(), url.trim()).map_err(|m| bad(k, v, m))?;
        }
        Ok(())
    }),
    ("policy", |c, _, v| {
        c.policy = opt(v).map(PathBuf::from);
        Ok(())
    }),
    ("engine_socket", |c, _, v| {
        c.engine_socket = opt(v).map(|p| PathBuf::from(p.trim_start_matches("unix://")));
        Ok(())
    }),
    ("handoff_after_pull", |c, k, v| {
        c.handoff_after_pull = flag(k, v)?;
        Ok(())
    }),
    ("registry", |c, k, v| {
        c.registry_listen = listen(k, v)?;
        Ok(())
    }),
    ("registry_anonymous", |c, k, v| {
        c.registry_anonymous = flag(k, v)?;
        Ok(())
    }),
    ("registry_pull_through", |c, k, v| {
        c.registry_pull_through = flag(k, v)?;
        Ok(())
    }),
    ("registry_plain_http", |c, k, v| {
        c.registry_plain_http = flag(k, v)?;
        Ok(())
    }),
    ("registry_tls_cert", |c, _, v| {
        c.registry_tls_cert = opt(v).map(PathBuf::from);
        Ok(())
    }),
    ("registry_tls_key", |c, _, v| {
        c.registry_tls_key = opt(v).map(PathBuf::from);
        Ok(())
    }),
    ("registry_tls_names", |c, _, v| {
        c.registry_tls_names.extend(items(v).map(str::to_lowercase));
        Ok(())
    }),
    ("engine_tcp", |c, k, v| {
        c.engine_tcp = flag(k, v)?;
        Ok(())
    }),
    // `NAME=lxc:URL` or `NAME=simplestreams:URL`, comma-separated; a later one of a name replaces it
    ("lxc_sources", |c, k, v| {
        for one in items(v) {
            let src: crate::lxc::SourceConfig = one.parse().map_err(|m: String| bad(k, v, m))?;
            c.lxc_sources.retain(|s| s.name != src.name);
            c.lxc_sources.push(src);
        }
        Ok(())
    }),
    ("lxc_dirs", |c, k, v| {
        c.lxc_dirs.extend(dirs(k, v)?);
        Ok(())
    }),
    ("export_dirs", |c, k, v| {
        c.export_dirs.extend(dirs(k, v)?);
        Ok(())
    }),
    ("bandwidth_limit", |c, k, v| {
        c.bandwidth_limit =
            rate(v).ok_or_else(|| bad(k, v, "expected bytes per second, e.g. 2M or 500k; 0 for none"))?;
        Ok(())
    }),
    ("download_window", |c, k, v| {
        c.download_window = match v.trim() {
            "" | "none" => None,
            w => Some(
                w.parse()
                    .map_err(|e: crate::transfer::throttle::WindowError| bad(k, v, e.to_string()))?,
            ),
        };
        Ok(())
    }),
    // the value is never repeated in an error: it is a password
    ("admin_password", |c, k, v| {
        if !v.is_empty() && v.chars().count() < 8 {
            return Err(bad(k, "(hidden)", "at least 8 characters"));
        }
        c.admin_password = opt(v);
        Ok(())
    }),
    ("search_index", |c, k, v| {
        if !(v.starts_with("https://") || v.starts_with("http://")) {
            return Err(bad(k, v, "expected an http(s) URL"));
        }
        c.registry.search_index = v.trim_end_matches('/').to_string();
        Ok(())
    }),
    ("certs_dir", |c, _, v| {
        c.registry.net.certs_dir = opt(v).map(PathBuf::from);
        Ok(())
    }),
    ("connect_timeout", |c, k, v| {
        c.registry.net.connect_timeout = secs(k, v)?;
        Ok(())
    }),
    ("read_timeout", |c, k, v| {
        c.registry.net.read_timeout = secs(k, v)?;
        Ok(())
    }),
    ("retries", |c, k, v| {
        c.registry.net.retry.attempts = count(k, v)?;
        match c.registry.net.retry.attempts {
            0 => Err(bad(k, v, "attempts in all: at least 1")),
            _ => Ok(()),
        }
    }),
    ("retry_delay_ms", |c, k, v| {
        c.registry.net.retry.base = Duration::from_millis(count(k, v)?);
        Ok(())
    }),
];

impl Config {
    /// Built-in defaults (those of the generic profile, before it is applied).
    fn empty() -> Config {
        Config {
            board: "builtin".into(),
            data_root: PathBuf::from("depot-data"),
            socket: None,
            socket_group: None,
            tcp: None,
            engine_tcp: false,
            registry_listen: None,
            registry_anonymous: false,
            registry_plain_http: false,
            registry_pull_through: true,
            registry_tls_cert: None,
            registry_tls_key: None,
            registry_tls_names: Vec::new(),
            admin_password: None,
            bandwidth_limit: 0,
            download_window: None,
            // Only safe while a single thread runs (the `time` crate refuses otherwise): then 0, UTC.
            utc_offset: time::UtcOffset::current_local_offset().map_or(0, |o| o.whole_seconds()),
            export_dirs: Vec::new(),
            lxc_sources: Vec::new(),
            lxc_dirs: Vec::new(),
            tcp_hosts: Vec::new(),
            origins: Vec::new(),
            engine_socket: None,
            policy: None,
            handoff_after_pull: false,
            platform: Platform::host(),
            concurrent_downloads: 3,
            memory_budget_mb: 256,
            catalog_url: None,
            log_file: None,
            log_level: "info".into(),
            registry: RegistryOptions::default(),
            stale_ingest: Duration::from_secs(24 * 3600),
        }
    }

    /// Set one key (from a profile, the config file or a flag): its entry of [`SETTERS`].
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), ConfigError> {
        match SETTERS.iter().find(|(k, _)| *k == key) {
            Some((_, set)) => set(self, key, v),
            None => Err(ConfigError::Unknown(key.to_string())),
        }
    }

    /// Resolve the effective configuration. `board`: a profile name or file (else the config file's `board`, else
    /// auto-detection); `file`: the config file's text and name; `flags`: `(key, value)` pairs, applied last.
    pub fn resolve(
        board: Option<&str>,
        file: Option<(&str, &str)>,
        flags: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let file_kv = match file {
            Some((text, name)) => {
                let known: Vec<&str> = BOARD_KEYS
                    .iter()
                    .chain(CONFIG_KEYS)
                    .copied()
                    .filter(|k| *k != "name" && *k != "cpu")
                    .collect();
                parse_kv(text, name, &known)?
            }
            None => Default::default(),
        };
        let board = match board.or(file_kv.get("board").map(String::as_str)) {
            Some(b) => Board::load(b)?,
            None => Board::detect(std::path::Path::new("/"), &crate::board::machine()),
        };
        let mut c = Config::empty();
        for (k, v) in &board.settings {
            c.set(k, v)?;
        }
        for (k, v) in &file_kv {
            c.set(k, v)?;
        }
        for (k, v) in flags {
            c.set(k, v)?;
        }
        Ok(c)
    }

    /// Add `url` as a mirror of registry `domain`. A plain-HTTP mirror may be reached without TLS.
    fn add_mirror(&mut self, domain: &str, url: &str) -> Result<(), String> {
        let (plain, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => return Err(format!("mirror {url:?}: expected an http(s) URL")),
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(format!("mirror {url:?}: a mirror is a registry's root URL"));
        }
        let domain = match domain {
            "index.docker.io" | "registry-1.docker.io" => "docker.io",
            d => d,
        };
        if plain && !self.registry.insecure.iter().any(|i| i == host) {
            self.registry.insecure.push(host.to_string());
        }
        self.registry.mirrors.push((domain.to_string(), host.to_string()));
        Ok(())
    }

    /// Resolve every relative path against `cwd`, once at start, so that logs and later work see absolute paths
    /// (a relative socket named in a log line is useless to whoever reads it from elsewhere).
    pub fn make_absolute(&mut self, cwd: &std::path::Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        abs(&mut self.data_root);
        for p in [
            &mut self.socket,
            &mut self.log_file,
            &mut self.registry.net.certs_dir,
            &mut self.engine_socket,
            &mut self.policy,
            &mut self.registry_tls_cert,
            &mut self.registry_tls_key,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
    }

    /// The data root and the names of what lives in it.
    pub fn root(&self) -> crate::store::DataRoot {
        crate::store::DataRoot::new(&self.data_root)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| self.root().socket())
    }

    /// Where `certs.d` lives unless set: in the data root, as dockerd keeps it under its config dir.
    pub fn certs_dir(&self) -> PathBuf {
        self.registry
            .net
            .certs_dir
            .clone()
            .unwrap_or_else(|| self.root().certs())
    }

    /// Where station exports may go: the configured directories, or `<data root>/exports`.
    pub fn export_dirs(&self) -> Vec<PathBuf> {
        if self.export_dirs.is_empty() {
            vec![self.root().exports()]
        } else {
            self.export_dirs.clone()
        }
    }

    /// Where containers may be unpacked over TCP: the configured directories, or `<data root>/containers`.
    pub fn lxc_dirs(&self) -> Vec<PathBuf> {
        if self.lxc_dirs.is_empty() {
            vec![self.root().containers()]
        } else {
            self.lxc_dirs.clone()
        }
    }

    /// The largest zstd window a download may use: its share of the memory budget, bounded to 1 MiB–128 MiB.
    pub fn zstd_window_log_max(&self) -> u32 {
        let per = (self.memory_budget_mb * 1024 * 1024) / self.concurrent_downloads.max(1) as u64;
        (63 - per.max(1).leading_zeros()).clamp(20, 27)
    }

    /// The effective settings as `key = value` lines (the config file format), for `depot config`.
    pub fn render(&self) -> String {
        let o = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let r = &self.registry;
        [
            ("board", self.board.clone()),
            ("data_root", self.data_root.display().to_string()),
            ("socket", self.socket_path().display().to_string()),
            ("socket_group", self.socket_group.clone().unwrap_or_default()),
            ("tcp", self.tcp.map(|a| a.to_string()).unwrap_or_else(|| "none".into())),
            ("tcp_hosts", self.tcp_hosts.join(",")),
            ("origins", self.origins.join(",")),
            ("platform", self.platform.to_string()),
            ("concurrent_downloads", self.concurrent_downloads.to_string()),
            ("memory_budget_mb", self.memory_budget_mb.to_string()),
            ("catalog_url", self.catalog_url.clone().unwrap_or_default()),
            ("log_file", o(&self.log_file)),
            ("log_level", self.log_level.clone()),
            ("insecure_registries", r.insecure.join(",")),
            ("certs_dir", self.certs_dir().display().to_string()),
            ("search_index", r.search_index.clone()),
            ("engine_socket", o(&self.engine_socket)),
            ("policy", o(&self.policy)),
            ("handoff_after_pull", self.handoff_after_pull.to_string()),
            ("engine_tcp", self.engine_tcp.to_string()),
            (
                "registry",
                self.registry_listen
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "none".into()),
            ),
            ("registry_anonymous", self.registry_anonymous.to_string()),
            ("registry_plain_http", self.registry_plain_http.to_string()),
            ("registry_pull_through", self.registry_pull_through.to_string()),
            ("registry_tls_cert", o(&self.registry_tls_cert)),
            ("registry_tls_key", o(&self.registry_tls_key)),
            ("registry_tls_names", self.registry_tls_names.join(",")),
            ("bandwidth_limit", self.bandwidth_limit.to_string()),
            (
                "export_dirs",
                self.export_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "lxc_sources",
                self.lxc_sources
                    .iter()
                    .map(|s| {
                        let kind = match s.kind {
                            crate::lxc::SourceKind::Simplestreams => "simplestreams",
                            _ => "lxc",
                        };
                        format!("{}={kind}:{}", s.name, s.url)
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "lxc_dirs",
                self.lxc_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "download_window",
                self.download_window.map(|w| w.to_string()).unwrap_or_default(),
            ),
            (
                "admin_password",
                if self.admin_password.is_some() { "(set)" } else { "" }.to_string(),
            ),
            (
                "mirrors",
                r.mirrors
                    .iter()
                    .map(|(d, m)| format!("{d}={m}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("connect_timeout", r.net.connect_timeout.as_secs_f64().to_string()),
            ("read_timeout", r.net.read_timeout.as_secs_f64().to_string()),
            ("retries", r.net.retry.attempts.to_string()),
            ("retry_delay_ms", r.net.retry.base.as_millis().to_string()),
        ]
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect()
    }
}

impl Default for Config {
    /// The generic profile: what `cargo run --release -- serve` uses on a developer machine.
    fn default() -> Self {
        Config::resolve(Some("generic"), None, &[]).expect("the generic profile is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn precedence_profile_file_flags() {
        let c = Config::resolve(Some("arm_64"), None, &[]).unwrap();
        assert_eq!((c.board.as_str(), c.concurrent_downloads), ("arm_64", 2));
        assert_eq!(c.platform.to_string(), "linux/arm64");
        assert_eq!(c.socket_group.as_deref(), Some("administrators"));
        assert_eq!(c.socket_path(), PathBuf::from("/var/run/depot.sock"));
        let file = "concurrent_downloads = 5\ninsecure_registries = a:5000, b\n";
        let c = Config::resolve(Some("arm_64"), Some((file, "depot.conf")), &[]).unwrap();
        assert_eq!(c.concurrent_downloads, 5);
        assert_eq!(c.registry.insecure, vec!["a:5000", "b"]);
        let c = Config::resolve(
            Some("arm_64"),
            Some((file, "depot.conf")),
            &flags(&[("concurrent_downloads", "1")]),
        )
        .unwrap();
        assert_eq!(c.concurrent_downloads, 1);
        // the config file may choose the board
        let c = Config::resolve(None, Some(("board = arm-x41\n", "depot.conf")), &[]).unwrap();
        assert_eq!(c.board, "arm-x41");
        assert_eq!(c.platform.to_string(), "linux/arm/v7");
    }

    #[test]
    fn generic_defaults() {
        let c = Config::default();
        assert_eq!(c.board, "generic");
        assert_eq!(c.data_root, PathBuf::from("depot-data"));
        assert_eq!(c.socket_path(), PathBuf::from("depot-data/depot.sock"));
        assert_eq!(c.tcp, None, "TCP has no authentication yet: off unless asked for");
        assert_eq!(c.platform, Platform::host());
        assert!(c.render().contains("board = generic\n"));
    }

    #[test]
    fn relative_paths_become_absolute_once() {
        let mut c = Config::default();
        c.set("log_file", "logs/depot.log").unwrap();
        c.set("certs_dir", "/etc/depot/certs.d").unwrap();
        c.make_absolute(std::path::Path::new("/home/u/src"));
        assert_eq!(c.data_root, PathBuf::from("/home/u/src/depot-data"));
        assert_eq!(c.socket_path(), PathBuf::from("/home/u/src/depot-data/depot.sock"));
        assert_eq!(c.log_file, Some(PathBuf::from("/home/u/src/logs/depot.log")));
        assert_eq!(c.registry.net.certs_dir, Some(PathBuf::from("/etc/depot/certs.d")));
        c.set("socket", "run/d.sock").unwrap();
        c.make_absolute(std::path::Path::new("/x"));
        assert_eq!(c.socket_path(), PathBuf::from("/x/run/d.sock"));
    }

    #[test]
    fn bad_values_are_named() {
        for (k, v) in [
            ("tcp", "localhost"),
            ("concurrent_downloads", "0"),
            ("platform", "linux"),
            ("read_timeout", "-1"),
            ("log_level", "loud"),
        ] {
            let e = Config::resolve(Some("generic"), None, &flags(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(k), "{e}");
        }
        assert!(matches!(
            Config::resolve(Some("generic"), None, &flags(&[("colour", "red")])),
            Err(ConfigError::Unknown(_))
        ));
        assert!(
            Config::resolve(Some("generic"), Some(("name = x\n", "f")), &[]).is_err(),
            "a config file cannot rename the board"
        );
    }

    #[test]
    fn zstd_window_follows_the_memory_budget() {
        let mut c = Config {
            memory_budget_mb: 48,
            concurrent_downloads: 2,
            ..Config::default()
        };
        assert_eq!(c.zstd_window_log_max(), 24);
        c.memory_budget_mb = 4096;
        assert_eq!(c.zstd_window_log_max(), 27);
        c.memory_budget_mb = 8;
        c.concurrent_downloads = 16;
        assert_eq!(c.zstd_window_log_max(), 20);
    }
}
