//! Daemon configuration: board defaults, then flags. Every path derives from one data root.

use crate::platform::Platform;
use crate::registry::RegistryOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Defaults that depend on the CPU family (the board profiles of `board/` refine these).
#[derive(Debug, Clone)]
pub struct Board {
    pub name: &'static str,
    pub concurrent_downloads: usize,
}

impl Board {
    pub fn detect() -> Board {
        match std::env::consts::ARCH {
            "x86_64" => Board {
                name: "x86_64",
                concurrent_downloads: 3,
            },
            "aarch64" => Board {
                name: "arm_64",
                concurrent_downloads: 2,
            },
            "arm" => Board {
                name: "arm-x41",
                concurrent_downloads: 2,
            },
            _ => Board {
                name: "generic",
                concurrent_downloads: 2,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    /// Unix socket of both APIs; `<data root>/depot.sock` unless set.
    pub socket: Option<PathBuf>,
    pub socket_group: Option<String>,
    /// TCP listener; loopback by default, `None` to disable.
    pub tcp: Option<SocketAddr>,
    pub platform: Platform,
    pub concurrent_downloads: usize,
    pub registry: RegistryOptions,
    /// Ingests that no unfinished download owns are dropped once this old.
    pub stale_ingest: Duration,
}

pub const DEFAULT_DATA_ROOT: &str = "depot-data";
pub const DEFAULT_TCP: &str = "127.0.0.1:2375";

impl Default for Config {
    fn default() -> Self {
        let board = Board::detect();
        Config {
            data_root: PathBuf::from(DEFAULT_DATA_ROOT),
            socket: None,
            socket_group: None,
            tcp: Some(DEFAULT_TCP.parse().expect("static address")),
            platform: Platform::host(),
            concurrent_downloads: board.concurrent_downloads,
            registry: RegistryOptions::default(),
            stale_ingest: Duration::from_secs(24 * 3600),
        }
    }
}

impl Config {
    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| self.data_root.join("depot.sock"))
    }

    /// Where `certs.d` lives unless set: next to the database, as dockerd keeps it under its config dir.
    pub fn certs_dir(&self) -> PathBuf {
        self.registry
            .certs_dir
            .clone()
            .unwrap_or_else(|| self.data_root.join("certs.d"))
    }
}
