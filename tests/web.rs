//! The owner's page: in a real browser (tests/web/browser.py drives Debian's chromium against a daemon on a
//! small volume and the real registries), and its security headers and origin checks with curl.

mod common;

use common::{curl, free_port, peers, stderr, stdout, tempdir, Depot};
use std::path::Path;
use std::process::Command;

/// A tmpfs of `mb` MiB at `dir`, unmounted on drop: a volume small enough for a download not to fit.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount tmpfs: {}", stderr(&o));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn the_owners_page_works_in_a_real_browser() {
    let p = peers();
    let dir = tempdir("web");
    let root = dir.join("data");
    let _volume = Tmpfs::mount(&root, 256);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    let out = common::output_within(
        {
            let mut c = Command::new("python3");
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/browser.py"))
                .env("DEPOT_BIN", common::bin())
                .env("DEPOT_ROOT", &root)
                .env("PLAIN", &p.plain)
                .env("BASIC", &p.basic)
                .env("SHOTS", &shots);
            c
        },
        400,
    );
    let log = std::fs::read_to_string(root.with_extension("log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}\ndaemon log (tail):\n{}",
        stdout(&out),
        stderr(&out),
        log.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stdout(&out).contains("every step passed"));
    for s in [
        "login",
        "images",
        "images-phone-dark",
        "get",
        "downloads",
        "registries",
        "events",
    ] {
        assert!(
            shots.join(format!("{s}.png")).exists()
                || shots.join(format!("{s}-dark.png")).exists()
                || s.ends_with("dark"),
            "screenshot {s}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_answer_on_tcp_carries_the_policy_and_foreign_origins_are_refused() {
    let addr = format!("127.0.0.1:{}", free_port());
    let d = Depot::start(&["--tcp", &addr]);
    let headers = |path: &str, extra: &[&str]| {
        let mut args = vec!["-D", "-", "-o", "/dev/null"];
        args.extend_from_slice(extra);
        curl(&format!("http://{addr}{path}"), &args)
    };
    for path in [
        "/",
        "/ui/app.js",
        "/ui/app.css",
        "/ui/icon.svg",
        "/ui/nothing",
        "/api/v1/image/",
        "/api/v1/nothing",
    ] {
        let (code, h) = headers(path, &["--compressed"]);
        let h = h.to_lowercase();
        assert!(
            h.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{path} ({code}): {h}"
        );
        assert!(h.contains("x-content-type-options: nosniff"), "{path}: {h}");
        assert!(!h.contains("unsafe-inline"), "{path}: {h}");
    }
    let (code, h) = headers("/", &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(code, 200);
    assert!(h.to_lowercase().contains("content-encoding: gzip"), "{h}");
    let (code, body) = curl(&format!("http://{addr}/"), &[]);
    assert_eq!(code, 200);
    assert!(body.contains("ui/app.js") && !body.contains("<script>"), "{body}");
    // a state-changing request from another site's page is refused before anything runs
    let (code, body) = curl(
        &format!("http://{addr}/api/v1/login"),
        &[
            "-X",
            "POST",
            "-H",
            "Origin: http://evil.example",
            "-d",
            "username=admin&password=x",
        ],
    );
    assert_eq!(code, 403, "{body}");
    let (code, _) = curl(
        &format!("http://{addr}/api/v1/image/downloads/1"),
        &["-X", "DELETE", "-H", "Sec-Fetch-Site: same-origin"],
    );
    assert_eq!(code, 403, "a browser's DELETE without Origin");
    // the page behind the NAS's proxy: its own origin, forwarded
    let (code, body) = curl(
        &format!("http://{addr}/api/v1/login"),
        &[
            "-X",
            "POST",
            "-H",
            "Origin: https://mynas.local",
            "-H",
            "X-Forwarded-Host: mynas.local",
            "-d",
            "username=admin&password=wrong",
        ],
    );
    assert_eq!(code, 401, "judged on the password, not refused for its origin: {body}");
    // exact origins: a page on another port of this host is another origin, even for the logged-in owner
    let pw = std::fs::read_to_string(d.root.join("admin-password")).unwrap();
    let jar = d.root.with_extension("jar");
    let jar = jar.to_str().unwrap();
    let login = |extra: &[&str]| {
        let mut args = vec!["-D", "-", "-c", jar, "--data-urlencode", "username=admin"];
        let pw_arg = format!("password={}", pw.trim());
        args.extend_from_slice(&["--data-urlencode", &pw_arg]);
        args.extend_from_slice(extra);
        curl(&format!("http://{addr}/api/v1/login"), &args)
    };
    let set_cookie = |h: &str| {
        h.lines()
            .find(|l| l.to_lowercase().starts_with("set-cookie:"))
            .unwrap()
            .to_string()
    };
    let (code, h) = login(&[]);
    assert_eq!(code, 200, "{h}");
    let cookie = set_cookie(&h);
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let remove = |origin: &str| {
        curl(
            &format!("http://{addr}/api/v1/background/image_remove"),
            &[
                "-b",
                jar,
                "-X",
                "POST",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"images":["no-such-image:1"]}"#,
            ],
        )
    };
    let other = free_port();
    for forged in [
        format!("http://127.0.0.1:{other}"),
        format!("https://{addr}"),
        "http://127.0.0.1".to_string(),
        format!("http://localhost:{}", addr.rsplit_once(':').unwrap().1),
    ] {
        let (code, body) = remove(&forged);
        assert_eq!(code, 403, "{forged}: {body}");
    }
    let (code, body) = remove(&format!("http://{addr}"));
    assert_ne!(code, 403, "the page's own origin: {body}");
    assert_ne!(code, 401, "logged in: {body}");
    // through the NAS's HTTPS proxy the session cookie is Secure
    let (code, h) = login(&[
        "-H",
        "Origin: https://mynas.local",
        "-H",
        "X-Forwarded-Host: mynas.local",
        "-H",
        "X-Forwarded-Proto: https",
    ]);
    assert_eq!(code, 200, "{h}");
    let cookie = set_cookie(&h);
    assert!(cookie.ends_with("; Secure") || cookie.contains("; Secure;"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    drop(d);
}
