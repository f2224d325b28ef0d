//! The QPKG: built by depot's own assembler, read back by an independent reader written here, then installed
//! into a simulated QTS root (a chroot with busybox-static as /bin/sh and friends, stand-ins for getcfg/setcfg,
//! qpkg.conf, platform.conf, a Public share and /mnt/HDA_ROOT in /proc/mounts), started, stopped, upgraded and
//! uninstalled. Needs root (chroot, mknod) and the static binaries of `cross/build.sh`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn assemble(arch: &str, binary: &Path, out: &Path) -> PathBuf {
    assemble_from(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("qpkg"),
        arch,
        Some(binary),
        out,
    )
}

fn assemble_from(src: &Path, arch: &str, binary: Option<&Path>, out: &Path) -> PathBuf {
    let mut c = Command::new(env!("CARGO_BIN_EXE_depot-qpkg"));
    c.args(["--arch", arch, "--out"]).arg(out).arg("--src").arg(src);
    if let Some(b) = binary {
        c.arg("--binary").arg(b);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    PathBuf::from(stdout(&o).trim())
}

/// What an independent reader finds in a .qpkg.
#[derive(Debug)]
struct Parsed {
    script_len: usize,
    ctrl_len: usize,
    data_len: usize,
    control_members: Vec<String>,
    data_members: Vec<String>,
    name: String,
    version: String,
    flag: String,
    checksum: String,
}

fn header_value(header: &str, key: &str) -> usize {
    let line = header
        .lines()
        .find(|l| l.starts_with(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in header"));
    line[key.len() + 1..].parse().unwrap()
}

fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).to_string();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        out.push((name, b));
    }
    out
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out).unwrap();
    out
}

fn parse(file: &[u8]) -> Parsed {
    // the header is text up to the control tar (whose first bytes are a name followed by NULs)
    let text_end = file.iter().position(|&b| b == 0).expect("binary after the header");
    let text = String::from_utf8_lossy(&file[..text_end]);
    let (script_len, ctrl_len, data_len) = (
        header_value(&text, "script_len"),
        header_value(&text, "ctrl_len"),
        header_value(&text, "data_len"),
    );
    let header = std::str::from_utf8(&file[..script_len]).expect("ASCII header");
    assert!(header.starts_with("#!/bin/sh\n"));
    assert!(
        header.ends_with("\nexit 1\n"),
        "script_len is the header's own length, ending in `exit 1`"
    );
    let control = &file[script_len..script_len + ctrl_len];
    assert_eq!(
        &control[257..262],
        b"ustar",
        "control.tar starts right after the header"
    );
    assert_eq!(
        ctrl_len % 10240,
        0,
        "control.tar is whole 10240-byte records, as GNU tar writes"
    );
    let ctl = tar_members(control);
    assert_eq!(ctl.len(), 1);
    assert_eq!(ctl[0].0, "./control.tar.gz");
    let control_members = tar_members(&gunzip(&ctl[0].1)).into_iter().map(|m| m.0).collect();
    let data = &file[script_len + ctrl_len..script_len + ctrl_len + data_len];
    assert_eq!(&data[..2], &[0x1f, 0x8b], "data.tar.gz follows control.tar");
    let data_members = tar_members(&gunzip(data)).into_iter().map(|m| m.0).collect();
    assert_eq!(
        script_len + ctrl_len + data_len + 100,
        file.len(),
        "then exactly the 100-byte tail"
    );
    let tail = std::str::from_utf8(&file[file.len() - 100..]).unwrap();
    Parsed {
        script_len,
        ctrl_len,
        data_len,
        control_members,
        data_members,
        name: tail[60..80].trim_end().into(),
        version: tail[80..90].trim_end().into(),
        flag: tail[90..].into(),
        checksum: tail[40..50].into(),
    }
}

/// A simulated QTS root for chroot.
struct Qts {
    root: PathBuf,
}

impl Qts {
    fn new(platform: &str) -> Qts {
        let root = tempdir("qts");
        for d in [
            "bin",
            "sbin",
            "usr/bin",
            "usr/sbin",
            "etc/config",
            "etc/init.d",
            "etc/rcS.d",
            "etc/rcK.d",
            "proc",
            "dev",
            "tmp",
            "var/run",
            "mnt/HDA_ROOT",
            "share/CACHEDEV1_DATA/Public",
            "share/CACHEDEV1_DATA/.qpkg",
            "home/httpd/RSS/images",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        run(Command::new("chroot")
            .arg(&root)
            .args(["/bin/busybox", "--install", "-s"]));
        let qts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qts");
        for t in ["getcfg", "setcfg"] {
            std::fs::copy(qts.join(t), root.join("sbin").join(t)).unwrap();
        }
        std::fs::write(root.join("etc/config/qpkg.conf"), "").unwrap();
        std::fs::write(
            root.join("etc/config/smb.conf"),
            "[global]\nworkgroup = NAS\n[Public]\npath = /share/CACHEDEV1_DATA/Public\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/platform.conf"), format!("Platform = {platform}\n")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "admin:x:0:0:admin:/share/homes/admin:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "administrators:x:0:admin\neveryone:x:100:admin\n",
        )
        .unwrap();
        std::fs::write(
            root.join("proc/mounts"),
            "/dev/md9 /mnt/HDA_ROOT ext3 rw,data=ordered 0 0\n",
        )
        .unwrap();
        run(Command::new("mknod")
            .args(["-m", "666"])
            .arg(root.join("dev/null"))
            .args(["c", "1", "3"]));
        Qts { root }
    }

    fn sh(&self, args: &[&str]) -> Output {
        Command::new("chroot")
            .arg(&self.root)
            .arg("/bin/sh")
            .args(args)
            .env_clear()
            .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
            .output()
            .unwrap()
    }

    /// The depot CLI installed in this root, run in it as the NAS's own scripts run it.
    fn depot(&self, args: &[&str]) -> Output {
        Command::new("chroot")
            .arg(&self.root)
            .arg("/share/CACHEDEV1_DATA/.qpkg/depot/depot")
            .args(args)
            .env_clear()
            .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
            .output()
            .unwrap()
    }

    /// Install a package copied in as /tmp/NAME.qpkg; the header's exit code and output.
    fn install(&self, pkg: &Path) -> Output {
        let name = pkg.file_name().unwrap().to_str().unwrap();
        std::fs::copy(pkg, self.path(&format!("/tmp/{name}"))).unwrap();
        self.sh(&[&format!("/tmp/{name}")])
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn qpkg_conf(&self) -> String {
        std::fs::read_to_string(self.path("/etc/config/qpkg.conf")).unwrap()
    }

    /// Every path in the root, for before/after comparisons.
    fn listing(&self) -> Vec<String> {
        let out = Command::new("find").arg(&self.root).output().unwrap();
        let mut v: Vec<String> = stdout(&out)
            .lines()
            .map(|l| l.trim_start_matches(self.root.to_str().unwrap()).to_string())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Qts {
    fn drop(&mut self) {
        // stop a daemon a failed assertion left running (by its pidfile, which only this root has)
        if let Ok(pid) = std::fs::read_to_string(self.path("/var/run/depot.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn run(c: &mut Command) {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{c:?}: {}", stderr(&o));
}

fn ping(sock: &Path) -> u16 {
    request_unix(sock, "GET", "/_ping", &[], std::time::Duration::from_secs(10)).0
}

#[test]
fn package_layout_read_back_independently() {
    let out = tempdir("qpkg-out");
    let pkg = assemble("x86_64", &static_binary("x86_64-unknown-linux-gnu"), &out);
    assert_eq!(
        pkg.file_name().unwrap().to_str().unwrap(),
        format!("depot_{VERSION}_x86_64.qpkg")
    );
    let bytes = std::fs::read(&pkg).unwrap();
    let p = parse(&bytes);
    assert_eq!(
        (p.name.as_str(), p.version.as_str(), p.flag.as_str()),
        ("depot", VERSION, "QNAPQPKG  ")
    );
    let want = ((bytes.len() as u64) * 3589 + 1_000_000_000).to_string();
    assert_eq!(p.checksum, want[..10], "checksum over the whole file, tail included");
    let mut cm = p.control_members.clone();
    cm.sort();
    assert_eq!(
        cm,
        vec!["./built_info", "./package_routines", "./qinstall.sh", "./qpkg.cfg"]
    );
    let mut dm = p.data_members.clone();
    dm.sort();
    assert_eq!(
        dm,
        vec![
            "./.qpkg_icon.gif",
            "./.qpkg_icon_80.gif",
            "./.qpkg_icon_gray.gif",
            "./board.conf",
            "./catalog.json",
            "./depot",
            "./depot.conf.default",
            "./depot.sh"
        ]
    );
    assert!(p.script_len > 0 && p.ctrl_len > 0 && p.data_len > 1_000_000);
    // the shipped catalog is valid JSON
    let data = gunzip(&bytes[p.script_len + p.ctrl_len..p.script_len + p.ctrl_len + p.data_len]);
    let members = tar_members(&data);
    let cat = &members.iter().find(|m| m.0 == "./catalog.json").unwrap().1;
    assert!(
        serde_json::from_slice::<serde_json::Value>(cat)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    let board = String::from_utf8(members.iter().find(|m| m.0 == "./board.conf").unwrap().1.clone()).unwrap();
    assert!(board.contains("name = x86_64"));
}

#[test]
fn install_start_stop_upgrade_uninstall_in_a_simulated_qts() {
    let p = peers();
    let out = tempdir("qpkg-out");
    let pkg = assemble("x86_64", &static_binary("x86_64-unknown-linux-gnu"), &out);
    let qts = Qts::new("X86_DUMMY");
    let before = qts.listing();
    // the owner's port for the page (8999 unless qpkg.conf says; a free one here), kept by the installer
    let port = common::free_port();
    std::fs::write(
        qts.path("/etc/config/qpkg.conf"),
        format!("[depot]\nWeb_Port = {port}\n"),
    )
    .unwrap();
    std::fs::copy(&pkg, qts.path("/tmp/depot.qpkg")).unwrap();

    let o = qts.sh(&["/tmp/depot.qpkg"]);
    assert_eq!(
        o.status.code(),
        Some(10),
        "install exits 10: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let dir = "/share/CACHEDEV1_DATA/.qpkg/depot";
    for f in [
        "depot",
        "depot.sh",
        "board.conf",
        "depot.conf",
        "catalog.json",
        ".uninstall.sh",
    ] {
        assert!(qts.path(&format!("{dir}/{f}")).exists(), "{f} installed");
    }
    assert!(
        !qts.path("/share/CACHEDEV1_DATA/.qpkg/.tmp-depot").exists(),
        "the extraction dir is cleaned up"
    );
    assert_eq!(
        std::fs::read_link(qts.path("/etc/init.d/depot.sh")).unwrap(),
        PathBuf::from(format!("{dir}/depot.sh"))
    );
    assert!(std::fs::symlink_metadata(qts.path("/etc/rcS.d/QS101depot")).is_ok());
    assert!(std::fs::symlink_metadata(qts.path("/etc/rcK.d/QK899depot")).is_ok());
    let conf = qts.qpkg_conf();
    for want in [
        "[depot]",
        "Name = depot",
        &format!("Version = {VERSION}"),
        "Enable = TRUE",
        &format!("Install_Path = {dir}"),
        &format!("Shell = {dir}/depot.sh"),
        "RC_Number = 101",
        // App Center's Open: the NAS's web server at /depot, proxied to depot's loopback port
        "WebUI = /",
        "Use_Proxy = 1",
        "Proxy_Path = /depot",
        &format!("Web_Port = {port}"),
    ] {
        assert!(conf.lines().any(|l| l == want), "qpkg.conf lacks {want:?}:\n{conf}");
    }
    assert_eq!(
        std::fs::read_to_string(qts.path("/tmp/update_process")).unwrap().trim(),
        "100"
    );
    for icon in ["depot.gif", "depot_80.gif", "depot_gray.gif"] {
        let b = std::fs::read(qts.path(&format!("/home/httpd/RSS/images/{icon}"))).unwrap();
        assert!(b.starts_with(b"GIF89a"), "{icon} for App Center");
    }

    // the init script started depot: it answers on its socket, its store is on the data volume
    let sock = qts.path("/var/run/depot.sock");
    assert_eq!(ping(&sock), 200);
    // and serves the owner's page on the registered port, on loopback, with its policy
    let (code, head) = common::curl(&format!("http://127.0.0.1:{port}/"), &["-D", "-", "-o", "/dev/null"]);
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    let data_root = qts.path("/share/CACHEDEV1_DATA/.depot");
    assert!(
        data_root.join("depot.db").exists(),
        "the data root is on the data volume, outside the package"
    );
    let gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&sock).unwrap());
    assert_eq!(gid, 0, "socket group `administrators` (gid 0 in this root)");
    // and it works: pull through it
    let (s, _, _) = request_unix(
        &sock,
        "POST",
        &format!("/images/create?fromImage={}%2Ftest&tag=1", p.plain.replace(':', "%3A")),
        &[],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(s, 200);
    let log = std::fs::read_to_string(qts.path(&format!("{dir}/depot.log"))).unwrap();
    assert!(
        log.contains("board x86_64"),
        "the package's board profile is used: {log}"
    );
    // the CLI on the NAS finds the daemon with no flags: QTS is detected, the board's socket is used
    let o = Command::new("chroot")
        .arg(&qts.root)
        .arg(format!("{dir}/depot"))
        .arg("images")
        .env_clear()
        .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("{}/test", p.plain)), "{}", stdout(&o));

    // stop, then start again
    let o = qts.sh(&["/etc/init.d/depot.sh", "stop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!sock.exists() && !qts.path("/var/run/depot.pid").exists());
    assert_eq!(ping(&sock), 0, "nothing answers after stop");
    let o = qts.sh(&["/etc/init.d/depot.sh", "start"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ping(&sock), 200);
    // start honours Enable
    qts.sh(&["/etc/init.d/depot.sh", "stop"]);
    run(Command::new("chroot").arg(&qts.root).args([
        "/sbin/setcfg",
        "depot",
        "Enable",
        "FALSE",
        "-f",
        "/etc/config/qpkg.conf",
    ]));
    let o = qts.sh(&["/etc/init.d/depot.sh", "start"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("disabled"));
    assert_eq!(ping(&sock), 0);
    run(Command::new("chroot").arg(&qts.root).args([
        "/sbin/setcfg",
        "depot",
        "Enable",
        "TRUE",
        "-f",
        "/etc/config/qpkg.conf",
    ]));
    assert!(qts.sh(&["/etc/init.d/depot.sh", "restart"]).status.success());
    assert_eq!(ping(&sock), 200);

    // upgrade: the config survives, the store too
    let conf_path = qts.path(&format!("{dir}/depot.conf"));
    let mut c = std::fs::read_to_string(&conf_path).unwrap();
    c.push_str("concurrent_downloads = 1\n");
    std::fs::write(&conf_path, &c).unwrap();
    let o = qts.sh(&["/tmp/depot.qpkg"]);
    assert_eq!(o.status.code(), Some(10), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&conf_path).unwrap(),
        c,
        "depot.conf kept across the upgrade"
    );
    assert_eq!(ping(&sock), 200);
    let (_, _, body) = request_unix(&sock, "GET", "/images/json", &[], std::time::Duration::from_secs(10));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "images survive the upgrade"
    );
    assert_eq!(qts.qpkg_conf().matches("[depot]").count(), 1);

    // uninstall: nothing left but the data root (and QTS's own progress file)
    let o = qts.sh(&[&format!("{dir}/.uninstall.sh")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ping(&sock), 0);
    assert_eq!(qts.qpkg_conf(), "", "the qpkg.conf section is gone");
    let after: Vec<String> = qts
        .listing()
        .into_iter()
        .filter(|p| {
            !p.starts_with("/share/CACHEDEV1_DATA/.depot") && p != "/tmp/update_process" && p != "/tmp/depot.qpkg"
        })
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|p| p != "/etc/config/qpkg.conf.tmp")
        .collect();
    assert_eq!(after, before, "uninstall leaves nothing but the data root");
    assert!(data_root.join("depot.db").exists(), "the data root stays");
}

#[test]
fn wrong_arch_is_refused_by_the_header() {
    let out = tempdir("qpkg-out");
    // the payload does not matter to the header's check; ship the aarch64 binary if it was built
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/aarch64-unknown-linux-gnu/dist/depot");
    let bin = if bin.exists() {
        bin
    } else {
        static_binary("x86_64-unknown-linux-gnu")
    };
    let pkg = assemble("arm_64", &bin, &out);
    let qts = Qts::new("X86_DUMMY");
    let before = qts.listing();
    std::fs::copy(&pkg, qts.path("/tmp/depot.qpkg")).unwrap();
    let o = qts.sh(&["/tmp/depot.qpkg"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("this package is for arm_64"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(qts.path("/tmp/update_process")).unwrap().trim(),
        "-1"
    );
    let after: Vec<String> = qts
        .listing()
        .into_iter()
        .filter(|p| p != "/tmp/update_process" && p != "/tmp/depot.qpkg")
        .collect();
    assert_eq!(after, before, "nothing installed");
    // arm-x41 refuses the Mindspeed platform even on an armv7l CPU
    let pkg = assemble("arm-x41", &bin, &out);
    let qts = Qts::new("ARM_MS");
    // /bin/uname is a symlink to /bin/busybox, absolute: replace the link, never write through it (from outside
    // the chroot it would reach the host's busybox)
    std::fs::remove_file(qts.path("/bin/uname")).unwrap();
    std::fs::write(qts.path("/bin/uname"), "#!/bin/sh\necho armv7l\n").unwrap();
    std::fs::set_permissions(
        qts.path("/bin/uname"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::copy(&pkg, qts.path("/tmp/depot.qpkg")).unwrap();
    let o = qts.sh(&["/tmp/depot.qpkg"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("this package is for arm-x41") && stderr(&o).contains("ARM_MS"),
        "{}",
        stderr(&o)
    );
}

/// The example app package of `qpkg/examples/hello-app`, its images.list replaced by `images`, built by the
/// project's assembler.
fn hello_app(images: &[&str], out: &Path) -> PathBuf {
    let src = tempdir("hello-app-src");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("qpkg/examples/hello-app");
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", example.display()))
        .arg(&src));
    std::fs::write(
        src.join("shared/images.list"),
        format!("# tested with\n{}\n", images.join("\n")),
    )
    .unwrap();
    let pkg = assemble_from(&src, "x86_64", None, out);
    std::fs::remove_dir_all(&src).unwrap();
    pkg
}

fn pins_of(qts: &Qts, owner: &str) -> Vec<String> {
    let o = qts.depot(&["pin", "ls", owner]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: Vec<String> = stdout(&o)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect();
    v.sort();
    v
}

/// An app's install package asks depot for its images (`depot ensure`, pinning them), an upgrade lets go of the
/// images the new version no longer lists, the uninstall releases the rest (`depot pin rm`), and an install whose
/// image cannot be fetched installs nothing and keeps no pin.
#[test]
fn an_app_package_ensures_its_images_and_releases_them_on_uninstall() {
    let p = peers();
    let out = tempdir("qpkg-out");
    let qts = Qts::new("X86_DUMMY");
    std::fs::write(
        qts.path("/etc/config/qpkg.conf"),
        format!("[depot]\nWeb_Port = {}\n", common::free_port()),
    )
    .unwrap();
    let o = qts.install(&assemble("x86_64", &static_binary("x86_64-unknown-linux-gnu"), &out));
    assert_eq!(o.status.code(), Some(10), "{}\n{}", stdout(&o), stderr(&o));
    let sock = qts.path("/var/run/depot.sock");
    let t = std::time::Duration::from_secs(60);
    let images = |sock: &Path| -> Vec<serde_json::Value> {
        let (_, _, body) = request_unix(sock, "GET", "/images/json", &[], t);
        serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    // test:1 is here already and is named by digest; multi:1 is not here and is named by tag
    let test1 = format!("{}/test:1", p.plain);
    let multi = format!("{}/multi:1", p.plain);
    let (s, _, _) = request_unix(
        &sock,
        "POST",
        &format!("/images/create?fromImage={}%2Ftest&tag=1", p.plain.replace(':', "%3A")),
        &[],
        t,
    );
    assert_eq!(s, 200);
    let by_digest = images(&sock)[0]["RepoDigests"][0].as_str().unwrap().to_string();

    let v1 = hello_app(&[&by_digest, &multi], &out.join("v1"));
    let o = qts.install(&v1);
    assert_eq!(o.status.code(), Some(10), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("pulled") || stdout(&o).contains("present"),
        "ensure's lines: {}",
        stdout(&o)
    );
    let app = "/share/CACHEDEV1_DATA/.qpkg/hello-app";
    assert_eq!(
        std::fs::read_to_string(qts.path(&format!("{app}/state")))
            .unwrap()
            .trim(),
        "started"
    );
    assert!(qts.qpkg_conf().contains("[hello-app]"));
    let mut want = vec![by_digest.clone(), multi.clone()];
    want.sort();
    assert_eq!(pins_of(&qts, "hello-app"), want);
    assert_eq!(images(&sock).len(), 2, "multi:1 was pulled by the install");
    // a prune of everything passes both by
    let (s, _, _) = request_unix(
        &sock,
        "POST",
        "/images/prune?filters=%7B%22dangling%22%3A%5B%22false%22%5D%7D",
        &[],
        t,
    );
    assert_eq!(s, 200);
    assert_eq!(images(&sock).len(), 2, "pinned images survive prune -a");
    // the boot-time start finds them present at once
    let o = qts.sh(&["/etc/init.d/hello-app.sh", "restart"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // version 2 needs only multi:1: the digest pin on test:1 goes, so a prune frees it
    let v2 = hello_app(&[&multi], &out.join("v2"));
    let o = qts.install(&v2);
    assert_eq!(o.status.code(), Some(10), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(pins_of(&qts, "hello-app"), vec![multi.clone()]);
    request_unix(
        &sock,
        "POST",
        "/images/prune?filters=%7B%22dangling%22%3A%5B%22false%22%5D%7D",
        &[],
        t,
    );
    let left: Vec<String> = images(&sock)
        .iter()
        .map(|i| i["RepoTags"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        vec![multi.clone()],
        "the image version 1 needed is pruned once released"
    );

    // uninstall: the pins go, the image stays until pruned
    let o = qts.sh(&[&format!("{app}/.uninstall.sh")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(pins_of(&qts, "hello-app").is_empty());
    assert!(!qts.path(app).exists() && !qts.qpkg_conf().contains("[hello-app]"));
    assert_eq!(images(&sock).len(), 1);
    request_unix(
        &sock,
        "POST",
        "/images/prune?filters=%7B%22dangling%22%3A%5B%22false%22%5D%7D",
        &[],
        t,
    );
    assert!(images(&sock).is_empty(), "nothing keeps it any more");

    // an image that cannot be fetched: the install fails, says why, installs nothing and keeps no pin
    let bad = hello_app(&[&test1, &format!("{}/nosuch:1", p.plain)], &out.join("bad"));
    let o = qts.install(&bad);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("could not fetch this app's images"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(qts.path("/tmp/update_process")).unwrap().trim(),
        "-1"
    );
    assert!(!qts.path(app).exists() && !qts.qpkg_conf().contains("[hello-app]"));
    assert!(
        pins_of(&qts, "hello-app").is_empty(),
        "a failed fresh install keeps no pin"
    );
    assert!(qts.sh(&["/etc/init.d/depot.sh", "stop"]).status.success());
}
