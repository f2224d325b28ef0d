//! Network helpers of the tests' own: a counting, throttling TCP proxy (to measure what a pull transfers), and a
//! hostile registry for what no real registry does (wrong digests, truncated or endless bodies, redirects, 429s,
//! stalls). Both listen on 127.0.0.1 only and stop when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn accept_loop(l: TcpListener, stop: Arc<AtomicBool>, mut on_conn: impl FnMut(TcpStream) + Send + 'static) {
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    on_conn(s)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

/// Counts the bytes upstream sends back (server → client), optionally at a capped rate.
pub struct Proxy {
    pub addr: String,
    served: Arc<AtomicU64>,
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// `rate`: bytes per second per connection, 0 for no cap.
    pub fn start(upstream: &str, rate: u64) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let served = Arc::new(AtomicU64::new(0));
        let rate = Arc::new(AtomicU64::new(rate));
        let stop = Arc::new(AtomicBool::new(false));
        let (up, sv, rt, st) = (upstream.to_string(), served.clone(), rate.clone(), stop.clone());
        accept_loop(l, stop.clone(), move |client| {
            let Ok(server) = TcpStream::connect(&up) else { return };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let (mut c, mut s) = (c2, s2);
                let _ = std::io::copy(&mut c, &mut s);
                let _ = s.shutdown(Shutdown::Write);
            });
            let (sv, rt, st) = (sv.clone(), rt.clone(), st.clone());
            std::thread::spawn(move || {
                let (mut s, mut c) = (server, client);
                let mut buf = vec![0u8; 64 * 1024];
                let start = Instant::now();
                let mut sent = 0u64;
                while !st.load(Ordering::Relaxed) {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sv.fetch_add(n as u64, Ordering::Relaxed);
                    sent += n as u64;
                    let r = rt.load(Ordering::Relaxed);
                    if r > 0 {
                        let due = Duration::from_secs_f64(sent as f64 / r as f64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                let _ = c.shutdown(Shutdown::Both);
            });
        });
        Proxy {
            addr,
            served,
            rate,
            stop,
        }
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub fn set_rate(&self, r: u64) {
        self.rate.store(r, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

/// How the hostile registry answers one request.
pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Declares `declared` bytes but sends only `body`, then closes.
    Truncated { declared: u64, body: Vec<u8> },
    /// Sends `prefix` then random bytes forever (until the client hangs up), declaring no length.
    Endless { prefix: Vec<u8> },
    /// Sends headers and `prefix`, then nothing for `secs`.
    Stall { declared: u64, prefix: Vec<u8>, secs: u64 },
}

impl Reply {
    pub fn ok(body: Vec<u8>, content_type: &str) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn status(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

pub struct Hostile {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        // A TLS ClientHello (clients try TLS first) is not HTTP: hang up at once, as a plain server would.
        if buf.is_empty() && !b[0].is_ascii_uppercase() {
            return None;
        }
        buf.push(b[0]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Some(Request { method, path, headers })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Status",
    }
}

impl Hostile {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (reqs, st) = (requests.clone(), stop.clone());
        accept_loop(l, stop.clone(), move |mut s| {
            let (handler, reqs, st) = (handler.clone(), reqs.clone(), st.clone());
            std::thread::spawn(move || {
                let Some(req) = read_request(&mut s) else { return };
                reqs.lock().unwrap().push(req.clone());
                let head = |status: u16, hs: &[(String, String)], len: Option<u64>| {
                    let mut h = format!("HTTP/1.1 {status} {}\r\nConnection: close\r\n", reason(status));
                    for (k, v) in hs {
                        h.push_str(&format!("{k}: {v}\r\n"));
                    }
                    if let Some(n) = len {
                        h.push_str(&format!("Content-Length: {n}\r\n"));
                    }
                    h.push_str("\r\n");
                    h.into_bytes()
                };
                match handler(&req) {
                    Reply::Full { status, headers, body } => {
                        let _ = s.write_all(&head(status, &headers, Some(body.len() as u64)));
                        if req.method != "HEAD" {
                            let _ = s.write_all(&body);
                        }
                    }
                    Reply::Truncated { declared, body } => {
                        let _ = s.write_all(&head(200, &[], Some(declared)));
                        let _ = s.write_all(&body);
                    }
                    Reply::Endless { prefix } => {
                        let _ = s.write_all(&head(200, &[], None));
                        let _ = s.write_all(&prefix);
                        let junk = vec![0x5au8; 64 * 1024];
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while !st.load(Ordering::Relaxed) && Instant::now() < deadline && s.write_all(&junk).is_ok() {}
                    }
                    Reply::Stall { declared, prefix, secs } => {
                        let _ = s.write_all(&head(200, &[], Some(declared)));
                        let _ = s.write_all(&prefix);
                        let deadline = Instant::now() + Duration::from_secs(secs);
                        while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                let _ = s.flush();
                let _ = s.shutdown(Shutdown::Both);
            });
        });
        Hostile { addr, requests, stop }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A forward HTTP proxy (absolute-form requests and CONNECT), counting the requests it relays.
pub struct ForwardProxy {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reqs = requests.clone();
        accept_loop(l, stop.clone(), move |mut client| {
            let reqs = reqs.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut b).unwrap_or(0) == 0 || head.len() > 64 * 1024 {
                        return;
                    }
                    head.push(b[0]);
                }
                let first = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
                reqs.lock().unwrap().push(first.clone());
                let mut parts = first.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let hostport = if method == "CONNECT" {
                    target.to_string()
                } else {
                    target
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_string()
                };
                let Ok(mut server) = TcpStream::connect(&hostport) else {
                    return;
                };
                if method == "CONNECT" {
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                } else {
                    let _ = server.write_all(&head);
                }
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Both);
                });
                let _ = std::io::copy(&mut client, &mut server);
                let _ = server.shutdown(Shutdown::Write);
                let _ = t.join();
            });
        });
        ForwardProxy { addr, requests, stop }
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
