//! The client commands' arguments (argh): each command and subcommand with its own `--help`. `main.rs` has the
//! daemon's and dispatches.

use argh::FromArgs;
use std::path::PathBuf;

/// LXC rootfs templates: what the image servers offer, download, keep, unpack into containers, make from images
#[derive(FromArgs)]
#[argh(subcommand, name = "lxc")]
pub struct Lxc {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    #[argh(subcommand)]
    pub cmd: LxcCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum LxcCmd {
    Sources(LxcSources),
    Ls(LxcLs),
    Pull(LxcPull),
    Rm(LxcRm),
    Unpack(LxcUnpack),
    Convert(LxcConvert),
}

/// the configured image servers and the vendor catalog, with how many templates each offers
#[derive(FromArgs)]
#[argh(subcommand, name = "sources")]
pub struct LxcSources {
    /// fetch every index now instead of using one fetched in the last minutes
    #[argh(switch)]
    pub refresh: bool,
}

/// the templates kept (or, with --available, what the sources offer for this NAS's architecture)
#[derive(FromArgs)]
#[argh(subcommand, name = "ls")]
pub struct LxcLs {
    /// list what the sources offer
    #[argh(switch, short = 'a')]
    pub available: bool,
    /// another architecture (amd64, arm64, armhf, …) or all
    #[argh(option)]
    pub arch: Option<String>,
    /// one source only
    #[argh(option)]
    pub source: Option<String>,
}

/// download a template (resumable; survives restarts) and keep it
#[derive(FromArgs)]
#[argh(subcommand, name = "pull")]
pub struct LxcPull {
    /// the source to take it from (default: the first that offers it)
    #[argh(option)]
    pub source: Option<String>,
    /// DIST/RELEASE[/ARCH[/VARIANT]] (default: this NAS's architecture, variant default)
    #[argh(positional)]
    pub name: String,
}

/// remove kept templates
#[derive(FromArgs)]
#[argh(subcommand, name = "rm")]
pub struct LxcRm {
    /// DIST/RELEASE[/ARCH[/VARIANT]]
    #[argh(positional, greedy)]
    pub names: Vec<String>,
}

/// unpack a template as a container directory DEST (DEST/rootfs, DEST/config), safely and all at once
#[derive(FromArgs)]
#[argh(subcommand, name = "unpack")]
pub struct LxcUnpack {
    /// map container ids onto host ids for an unprivileged container, UID:GID:RANGE (e.g. 100000:100000:65536)
    #[argh(option)]
    pub shift: Option<String>,
    /// use the template's unprivileged config and excludes
    #[argh(switch)]
    pub unprivileged: bool,
    /// DIST/RELEASE[/ARCH[/VARIANT]]
    #[argh(positional)]
    pub template: String,
    /// the container directory to create (must not exist)
    #[argh(positional)]
    pub dest: PathBuf,
}

/// make an LXC template of a stored Docker image (its layers flattened, what it runs as the init hint)
#[derive(FromArgs)]
#[argh(subcommand, name = "convert")]
pub struct LxcConvert {
    /// the template's name, DIST/RELEASE[/ARCH[/VARIANT]] (default REPOSITORY/TAG/ARCH/docker)
    #[argh(option)]
    pub name: Option<String>,
    /// the image (reference or id)
    #[argh(positional)]
    pub image: String,
}

/// manage the API tokens that TCP clients (scripts, the docker CLI) authenticate with
#[derive(FromArgs)]
#[argh(subcommand, name = "token")]
pub struct Token {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    #[argh(subcommand)]
    pub cmd: TokenCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum TokenCmd {
    Create(TokenCreate),
    List(TokenList),
    Rm(TokenRm),
}

/// create a token: printed once on stdout; the daemon keeps only its hash
#[derive(FromArgs)]
#[argh(subcommand, name = "create")]
pub struct TokenCreate {
    /// what the token is for (shown by `depot token list`)
    #[argh(positional)]
    pub name: String,
}

/// list the tokens (never the tokens themselves)
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub struct TokenList {}

/// revoke tokens by id
#[derive(FromArgs)]
#[argh(subcommand, name = "rm")]
pub struct TokenRm {
    /// token ids (see `depot token list`)
    #[argh(positional, greedy)]
    pub ids: Vec<String>,
}

/// pins: an installed app keeps the images and templates it needs until it lets them go (a pinned image is
/// refused to rmi and prune unless forced)
#[derive(FromArgs)]
#[argh(subcommand, name = "pin")]
pub struct Pin {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    #[argh(subcommand)]
    pub cmd: PinCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum PinCmd {
    Add(PinAdd),
    Ls(PinLs),
    Rm(PinRm),
}

/// pin images (by tag, or by digest: repo@sha256:…) and templates (lxc:DIST/RELEASE/ARCH/VARIANT) for an owner
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
pub struct PinAdd {
    /// who keeps them (an app's name: letters, digits, . _ -)
    #[argh(positional)]
    pub owner: String,
    /// image references and lxc:TEMPLATE names
    #[argh(positional, greedy)]
    pub targets: Vec<String>,
}

/// make images and templates present and pinned for an owner: pulled when absent (joining a running download),
/// then pinned; exit 0 done, 1 failed, 2 usage, 3 refused by policy, 4 no space
#[derive(FromArgs)]
#[argh(subcommand, name = "ensure")]
pub struct Ensure {
    /// who keeps them (an app's name: letters, digits, . _ -)
    #[argh(option)]
    pub owner: String,
    /// print the daemon's JSON lines as they come
    #[argh(switch)]
    pub json: bool,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// image references (by tag, or repo@sha256:…) and lxc:TEMPLATE names
    #[argh(positional, greedy)]
    pub targets: Vec<String>,
}

/// list the pins, or one owner's
#[derive(FromArgs)]
#[argh(subcommand, name = "ls")]
pub struct PinLs {
    /// only this owner's
    #[argh(positional)]
    pub owner: Option<String>,
}

/// release an owner's pins on the targets named, or all of them
#[derive(FromArgs)]
#[argh(subcommand, name = "rm")]
pub struct PinRm {
    /// whose pins
    #[argh(positional)]
    pub owner: String,
    /// the targets to release (default: all of the owner's)
    #[argh(positional, greedy)]
    pub targets: Vec<String>,
}

/// offline bundles: images, LXC templates, their signatures and an app's pins in one file that skopeo reads as
/// oci-archive:FILE
#[derive(FromArgs)]
#[argh(subcommand, name = "bundle")]
pub struct Bundle {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    #[argh(subcommand)]
    pub cmd: BundleCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum BundleCmd {
    Create(BundleCreate),
    Import(BundleImport),
}

/// write a bundle of images (by tag or digest) and templates
#[derive(FromArgs)]
#[argh(subcommand, name = "create")]
pub struct BundleCreate {
    /// the file to write
    #[argh(option, short = 'o')]
    pub output: PathBuf,
    /// an LXC template, dist/release/arch/variant (repeatable)
    #[argh(option)]
    pub lxc: Vec<String>,
    /// the app the bundle's images and templates are pinned for on import
    #[argh(option)]
    pub owner: Option<String>,
    /// image references
    #[argh(positional, greedy)]
    pub images: Vec<String>,
}

/// take a bundle in: every blob verified, every image judged by the signature policy, nothing visible until
/// all is in
#[derive(FromArgs)]
#[argh(subcommand, name = "import")]
pub struct BundleImport {
    /// the daemon's JSON lines, as they come
    #[argh(switch)]
    pub json: bool,
    /// a bundle file, or a directory holding an OCI image layout
    #[argh(positional)]
    pub path: PathBuf,
}

/// hand images to the NAS's container engine (a Docker engine): saved from depot and loaded there, streamed
#[derive(FromArgs)]
#[argh(subcommand, name = "handoff")]
pub struct Handoff {
    /// the engine's socket (default: the config's engine_socket)
    #[argh(option)]
    pub engine: Option<String>,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// image references or ids
    #[argh(positional, greedy)]
    pub images: Vec<String>,
}

/// show an image's details (Docker's inspect document)
#[derive(FromArgs)]
#[argh(subcommand, name = "inspect")]
pub struct Inspect {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// image references or ids
    #[argh(positional, greedy)]
    pub images: Vec<String>,
}

/// give an image another name (moves the name if another image has it)
#[derive(FromArgs)]
#[argh(subcommand, name = "tag")]
pub struct Tag {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// the image (reference or id)
    #[argh(positional)]
    pub source: String,
    /// the new name, e.g. registry:5000/app:1
    #[argh(positional)]
    pub target: String,
}

/// write images to a tar archive (Docker's layout: docker load and skopeo read it)
#[derive(FromArgs)]
#[argh(subcommand, name = "save")]
pub struct Save {
    /// the file to write (default: standard output)
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// image references (a repository name saves all its tags) or ids
    #[argh(positional, greedy)]
    pub images: Vec<String>,
}

/// read images from a tar archive (docker save's, or an OCI layout)
#[derive(FromArgs)]
#[argh(subcommand, name = "load")]
pub struct Load {
    /// the archive (default: standard input)
    #[argh(option, short = 'i')]
    pub input: Option<PathBuf>,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
}

/// push an image (or every tag of a repository) to its registry
#[derive(FromArgs)]
#[argh(subcommand, name = "push")]
pub struct Push {
    /// registry credentials USER:PASSWORD
    #[argh(option)]
    pub creds: Option<String>,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// what to push, e.g. registry:5000/app:1
    #[argh(positional)]
    pub reference: String,
}

/// check credentials against a registry (as docker login does; depot keeps nothing)
#[derive(FromArgs)]
#[argh(subcommand, name = "login")]
pub struct Login {
    /// user name
    #[argh(option, short = 'u')]
    pub username: String,
    /// password (prefer --password-stdin)
    #[argh(option, short = 'p')]
    pub password: Option<String>,
    /// read the password from standard input
    #[argh(switch)]
    pub password_stdin: bool,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// the registry (default: Docker Hub)
    #[argh(positional, default = "String::new()")]
    pub server: String,
}

/// remove dangling images, or with -a every image
#[derive(FromArgs)]
#[argh(subcommand, name = "prune")]
pub struct Prune {
    /// every image, not only untagged ones
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
}

// Daemon settings, shared by `serve` and `config`: each is also a key of the config file (`-` becomes `_`).

/// pull an image through the daemon, with live per-layer progress
#[derive(FromArgs)]
#[argh(subcommand, name = "pull")]
pub struct Pull {
    /// platform OS/ARCH[/VARIANT] (default: the daemon's)
    #[argh(option)]
    pub platform: Option<String>,
    /// registry credentials USER:PASSWORD
    #[argh(option)]
    pub creds: Option<String>,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// image reference, e.g. alpine:3.20 or registry:5000/repo@sha256:…
    #[argh(positional)]
    pub reference: String,
}

/// list the images
#[derive(FromArgs)]
#[argh(subcommand, name = "images")]
pub struct Images {
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
}

/// remove images (untag; the image goes with its last reference)
#[derive(FromArgs)]
#[argh(subcommand, name = "rm")]
pub struct Rm {
    /// remove even when the image is referenced in several repositories
    #[argh(switch, short = 'f')]
    pub force: bool,
    /// the daemon's socket (PATH or unix://PATH)
    #[argh(option, short = 'H')]
    pub host: Option<String>,
    /// image references or ids
    #[argh(positional, greedy)]
    pub images: Vec<String>,
}
