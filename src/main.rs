//! `depot`: the daemon (`depot serve`) and its client commands. Parsing is declarative (argh): every command has
//! its own `--help`, and errors name the unknown command or the missing argument.

use argh::FromArgs;
use depot::cli::args::*;
use depot::cli::{self, CliError, Client};
use depot::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// depot: the image service of a NAS (Docker/OCI images on the NAS's volumes, the Docker Engine image API)
#[derive(FromArgs)]
struct Top {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    version: bool,
    /// the daemon's socket for client commands (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    host: Option<String>,
    #[argh(subcommand)]
    cmd: Option<Cmd>,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Serve(Serve),
    // Parsed in `main` with serve's options; here for `depot --help`.
    #[allow(dead_code)]
    Config(ConfigCmd),
    Fsck(Fsck),
    Pull(Pull),
    Images(Images),
    Rm(Rm),
    Inspect(Inspect),
    Tag(Tag),
    Save(Save),
    Load(Load),
    Push(Push),
    Login(Login),
    Prune(Prune),
    Handoff(Handoff),
    Token(Token),
    Pin(Pin),
    Ensure(Ensure),
    Bundle(Bundle),
    Lxc(Lxc),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
/// run the daemon: open (or create) the data root, recover, serve the APIs on the unix socket (and TCP if set)
struct Serve {
    /// board profile: a name (generic, x86_64, arm_64, arm-x41) or a file; default: detected
    #[argh(option)]
    board: Option<String>,
    /// config file (key = value lines)
    #[argh(option)]
    config: Option<String>,
    /// data root directory (default ./depot-data on a developer machine)
    #[argh(option)]
    data_root: Option<String>,
    /// unix socket path (default <data root>/depot.sock)
    #[argh(option)]
    socket: Option<String>,
    /// group that may use the socket
    #[argh(option)]
    socket_group: Option<String>,
    /// TCP listener ADDRESS:PORT, or none (default none)
    #[argh(option)]
    tcp: Option<String>,
    /// DNS names besides loopback addresses that TCP clients may use in Host (repeatable)
    #[argh(option)]
    tcp_host: Vec<String>,
    /// default platform OS/ARCH[/VARIANT]
    #[argh(option)]
    platform: Option<String>,
    /// layers downloaded at once, daemon-wide
    #[argh(option)]
    max_concurrent_downloads: Option<String>,
    /// memory budget in MiB
    #[argh(option)]
    memory_budget_mb: Option<String>,
    /// registry HOST[:PORT] that may be reached over plain HTTP (repeatable)
    #[argh(option)]
    insecure_registry: Vec<String>,
    /// the NAS's container engine socket, for hand-offs (PATH or unix://PATH)
    #[argh(option)]
    engine_socket: Option<String>,
    /// the LAN registry's listener ADDRESS:PORT: what depot holds, served read-only over the OCI distribution
    /// API (default none)
    #[argh(option)]
    registry: Option<String>,
    /// serve the LAN registry to clients without credentials (true or false; default false: an API token of
    /// depot is needed)
    #[argh(option)]
    registry_anonymous: Option<String>,
    /// pull what a LAN registry's client asks for and depot does not hold (true or false; default true)
    #[argh(option)]
    registry_pull_through: Option<String>,
    /// serve the LAN registry over plain HTTP (true or false; default false: TLS)
    #[argh(option)]
    registry_plain_http: Option<String>,
    /// the LAN registry's certificate chain, PEM (default: one depot issues under <data root>/registry-tls)
    #[argh(option)]
    registry_tls_cert: Option<String>,
    /// the key of --registry-tls-cert, PEM (may be the same file)
    #[argh(option)]
    registry_tls_key: Option<String>,
    /// a name or address the issued certificate holds besides the machine's own (repeatable)
    #[argh(option)]
    registry_tls_name: Vec<String>,
    /// the signature policy, a containers-policy.json(5) file (default: none, every image may enter)
    #[argh(option)]
    policy: Option<String>,
    /// hand every pulled image to the container engine (true or false)
    #[argh(option)]
    handoff_after_pull: Option<String>,
    /// serve the Engine API on TCP too, to API-token holders (true or false; default false)
    #[argh(option)]
    engine_tcp: Option<String>,
    /// bytes per second all downloads share, e.g. 2M or 500k (default: no limit)
    #[argh(option)]
    bandwidth_limit: Option<String>,
    /// local time of day downloads run in, HH:MM-HH:MM (default: always)
    #[argh(option)]
    download_window: Option<String>,
    /// a mirror of Docker Hub, as a URL (repeatable; tried in order before Docker Hub)
    #[argh(option)]
    registry_mirror: Vec<String>,
    /// a mirror of another registry, REGISTRY=URL (repeatable)
    #[argh(option)]
    mirror: Vec<String>,
    /// an LXC image server, NAME=lxc:URL (lxc-download format) or NAME=simplestreams:URL (repeatable)
    #[argh(option)]
    lxc_source: Vec<String>,
    /// a directory containers may be unpacked into over TCP (repeatable; default <data root>/containers)
    #[argh(option)]
    lxc_dir: Vec<String>,
    /// the search index URL, Docker Hub style (default https://index.docker.io)
    #[argh(option)]
    search_index: Option<String>,
    /// certs.d directory (<host[:port]>/ca.crt, client.cert, client.key)
    #[argh(option)]
    certs_dir: Option<String>,
    /// seconds to wait for a connection
    #[argh(option)]
    connect_timeout: Option<String>,
    /// seconds of silence tolerated while reading a response
    #[argh(option)]
    read_timeout: Option<String>,
    /// attempts per request or blob in all (default 5)
    #[argh(option)]
    retries: Option<String>,
    /// first backoff between attempts, in milliseconds (doubles, with jitter)
    #[argh(option)]
    retry_delay_ms: Option<String>,
    /// log file (default stderr)
    #[argh(option)]
    log_file: Option<String>,
    /// error, warn, info or debug
    #[argh(option)]
    log_level: Option<String>,
}

/// print the effective settings (profile < config file < flags) as config-file lines; takes serve's options
#[derive(FromArgs)]
#[argh(subcommand, name = "config")]
struct ConfigCmd {
    /// the options of `depot serve`
    #[argh(positional, greedy)]
    _options: Vec<String>,
}

/// check a stopped daemon's data root (exit 1 on problems); --repair mends it
#[derive(FromArgs)]
#[argh(subcommand, name = "fsck")]
struct Fsck {
    /// remove what cannot be trusted and rebuild a lost or corrupt database from the OCI layout
    #[argh(switch)]
    repair: bool,
    /// data root (default: the board profile's)
    #[argh(option)]
    data_root: Option<PathBuf>,
}

/// This machine's settings as the daemon would pick them with no flags: on a NAS, its board profile (so
/// `depot images` over SSH finds `/var/run/depot.sock`); elsewhere the generic one.
fn detected() -> Config {
    Config::resolve(None, None, &[]).unwrap_or_default()
}

/// The socket a client command talks to: `-H`, then `$DEPOT_SOCKET`, then a `unix://` `$DOCKER_HOST`, then the
/// board profile's socket.
fn client_socket(flag: Option<String>) -> Result<PathBuf, String> {
    let strip = |s: &str| s.strip_prefix("unix://").unwrap_or(s).to_string();
    if let Some(h) = flag {
        if h.contains("://") && !h.starts_with("unix://") {
            return Err(format!(
                "-H {h}: depot's client speaks over a unix socket (PATH or unix://PATH)"
            ));
        }
        return Ok(strip(&h).into());
    }
    if let Some(s) = std::env::var_os("DEPOT_SOCKET").filter(|s| !s.is_empty()) {
        return Ok(s.into());
    }
    if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| h.starts_with("unix://")) {
        return Ok(strip(&h).into());
    }
    Ok(detected().socket_path())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // `-h` is `--help` (argh knows only the long form).
    let args: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(|a| if a == "-h" { "--help" } else { a.as_str() })
        .collect();
    // `depot help [COMMAND]` is `depot [COMMAND] --help`.
    let args: Vec<&str> = match args.as_slice() {
        ["help", rest @ ..] => rest.iter().copied().chain(["--help"]).collect(),
        _ => args,
    };
    // `depot config` takes exactly serve's options: parse them as serve's.
    if let ["config", rest @ ..] = args.as_slice() {
        if !rest.contains(&"--help") {
            let r = Serve::from_args(&["depot", "config"], rest)
                .map_err(|e| e.output)
                .and_then(|s| {
                    let flags = s.settings();
                    resolve(s.board, s.config, flags)
                });
            return match r {
                Ok(c) => {
                    print!("{}", c.render());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("depot: {}", e.trim_end());
                    ExitCode::FAILURE
                }
            };
        }
    }
    let top = match Top::from_args(&["depot"], &args) {
        Ok(t) => t,
        Err(early) => return early_exit(&args, early),
    };
    match run(top) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.starts_with(USAGE_ERROR) => {
            eprintln!("depot: {}", &e[USAGE_ERROR.len()..]);
            ExitCode::from(2)
        }
        Err(e) if e.starts_with(REFUSED_ERROR) => {
            eprintln!("depot: {}", &e[REFUSED_ERROR.len()..]);
            ExitCode::from(3)
        }
        Err(e) if e.starts_with(NO_SPACE_ERROR) => {
            eprintln!("depot: {}", &e[NO_SPACE_ERROR.len()..]);
            ExitCode::from(4)
        }
        Err(e) => {
            eprintln!("depot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Marks an error of `run` as a usage error (exit 2, like argh's own).
const USAGE_ERROR: &str = "\0usage:";
/// Marks a policy's refusal (exit 3) and a full volume (exit 4): what an install script tells apart.
const REFUSED_ERROR: &str = "\0refused:";
const NO_SPACE_ERROR: &str = "\0no space:";

/// `--help` (exit 0), or a parse error rewritten to name what is wrong (exit 2, like most CLIs' usage errors).
fn early_exit(args: &[&str], early: argh::EarlyExit) -> ExitCode {
    if early.status.is_ok() {
        print!("{}", early.output);
        return ExitCode::SUCCESS;
    }
    let commands = [
        "serve", "config", "fsck", "pull", "images", "rm", "inspect", "tag", "save", "load", "push", "login", "prune",
        "handoff",
    ];
    let first = args.iter().find(|a| !a.starts_with('-'));
    let msg = match first {
        Some(c) if !commands.contains(c) && early.output.contains(&format!("Unrecognized argument: {c}")) => {
            format!(
                "unknown command '{c}' (commands: {}; see 'depot help')",
                commands.join(", ")
            )
        }
        _ => {
            let cmd = first.map(|c| format!(" {c}")).unwrap_or_default();
            let out = early.output.trim_end();
            let out = match out.strip_prefix("Required positional arguments not provided:") {
                Some(names) => format!(
                    "missing argument: {}",
                    names.split_whitespace().collect::<Vec<_>>().join(", ")
                ),
                None => out.to_string(),
            };
            format!("{out}\nsee 'depot{cmd} --help'")
        }
    };
    eprintln!("depot: {msg}");
    ExitCode::from(2)
}

/// A command's list argument must name something.
fn needs(list: &[String], what: &str, cmd: &str) -> Result<(), String> {
    match list.is_empty() {
        true => Err(format!(
            "{USAGE_ERROR}missing argument: {what}\nsee 'depot {cmd} --help'"
        )),
        false => Ok(()),
    }
}

/// `login`'s password: `-p`, or a line of standard input with `--password-stdin`.
fn password(given: Option<String>, stdin: bool) -> Result<String, String> {
    match (given, stdin) {
        (Some(p), false) => Ok(p),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("reading the password: {e}"))?;
            Ok(line.trim_end_matches(['\n', '\r']).to_string())
        }
        _ => Err(format!("{USAGE_ERROR}give the password with -p or --password-stdin")),
    }
}

/// `depot pin …`; a usage error is the outer one, what the daemon answered the inner.
fn pin(c: &Client, cmd: PinCmd) -> Result<Result<(), CliError>, String> {
    Ok(match cmd {
        PinCmd::Add(x) => {
            needs(&x.targets, "targets", "pin add")?;
            smol::block_on(cli::pins::add(c, &x.owner, &x.targets))
        }
        PinCmd::Ls(x) => smol::block_on(cli::pins::ls(c, x.owner.as_deref())),
        PinCmd::Rm(x) => smol::block_on(cli::pins::rm(c, &x.owner, &x.targets)),
    })
}

fn token(c: &Client, cmd: TokenCmd) -> Result<(), CliError> {
    match cmd {
        TokenCmd::Create(x) => smol::block_on(cli::token_create(c, &x.name)),
        TokenCmd::List(_) => smol::block_on(cli::token_list(c)),
        TokenCmd::Rm(x) => smol::block_on(cli::token_rm(c, &x.ids)),
    }
}

/// `depot lxc …`; a usage error is the outer one, what the daemon answered the inner.
fn lxc(c: &Client, cmd: LxcCmd) -> Result<Result<(), CliError>, String> {
    Ok(match cmd {
        LxcCmd::Sources(x) => smol::block_on(cli::lxc::sources(c, x.refresh)),
        LxcCmd::Ls(x) => smol::block_on(cli::lxc::ls(c, x.available, x.arch.as_deref(), x.source.as_deref())),
        LxcCmd::Pull(x) => smol::block_on(cli::lxc::pull(c, &x.name, x.source.as_deref())),
        LxcCmd::Rm(x) => {
            needs(&x.names, "names", "lxc rm")?;
            smol::block_on(cli::lxc::rm(c, &x.names))
        }
        LxcCmd::Unpack(x) => smol::block_on(cli::lxc::unpack(
            c,
            &x.template,
            &x.dest,
            x.shift.as_deref(),
            x.unprivileged,
        )),
        LxcCmd::Convert(x) => smol::block_on(cli::lxc::convert(c, &x.image, x.name.as_deref())),
    })
}

fn run(top: Top) -> Result<(), String> {
    if top.version {
        println!("depot {} ({})", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH);
        return Ok(());
    }
    let Some(cmd) = top.cmd else {
        let help = Top::from_args(&["depot"], &["--help"])
            .err()
            .map(|e| e.output)
            .unwrap_or_default();
        print!("{help}");
        return Ok(());
    };
    let client = |h: Option<String>| -> Result<Client, String> {
        Ok(Client {
            socket: client_socket(h.or(top.host.clone()))?,
        })
    };
    let r: Result<(), CliError> = match cmd {
        Cmd::Serve(s) => return serve(s),
        Cmd::Config(_) => return Err("config: takes the options of serve (see 'depot config --help')".into()),
        Cmd::Fsck(f) => return fsck(f),
        Cmd::Pull(p) => {
            let c = client(p.host)?;
            smol::block_on(cli::pull(&c, &p.reference, p.platform.as_deref(), p.creds.as_deref()))
        }
        Cmd::Images(i) => smol::block_on(cli::images(&client(i.host)?)),
        Cmd::Token(t) => token(&client(t.host)?, t.cmd),
        Cmd::Pin(p) => pin(&client(p.host)?, p.cmd)?,
        Cmd::Ensure(e) => {
            needs(&e.targets, "targets", "ensure")?;
            smol::block_on(cli::pins::ensure(&client(e.host)?, &e.owner, &e.targets, e.json))
        }
        Cmd::Bundle(b) => {
            let c = client(b.host)?;
            match b.cmd {
                BundleCmd::Create(x) => {
                    if x.images.is_empty() && x.lxc.is_empty() {
                        return Err("bundle create: name images or --lxc templates".into());
                    }
                    smol::block_on(cli::bundle::create(
                        &c,
                        &x.images,
                        &x.lxc,
                        x.owner.as_deref(),
                        &x.output,
                    ))
                }
                BundleCmd::Import(x) => smol::block_on(cli::bundle::import(&c, &x.path, x.json)),
            }
        }
        Cmd::Inspect(i) => {
            needs(&i.images, "images", "inspect")?;
            smol::block_on(cli::inspect(&client(i.host)?, &i.images))
        }
        Cmd::Tag(t) => smol::block_on(cli::tag(&client(t.host)?, &t.source, &t.target)),
        Cmd::Save(sv) => {
            needs(&sv.images, "images", "save")?;
            smol::block_on(cli::save(&client(sv.host)?, &sv.images, sv.output.as_deref()))
        }
        Cmd::Load(l) => smol::block_on(cli::load(&client(l.host)?, l.input.as_deref())),
        Cmd::Push(p) => smol::block_on(cli::push(&client(p.host)?, &p.reference, p.creds.as_deref())),
        Cmd::Login(l) => {
            let password = password(l.password, l.password_stdin)?;
            smol::block_on(cli::login(&client(l.host)?, &l.server, &l.username, &password))
        }
        Cmd::Prune(p) => smol::block_on(cli::prune(&client(p.host)?, p.all)),
        Cmd::Lxc(l) => lxc(&client(l.host)?, l.cmd)?,
        Cmd::Handoff(h) => {
            needs(&h.images, "images", "handoff")?;
            let engine = match h.engine {
                Some(e) => PathBuf::from(e.trim_start_matches("unix://")),
                None => detected()
                    .engine_socket
                    .ok_or("no container engine: give --engine PATH or set engine_socket in the config")?,
            };
            let engine = Client { socket: engine };
            smol::block_on(cli::handoff(&client(h.host)?, &engine, &h.images))
        }
        Cmd::Rm(r) => {
            needs(&r.images, "images", "rm")?;
            smol::block_on(cli::rm(&client(r.host)?, &r.images, r.force))
        }
    };
    r.map_err(|e| match e {
        CliError::Refused(m) => format!("{REFUSED_ERROR}{m}"),
        CliError::NoSpace(m) => format!("{NO_SPACE_ERROR}{m}"),
        e => e.to_string(),
    })
}

impl Serve {
    /// The flags given, as settings keys (see `depot::config::Config::set`).
    fn settings(&self) -> Vec<(String, String)> {
        let one = [
            ("data_root", &self.data_root),
            ("socket", &self.socket),
            ("socket_group", &self.socket_group),
            ("tcp", &self.tcp),
            ("platform", &self.platform),
            ("concurrent_downloads", &self.max_concurrent_downloads),
            ("memory_budget_mb", &self.memory_budget_mb),
            ("certs_dir", &self.certs_dir),
            ("search_index", &self.search_index),
            ("engine_socket", &self.engine_socket),
            ("policy", &self.policy),
            ("registry", &self.registry),
            ("registry_anonymous", &self.registry_anonymous),
            ("registry_plain_http", &self.registry_plain_http),
            ("registry_pull_through", &self.registry_pull_through),
            ("registry_tls_cert", &self.registry_tls_cert),
            ("registry_tls_key", &self.registry_tls_key),
            ("handoff_after_pull", &self.handoff_after_pull),
            ("engine_tcp", &self.engine_tcp),
            ("bandwidth_limit", &self.bandwidth_limit),
            ("download_window", &self.download_window),
            ("connect_timeout", &self.connect_timeout),
            ("read_timeout", &self.read_timeout),
            ("retries", &self.retries),
            ("retry_delay_ms", &self.retry_delay_ms),
            ("log_file", &self.log_file),
            ("log_level", &self.log_level),
        ];
        let many = [
            ("insecure_registries", &self.insecure_registry),
            ("tcp_hosts", &self.tcp_host),
            ("registry_mirrors", &self.registry_mirror),
            ("mirrors", &self.mirror),
            ("lxc_sources", &self.lxc_source),
            ("lxc_dirs", &self.lxc_dir),
            ("registry_tls_names", &self.registry_tls_name),
        ];
        one.iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
            .chain(
                many.iter()
                    .flat_map(|(k, vs)| vs.iter().map(|v| (k.to_string(), v.clone()))),
            )
            .collect()
    }
}

fn resolve(board: Option<String>, file: Option<String>, flags: Vec<(String, String)>) -> Result<Config, String> {
    let text = match &file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(|x| format!("config file {f}: {x}"))?),
        None => None,
    };
    let file = file.as_deref().zip(text.as_deref()).map(|(f, t)| (t, f));
    Config::resolve(board.as_deref(), file, &flags).map_err(|x| x.to_string())
}

fn fsck(f: Fsck) -> Result<(), String> {
    let root = f.data_root.unwrap_or_else(|| detected().data_root);
    let report = depot::fsck::run(&root, f.repair).map_err(|x| x.to_string())?;
    print!("{}", depot::fsck::render(&report));
    if report.clean() || (f.repair && report.repaired()) {
        Ok(())
    } else {
        Err("the store has problems".into())
    }
}

fn serve(s: Serve) -> Result<(), String> {
    let flags = s.settings();
    let mut cfg = resolve(s.board, s.config, flags)?;
    let cwd = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    // Relative paths are resolved once, here: everything after sees (and logs) absolute ones.
    cfg.make_absolute(&cwd);
    // before any thread starts (recovery resumes downloads on threads of their own)
    let signals = depot::daemon::block_stop_signals().map_err(|x| x.to_string())?;
    depot::logger::init(&cfg.log_level, cfg.log_file.as_deref());
    let d = depot::daemon::open(&cfg).map_err(|x| x.to_string())?;
    depot::daemon::serve(&cfg, d, signals).map_err(|x| x.to_string())
}
