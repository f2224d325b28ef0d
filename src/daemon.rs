//! `depot serve`: open the data root, recover, and serve the APIs.
//!
//! Crash-only: every persistent write is crash-safe, so any stop is safe, SIGKILL included; the next start
//! recovers — resumes unfinished downloads from their bytes on disk, drops files no download owns, empties
//! `tmp/`, replaces a socket nobody answers on. SIGTERM and SIGINT are tidier: the socket file is removed and the
//! WAL checkpointed into `depot.db` before the process ends.

use crate::api::engine::Engine;
use crate::config::Config;
use crate::http::{self, Handler};
use crate::image::ImageService;
use crate::registry::Registry;
use crate::store::{BlobStore, Db, RootLock, Sealer};
use crate::transfer::{Claims, Slots, Transfers};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] crate::store::DbError),
    #[error(
        "{path} cannot be used ({source}); `depot fsck --repair --data-root {root}` rebuilds it from the data root"
    )]
    DbDamaged {
        path: String,
        root: String,
        source: crate::store::DbError,
    },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Secret(#[from] crate::store::SecretError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Jobs(#[from] crate::jobs::JobError),
    /// A policy that cannot be read stops the start: running without it would let in what it refuses.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A setting that cannot be served as asked.
    #[error("{0}")]
    Config(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

/// Everything a running daemon holds. Built by [`open`]; served by [`serve`].
pub struct Daemon {
    pub images: Arc<ImageService>,
    pub lxc: Arc<crate::lxc::LxcService>,
    /// Every download by id, images' and templates'.
    pub downloads: Arc<crate::jobs::Downloads>,
    pub catalog: Arc<crate::catalog::Catalog>,
    pub auth: Arc<crate::auth::Auth>,
    _lock: RootLock,
}

pub fn open(cfg: &Config) -> Result<Daemon, DaemonError> {
    let root = &cfg.data_root;
    let lock = prepare_root(cfg)?;
    let dr = cfg.root();
    let (db, fresh) = open_db(cfg)?;
    let store = BlobStore::open(root).map_err(io("opening the content store"))?;
    // Before anything writes to the new database: what it had besides images comes back from records.json.
    let records = match fresh {
        true => db
            .restore_records(&|d| d.parse().is_ok_and(|d| store.contains(&d)))
            .unwrap_or_else(|e| {
                log::error!("depot.db was missing and records.json does not read back: {e}");
                None
            }),
        false => None,
    };
    crate::store::layout::init(root).map_err(io("writing oci-layout"))?;
    // the admission step every way in shares, a rebuild from index.json included
    let gate = Arc::new(crate::image::admit::Gate::default());
    if let Some(p) = &cfg.policy {
        let policy = crate::policy::PolicyFile::load(p)?;
        log::info!("signature policy {}", p.display());
        gate.set_signature_policy(Some(Arc::new(policy)));
    }
    reconcile(&db, &store, &gate, cfg, fresh, records)?;
    let mut ropts = cfg.registry.clone();
    ropts.net.certs_dir = Some(cfg.certs_dir());
    let registry = Arc::new(Registry::new(ropts));
    let web = crate::net::http::Web::new(registry.net());
    let transfers = transfers_of(cfg, &store);
    let downloads = Arc::new(crate::jobs::Downloads::new(db.clone(), &transfers));
    let auth = users(cfg, &db)?;
    let catalog = Arc::new(crate::catalog::Catalog::new(cfg.catalog_url.clone(), dr.catalog()));
    let images = Arc::new(
        ImageService::new(
            db.clone(),
            store.clone(),
            registry,
            transfers.clone(),
            cfg.platform.clone(),
            cfg.concurrent_downloads,
            Sealer::open_or_create(&dr.credentials_key())?,
        )
        .with_gate(gate),
    );
    let lxc = Arc::new(crate::lxc::LxcService::new(
        db,
        store,
        transfers,
        web,
        crate::lxc::LxcOptions {
            sources: cfg.lxc_sources.clone(),
            arch: crate::lxc::service::lxc_arch(&cfg.platform.architecture, cfg.platform.variant.as_deref()).into(),
            dirs: cfg.lxc_dirs(),
            cache: dr.lxc_cache(),
            xz_memory: cfg.memory_budget_mb * (1 << 20) / 2,
        },
        Some(catalog.clone()),
        // one bus for images and templates: the Engine API's /events and the station's log read it
        images.events.clone(),
    ));
    recover(cfg, &images, &lxc, &downloads)?;
    Ok(Daemon {
        images,
        downloads,
        lxc,
        catalog,
        auth,
        _lock: lock,
    })
}

/// The data root exists and is this daemon's; `tmp/` is empty; the default places for exports and unpacks exist
/// (the first request must not fail on them).
fn prepare_root(cfg: &Config) -> Result<RootLock, DaemonError> {
    let root = &cfg.data_root;
    crate::fsutil::create_dir_durable(root).map_err(io(format!("creating data root {}", root.display())))?;
    let lock = RootLock::acquire(root).map_err(io("locking the data root"))?;
    let tmp = cfg.root().tmp();
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    for d in cfg
        .export_dirs()
        .iter()
        .chain(&cfg.lxc_dirs())
        .filter(|d| d.starts_with(root))
    {
        crate::fsutil::create_dir_durable(d).map_err(io(format!("creating {}", d.display())))?;
    }
    Ok(lock)
}

/// The database, checked before anything trusts it, and whether it was created just now.
fn open_db(cfg: &Config) -> Result<(Arc<Db>, bool), DaemonError> {
    let db_path = cfg.root().db();
    let fresh = !db_path.exists();
    let damaged = |source| DaemonError::DbDamaged {
        path: db_path.display().to_string(),
        root: cfg.data_root.display().to_string(),
        source,
    };
    let db = Db::open(&db_path).map_err(damaged)?;
    match db.quick_check() {
        Ok(problems) if problems.is_empty() => Ok((Arc::new(db), fresh)),
        Ok(problems) => Err(damaged(crate::store::DbError::Damaged(problems.join("; ")))),
        Err(e) => Err(damaged(e)),
    }
}

/// The one transfer engine: download slots, the retry policy, the throttle, the GC lock, the running jobs.
fn transfers_of(cfg: &Config, store: &BlobStore) -> Arc<Transfers> {
    Arc::new(Transfers {
        store: store.clone(),
        slots: Slots::new(cfg.concurrent_downloads),
        claims: Claims::default(),
        retry: cfg.registry.net.retry.clone(),
        zstd_window_log_max: cfg.zstd_window_log_max(),
        throttle: Arc::new(crate::transfer::throttle::Throttle::new(
            cfg.bandwidth_limit,
            cfg.download_window,
            cfg.utc_offset,
        )),
        gc_lock: Default::default(),
        running: Default::default(),
    })
}

/// Users exist for the TCP listener alone: without it nothing is hashed at start (a hash maps 19 MiB).
fn users(cfg: &Config, db: &Arc<Db>) -> Result<Arc<crate::auth::Auth>, DaemonError> {
    let auth = Arc::new(crate::auth::Auth::new(db.clone()));
    if cfg.tcp.is_some() {
        if let Some(path) = auth.ensure_admin(cfg.admin_password.as_deref(), &cfg.data_root)? {
            log::warn!(
                "created user admin for the TCP listener: its password is in {} (readable by root only)",
                path.display()
            );
        }
    }
    Ok(auth)
}

/// What a start recovers before it serves: `index.json` in step, the settings changed through the API (they
/// outlive the config's), the stored registries, what no image or download owns collected, old downloads
/// forgotten, and the unfinished ones resumed.
fn recover(
    cfg: &Config,
    images: &Arc<ImageService>,
    lxc: &Arc<crate::lxc::LxcService>,
    downloads: &crate::jobs::Downloads,
) -> Result<(), DaemonError> {
    images.layout.sync();
    downloads.restore_settings()?;
    images.registries.restore()?;
    if let (true, Some(engine)) = (cfg.handoff_after_pull, &cfg.engine_socket) {
        images.hand_off_pulls_to(engine.clone());
    }
    let gc = images.gc(cfg.stale_ingest)?;
    if gc.blobs + gc.ingests + gc.strays > 0 {
        log::info!(
            "recovery: removed {} unreferenced blobs, {} ingests no download owns and {} stray files ({} bytes)",
            gc.blobs,
            gc.ingests,
            gc.strays,
            gc.bytes
        );
    }
    // Ended downloads are history after 30 days.
    downloads.forget(crate::store::db::now() - 30 * 24 * 3600)?;
    downloads.add(images.clone());
    downloads.add(lxc.clone());
    let resumed = downloads.resume_unfinished()?;
    if resumed.iter().any(|(_, n)| *n > 0) {
        let said: Vec<String> = resumed.iter().map(|(k, n)| format!("{n} {}", k.as_str())).collect();
        log::info!("recovery: resuming unfinished downloads: {}", said.join(", "));
    }
    Ok(())
}

/// Bring the database up to what the data root holds before anything trusts it: images `index.json` names that
/// the database does not know are restored (see [`crate::image::rebuild`]). A new database beside blobs it never
/// saw arrive never collects them.
fn reconcile(
    db: &Db,
    store: &BlobStore,
    gate: &crate::image::admit::Gate,
    cfg: &Config,
    fresh: bool,
    records: Option<crate::store::records::Restored>,
) -> Result<(), DaemonError> {
    let r = crate::image::rebuild::rebuild(db, store, gate, cfg.zstd_window_log_max())?;
    if r.images > 0 || !r.skipped.is_empty() {
        log::warn!(
            "{}: rebuilt {} images and {} refs from index.json{}",
            if fresh {
                "no depot.db"
            } else {
                "depot.db did not know every image of index.json"
            },
            r.images,
            r.refs,
            if r.skipped.is_empty() {
                String::new()
            } else {
                format!("; not restored: {}", r.skipped.join("; "))
            }
        );
    }
    if fresh && (r.images > 0 || records.is_some()) {
        // not a first start: the database was lost, and with it what neither the layout nor records.json holds
        log::error!(
            "depot.db was missing and is rebuilt from the data root: {}",
            crate::image::rebuild::rebuilt(&r, records.as_ref())
        );
    }
    if fresh && !store.list().map_err(io("listing blobs"))?.is_empty() {
        db.settings().set_meta(
            crate::image::META_BLOB_GC,
            "off: database created beside existing blobs",
        )?;
    }
    Ok(())
}

/// Threads for the handlers' blocking work: SQLite has one connection, so more would only queue on it.
const POOL_THREADS: usize = 4;

/// Block SIGTERM and SIGINT in the calling thread. Call it first, before [`open`]: every thread inherits the
/// mask (recovery starts pull threads), so that only [`serve`]'s waiter sees the signals and a stop is always
/// the tidy one; a signal that comes during recovery waits for it.
pub fn block_stop_signals() -> Result<nix::sys::signal::SigSet, DaemonError> {
    let mut signals = nix::sys::signal::SigSet::empty();
    signals.add(nix::sys::signal::Signal::SIGTERM);
    signals.add(nix::sys::signal::Signal::SIGINT);
    signals.thread_block().map_err(|e| DaemonError::Io {
        context: "blocking signals".into(),
        source: e.into(),
    })?;
    Ok(signals)
}

/// What both listeners serve: the Engine API and the station API over the daemon's services.
fn api_of(cfg: &Config, d: &Daemon, lan: Arc<crate::api::registry::switch::Lan>) -> Arc<dyn Handler> {
    Arc::new(crate::api::Api::new(
        Engine::new(d.images.clone()),
        crate::api::station::Station::new(
            d.images.clone(),
            d.lxc.clone(),
            d.downloads.clone(),
            d.auth.clone(),
            cfg.export_dirs(),
            d.catalog.clone(),
            lan,
        ),
        d.auth.clone(),
        cfg.engine_tcp,
    ))
}

/// The LAN registry's switch (see [`crate::api::registry::switch`]), with the configuration's settings.
fn lan_of(cfg: &Config, d: &Daemon, max_connections: usize) -> Arc<crate::api::registry::switch::Lan> {
    Arc::new(crate::api::registry::switch::Lan::new(
        crate::api::registry::switch::LanOptions {
            listen: cfg.registry_listen,
            anonymous: cfg.registry_anonymous,
            plain_http: cfg.registry_plain_http,
            pull_through: cfg.registry_pull_through,
            tls_cert: cfg.registry_tls_cert.clone(),
            tls_key: cfg.registry_tls_key.clone(),
            tls_names: cfg.registry_tls_names.clone(),
            tls_dir: cfg.root().registry_tls(),
            max_connections,
        },
        d.images.clone(),
        d.auth.clone(),
    ))
}

/// A thread that waits for one of `signals`, removes the socket, brings `index.json` in step, folds the WAL in,
/// and exits holding every later write off.
fn stop_on(
    signals: nix::sys::signal::SigSet,
    unix: Arc<http::UnixSocket>,
    images: Arc<ImageService>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = signals.wait() {
                log::info!("{sig}: stopping (downloads resume at the next start)");
                unix.remove_file();
                // index.json in step, the WAL folded in, and nothing written after: held until the exit
                let _held = images.layout.final_sync();
                std::process::exit(0);
            }
        })
        .map_err(io("starting the signal thread"))?;
    Ok(())
}

/// Bind the listeners and serve until SIGTERM or SIGINT (then: socket removed, `index.json` and the WAL
/// written last) or SIGKILL. `signals` comes from [`block_stop_signals`].
pub fn serve(cfg: &Config, d: Daemon, signals: nix::sys::signal::SigSet) -> Result<(), DaemonError> {
    crate::pool::init(POOL_THREADS);
    let nofile = http::raise_nofile();
    // the LAN registry's share is kept whether it is on or not: the page may turn it on at any time
    let limits = http::ConnLimits::for_nofile(nofile).with_registry();
    log::debug!(
        "open files limit {nofile}: serving at most {} connections on the unix socket and {} on tcp",
        limits.unix,
        limits.tcp
    );
    let sock = cfg.socket_path();
    let unix =
        http::bind_unix(&sock, cfg.socket_group.as_deref()).map_err(io(format!("binding {}", sock.display())))?;
    let tcp = match cfg.tcp {
        Some(a) => Some(http::bind_tcp(a).map_err(io(format!("binding tcp {a}")))?),
        None => None,
    };
    if let Some(a) = cfg.tcp {
        log::info!(
            "tcp://{a}: the station API for logged-in users and API tokens{}",
            if cfg.engine_tcp {
                ", the Engine API for API tokens"
            } else {
                " (the Engine API stays on the unix socket: engine_tcp = true serves it to API tokens)"
            }
        );
    }
    let lan = lan_of(cfg, &d, limits.registry);
    lan.start().map_err(DaemonError::Config)?;
    let engine = api_of(cfg, &d, lan.clone());
    let unix = Arc::new(unix);
    stop_on(signals, unix.clone(), d.images.clone())?;
    let tcp_addr = tcp.as_ref().and_then(|t| t.local_addr().ok());
    log::info!(
        "depot {} serving on unix://{}{} (board {}, data root {}, platform {}, {} concurrent downloads)",
        env!("CARGO_PKG_VERSION"),
        sock.display(),
        tcp_addr.map(|a| format!(" and tcp://{a}")).unwrap_or_default(),
        cfg.board,
        cfg.data_root.display(),
        cfg.platform,
        cfg.concurrent_downloads
    );
    smol::block_on(async {
        let u = smol::spawn(http::serve_unix(unix.listener.clone(), engine.clone(), limits.unix));
        let policy = http::TcpPolicy {
            names: cfg.tcp_hosts.clone(),
            origins: cfg.origins.clone(),
        };
        match tcp {
            Some(t) => {
                futures_lite::future::zip(
                    u,
                    http::serve_tcp(
                        t,
                        engine,
                        http::Serving {
                            policy: Some(policy),
                            max_connections: limits.tcp,
                            ..Default::default()
                        },
                    ),
                )
                .await
                .0
            }
            None => u.await,
        }
    });
    drop(lan);
    drop(d);
    Ok(())
}
