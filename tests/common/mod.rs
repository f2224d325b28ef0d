//! Harness for depot's integration tests: the peers started by `tests/peers/up.sh`, depot daemons in temp data
//! roots, an HTTP client over the unix socket, and the real docker CLI pointed at depot.
#![allow(dead_code)]

pub mod net;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Addresses of the registries `tests/peers/up.sh` started.
pub struct Peers {
    pub dir: PathBuf,
    pub plain: String,
    pub basic: String,
    pub token: String,
    pub token2: String,
    pub tls: String,
    pub tls_ca: PathBuf,
    pub images: PathBuf,
    /// A pull-through cache of `plain`.
    pub mirror: String,
    /// nginx serving the LXC trees of `tests/peers/lxc.sh`: `/lxc` (lxc-download), `/ss` (simplestreams).
    pub lxc_http: String,
    /// The trees and the template files they were made of.
    pub lxc_dir: PathBuf,
    /// A debootstrap minbase rootfs.tar.xz, when this machine could build one.
    pub debian_rootfs: Option<PathBuf>,
}

pub fn peers() -> Peers {
    let dir = std::env::var_os("DEPOT_TEST_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers"));
    let env = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
        panic!(
            "no test peers at {} ({e}): run tests/run, or tests/peers/up.sh {}",
            dir.display(),
            dir.display()
        )
    });
    let kv: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        kv.get(k)
            .unwrap_or_else(|| panic!("{k} missing in peers env"))
            .to_string()
    };
    Peers {
        plain: get("PLAIN"),
        basic: get("BASIC"),
        token: get("TOKEN"),
        token2: get("TOKEN2"),
        tls: get("TLS"),
        tls_ca: get("TLS_CA").into(),
        images: get("IMAGES").into(),
        mirror: get("MIRROR"),
        lxc_http: get("LXC_HTTP"),
        lxc_dir: get("LXC_DIR").into(),
        debian_rootfs: kv.get("DEBIAN_ROOTFS").filter(|v| !v.is_empty()).map(PathBuf::from),
        dir,
    }
}

pub fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A static, size-checked binary of `cross/build.sh` (the `dist` profile; tests/run builds them first).
pub fn static_binary(triple: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(triple)
        .join("dist/depot");
    assert!(
        p.exists(),
        "{} is missing: run cross/build.sh (tests/run does)",
        p.display()
    );
    p
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_depot")
}

/// A depot daemon on a data root of its own; killed (and its root removed) on drop.
pub struct Depot {
    pub root: PathBuf,
    pub sock: PathBuf,
    pub args: Vec<String>,
    child: Option<Child>,
    pub log: PathBuf,
    keep_root: bool,
    env: Vec<(String, String)>,
    /// The open files limit (soft and hard) the daemon starts with, as `ulimit -n` sets it.
    nofile: Option<u64>,
}

impl Depot {
    pub fn start(args: &[&str]) -> Depot {
        Depot::start_at(tempdir("depot"), args)
    }

    /// A daemon with extra environment (proxy variables).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Depot {
        let mut d = Depot::new(tempdir("depot"), args);
        d.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        d.spawn();
        d
    }

    fn new(root: PathBuf, args: &[&str]) -> Depot {
        Depot {
            sock: root.join("depot.sock"),
            log: root.with_extension("log"),
            root,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            keep_root: false,
            env: Vec::new(),
            nofile: None,
        }
    }

    pub fn start_at(root: PathBuf, args: &[&str]) -> Depot {
        let mut d = Depot::new(root, args);
        d.spawn();
        d
    }

    /// A daemon started under `ulimit -n nofile` (soft and hard).
    pub fn start_limited(args: &[&str], nofile: u64) -> Depot {
        let mut d = Depot::new(tempdir("depot"), args);
        d.nofile = Some(nofile);
        d.spawn();
        d
    }

    /// A daemon whose socket and log live outside its data root (a data root on a file system that a test
    /// unmounts under it).
    pub fn start_paths(root: PathBuf, sock: PathBuf, log: PathBuf, args: &[&str]) -> Depot {
        let mut d = Depot::new(root, args);
        d.sock = sock;
        d.log = log;
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match self.nofile {
            // exec keeps the pid: the child is the daemon itself
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let child = cmd
            .arg("serve")
            .arg("--data-root")
            .arg(&self.root)
            .arg("--socket")
            .arg(&self.sock)
            .args(["--log-level", "debug"])
            // The boards name the public LXC image server; a test reaches only loopback, so that source
            // points at the discard port, where nothing listens (a test's own --lxc-source images=… wins).
            .args(["--lxc-source", "images=simplestreams:http://127.0.0.1:9/"])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start depot");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("depot exited with {st} at start:\n{}", self.log_text());
            }
            if self.get("/_ping").0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("depot did not answer /_ping within 20 s:\n{}", self.log_text());
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no chance to clean up, as after a power cut.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, the tidy stop; waits for the process to end and returns its exit status.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        c.wait().unwrap()
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Keep the data root after drop (for a second daemon to reuse).
    pub fn keep(&mut self) {
        self.keep_root = true;
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>, Vec<u8>) {
        request_unix(&self.sock, method, path, headers, Duration::from_secs(600))
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let (s, _, b) = request_unix(&self.sock, "GET", path, &[], Duration::from_secs(30));
        (s, b)
    }

    pub fn json(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let (s, _, b) = self.request(method, path, &[]);
        (s, serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null))
    }

    /// POST /images/create and the stream of messages it answers with.
    pub fn pull_api(&self, query: &str, auth: Option<&str>) -> (u16, Vec<serde_json::Value>) {
        let mut h = vec![];
        if let Some(a) = auth {
            h.push(("X-Registry-Auth", a));
        }
        let (s, _, b) = self.request("POST", &format!("/v1.47/images/create?{query}"), &h);
        let msgs = if s == 200 {
            b.split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).expect("json line"))
                .collect()
        } else {
            vec![serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null)]
        };
        (s, msgs)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.root.join(".docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("docker CLI")
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("DEPOT_SOCKET", &self.sock)
            .stdin(Stdio::null())
            .output()
            .expect("depot CLI")
    }

    pub fn images(&self) -> Vec<serde_json::Value> {
        let (s, v) = self.json("GET", "/images/json");
        assert_eq!(s, 200);
        v.as_array().unwrap().clone()
    }

    /// Digests of the committed blobs, each checked to hash to its name.
    pub fn blobs(&self) -> Vec<String> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            assert_eq!(sha256_file(&e.path()), name, "blob {name} does not hash to its name");
            out.push(format!("sha256:{name}"));
        }
        out.sort();
        out
    }

    /// The largest committed blob: the layer of a one-layer image.
    pub fn images_on_disk_layer(&self) -> PathBuf {
        let dir = self.root.join("blobs/sha256");
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap()
    }

    pub fn ingests(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.join("ingest"))
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Depot {
    fn drop(&mut self) {
        self.kill9();
        if !self.keep_root && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

pub fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// One HTTP/1.1 request over a unix socket (hyper client on smol). Status 0: no answer (nobody listens, or the
/// daemon went away mid-request).
pub fn request_unix(
    sock: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let fut = async {
        let Ok(stream) = async_net::unix::UnixStream::connect(sock).await else {
            return (0, HashMap::new(), Vec::new());
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(smol_hyper::rt::FuturesIo::new(stream)).await
        else {
            return (0, HashMap::new(), Vec::new());
        };
        let task = smol::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "depot");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let Ok(resp) = sender.send_request(req.body(Full::new(Bytes::new())).unwrap()).await else {
            return (0, HashMap::new(), Vec::new());
        };
        let status = resp.status().as_u16();
        let hs = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        drop(task);
        (status, hs, body)
    };
    smol::block_on(async {
        futures_lite::future::or(fut, async {
            async_io::Timer::after(timeout).await;
            panic!("request {method} {path} timed out");
        })
        .await
    })
}

/// Raw bytes to a unix socket, then everything the server answers until it closes (or `timeout`).
pub fn raw_unix(sock: &Path, request: &[u8], timeout: Duration) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Run `cmd` to its end, killing it (and failing) if it takes more than `secs`.
pub fn output_within(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {secs} s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Poll until `f` is true or `secs` pass.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// What a registry serves for a manifest or blob, fetched with skopeo/curl-free plain HTTP.
pub fn registry_get(addr: &str, path: &str, accept: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!("Accept: {accept}"),
            &format!("http://{addr}{path}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {addr}{path} failed");
    out.stdout
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn log_lines(p: &Path) -> Vec<String> {
    std::fs::File::open(p)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default()
}

/// A real dockerd (Debian's docker.io, 20.10) on a socket and roots of its own, stopped by its PID on drop: the
/// NAS's container engine in hand-off tests.
pub struct Dockerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    child: Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        Dockerd::start_with(&[])
    }

    /// A dockerd with `extra` flags (`--registry-mirror URL`, `--insecure-registry HOST:PORT`…).
    pub fn start_with(extra: &[&str]) -> Dockerd {
        Dockerd::start_trusting(&[], &[], extra)
    }

    /// The same, trusting CA `ca` for registry `host:port` for each of `cas`, and resolving each of `names` to
    /// `::1`. dockerd reads registry CAs only from `/etc/docker/certs.d/HOST:PORT/`: it runs in a mount namespace
    /// of its own where scratch files are bound over `/etc/docker` and `/etc/hosts`, so the machine's own are
    /// neither read nor written.
    pub fn start_trusting(cas: &[(&str, &Path)], names: &[&str], extra: &[&str]) -> Dockerd {
        let dir = tempdir("dockerd");
        let sock = dir.join("dockerd.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let mut cmd = if cas.is_empty() {
            Command::new("dockerd")
        } else {
            let etc = dir.join("etc-docker");
            for (host, ca) in cas {
                let d = etc.join("certs.d").join(host);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::copy(ca, d.join("ca.crt")).unwrap();
            }
            // dockerd itself makes /etc/docker on its first start (its key.json); the test needs it as a mount point
            std::fs::create_dir_all("/etc/docker").unwrap();
            let hosts = dir.join("hosts");
            let mut lines = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n".to_string();
            for n in names {
                lines.push_str(&format!("::1 {n}\n"));
            }
            std::fs::write(&hosts, lines).unwrap();
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$0" /etc/docker && mount --bind "$1" /etc/hosts && shift && exec dockerd "$@""#)
                .arg(&etc)
                .arg(&hosts);
            c
        };
        let child = cmd
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd (tests/run installs docker.io)");
        let d = Dockerd { dir, sock, child };
        wait_for(60, "dockerd to answer", || {
            request_unix(&d.sock, "GET", "/_ping", &[], Duration::from_secs(5)).0 == 200
        });
        d
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join(".docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("docker CLI")
    }
}

/// SIGTERM to a peer we started, 20 s for it to end, then SIGKILL; waited for.
fn stop_child(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        // vfs layers are plain directories; the mount namespace leaves nothing mounted with --bridge=none
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A containerd of the test's own (root, state and socket in a scratch directory; the CRI plugin off), for
/// `ctr`.
#[allow(dead_code)]
pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    child: Child,
}

#[allow(dead_code)]
impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempdir("containerd");
        let sock = dir.join("c.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
                dir.join("root").display(),
                dir.join("state").display(),
                sock.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd (tests/run installs it with docker.io)");
        let c = Containerd { dir, sock, child };
        wait_for(30, "containerd to answer", || c.ctr(&["version"]).status.success());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl` against the TCP listener: (status, body).
pub fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_string())
}

/// Fill the volume at `dir` with a file, leaving about `leave` bytes free; returns its path.
pub fn filler(dir: &std::path::Path, leave: u64) -> std::path::PathBuf {
    let st = nix::sys::statvfs::statvfs(dir).unwrap();
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let path = dir.join("filler");
    let f = std::fs::File::create(&path).unwrap();
    let mut left = free.saturating_sub(leave);
    let chunk = vec![1u8; 1 << 20];
    let mut w = std::io::BufWriter::new(f);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if std::io::Write::write_all(&mut w, &chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = std::io::Write::flush(&mut w);
    path
}

/// A tmpfs of `size` (`4m`, `128m`) at a temporary directory, unmounted on drop: a volume that fills up.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(tag: &str, size: &str) -> Tmpfs {
        let root = tempdir(tag);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs needs root");
        Tmpfs(root)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The LAN registry's clients: plain requests by curl, a depot serving its registry.
#[allow(dead_code)]
pub mod lan {
    use super::*;

    /// (status, headers, body) of a request to the registry at `addr` over plain HTTP.
    pub fn get(addr: &str, method: &str, path: &str, headers: &[&str]) -> (u16, String, Vec<u8>) {
        request(&format!("http://{addr}"), method, path, headers, &[])
    }

    /// (status, headers, body) of a request to `base` (`http://…` or `https://…`), with curl's `extra` arguments.
    pub fn request(base: &str, method: &str, path: &str, headers: &[&str], extra: &[&str]) -> (u16, String, Vec<u8>) {
        let dir = tempdir("reg-get");
        let mut c = Command::new("curl");
        match method {
            "HEAD" => c.args(["-s", "-I"]),
            m => c.args(["-s", "-X", m]),
        };
        c.arg("-D").arg(dir.join("h")).arg("-o").arg(dir.join("b"));
        for h in headers {
            c.args(["-H", h]);
        }
        let o = c
            .args(extra)
            .args(["--max-time", "60", "-w", "%{http_code}"])
            .arg(format!("{base}{path}"))
            .output()
            .unwrap();
        let status = stdout(&o).trim().parse().unwrap_or(0);
        let head = std::fs::read_to_string(dir.join("h"))
            .unwrap_or_default()
            .to_lowercase();
        let body = std::fs::read(dir.join("b")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        (status, head, body)
    }

    pub fn code(body: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or_default().to_string()
    }

    /// A depot serving its registry anonymously over plain HTTP, with `extra` flags.
    pub fn registry_depot_with(extra: &[&str]) -> (Depot, String) {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--registry",
            &addr,
            "--registry-anonymous",
            "true",
            "--registry-plain-http",
            "true",
        ];
        args.extend_from_slice(extra);
        let d = Depot::start(&args);
        wait_for(20, "the registry to answer", || get(&addr, "GET", "/v2/", &[]).0 == 200);
        (d, addr)
    }

    /// The same, serving only what it holds.
    pub fn registry_depot() -> (Depot, String) {
        registry_depot_with(&["--registry-pull-through", "false"])
    }
}
