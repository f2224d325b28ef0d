//! Host name resolution without glibc. The NAS binaries are static; a static glibc that meets an `nsswitch.conf`
//! source other than `files`/`dns` (a NAS joined to a domain uses winbind or ldap) would load the NAS's own,
//! older `libnss_*.so`. So registry host names are resolved here: `/etc/hosts`, then DNS over UDP to the
//! nameservers of `/etc/resolv.conf`, honouring `search`, `ndots`, `timeout` and `attempts`.

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What `/etc/resolv.conf` says, with glibc's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut c = ResolvConf {
        nameservers: Vec::new(),
        ..ResolvConf::default()
    };
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words
                    .next()
                    .and_then(|w| w.split('%').next())
                    .and_then(|w| w.parse::<IpAddr>().ok())
                {
                    if c.nameservers.len() < 3 {
                        c.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
            }
            Some("search") | Some("domain") => c.search = words.map(|w| w.trim_end_matches('.').to_string()).collect(),
            Some("options") => {
                for o in words {
                    let (k, v) = o.split_once(':').unwrap_or((o, ""));
                    let n = v.parse::<u64>().ok();
                    match (k, n) {
                        ("ndots", Some(n)) => c.ndots = n.min(15) as usize,
                        ("timeout", Some(n)) => c.timeout = Duration::from_secs(n.clamp(1, 30)),
                        ("attempts", Some(n)) => c.attempts = n.clamp(1, 5) as u32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if c.nameservers.is_empty() {
        c.nameservers = ResolvConf::default().nameservers;
    }
    c
}

/// Addresses `/etc/hosts` gives `name` (case-insensitive), in file order.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next()?;
            let mut w = l.split_whitespace();
            let ip: IpAddr = w.next()?.split('%').next()?.parse().ok()?;
            w.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
        })
        .collect()
}

/// Names to ask DNS for, in order (glibc's `search`/`ndots` rule).
pub fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return vec![abs.to_string()];
    }
    let searched: Vec<String> = conf.search.iter().map(|s| format!("{name}.{s}")).collect();
    let dots = name.matches('.').count();
    let mut out = Vec::new();
    if dots >= conf.ndots {
        out.push(name.to_string());
        out.extend(searched);
    } else {
        out.extend(searched);
        out.push(name.to_string());
    }
    out
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_ne_bytes(b)
}

fn query_bytes(id: u16, name: &str, t: TYPE) -> io::Result<Vec<u8>> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    let n = Name::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}")))?;
    p.questions
        .push(Question::new(n, QTYPE::TYPE(t), QCLASS::CLASS(CLASS::IN), false));
    p.build_bytes_vec()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// The outcome of one name at one server.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Addrs(Vec<IpAddr>),
    /// The name does not exist (NXDOMAIN): try the next candidate name.
    NoName,
}

/// Parse a response to our query `id` for `name`; `None` for a packet that is not one (ignored, as a spoof).
fn parse_answer(bytes: &[u8], id: u16, name: &str) -> Option<(RCODE, Vec<IpAddr>)> {
    let p = Packet::parse(bytes).ok()?;
    if p.id() != id || !p.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let asked = p.questions.first().map(|q| q.qname.to_string())?;
    if !asked.trim_end_matches('.').eq_ignore_ascii_case(name) {
        return None;
    }
    let addrs = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(IpAddr::V4(Ipv4Addr::from(a.address))),
            RData::AAAA(a) => Some(IpAddr::V6(Ipv6Addr::from(a.address))),
            _ => None,
        })
        .collect();
    Some((p.rcode(), addrs))
}

/// Ask one server for A and AAAA records of `name` at once.
fn ask(server: SocketAddr, name: &str, timeout: Duration) -> io::Result<Answer> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    let ids = [random_id(), random_id()];
    sock.send(&query_bytes(ids[0], name, TYPE::A)?)?;
    sock.send(&query_bytes(ids[1], name, TYPE::AAAA)?)?;
    let deadline = Instant::now() + timeout;
    let mut got: [Option<(RCODE, Vec<IpAddr>)>; 2] = [None, None];
    let mut buf = [0u8; 1500];
    while got.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
            Err(e) => return Err(e),
        };
        for (i, id) in ids.iter().enumerate() {
            if got[i].is_none() {
                if let Some(a) = parse_answer(&buf[..n], *id, name) {
                    got[i] = Some(a);
                }
            }
        }
    }
    // IPv4 first: a NAS's network often has no IPv6 route.
    let mut addrs = Vec::new();
    let mut nxdomain = false;
    for (rcode, a) in got.iter().flatten() {
        nxdomain |= *rcode == RCODE::NameError;
        addrs.extend(a.iter().copied());
    }
    if !addrs.is_empty() {
        return Ok(Answer::Addrs(addrs));
    }
    if nxdomain {
        return Ok(Answer::NoName);
    }
    if got.iter().any(Option::is_some) {
        return Ok(Answer::Addrs(Vec::new()));
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer from nameserver {server}"),
    ))
}

/// The resolver the registry client uses.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub hosts_file: PathBuf,
    pub resolv_conf: PathBuf,
    /// Replaces the nameservers of `resolv.conf` (tests point this at a DNS server of their own).
    pub nameservers: Option<Vec<SocketAddr>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            hosts_file: "/etc/hosts".into(),
            resolv_conf: "/etc/resolv.conf".into(),
            nameservers: None,
        }
    }
}

impl Resolver {
    /// All addresses of `host`, from an IP literal, the hosts file or DNS, within `budget`.
    pub fn lookup(&self, host: &str, budget: Duration) -> io::Result<Vec<IpAddr>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let bare = host.trim_end_matches('.');
        let from_hosts = hosts_lookup(&std::fs::read_to_string(&self.hosts_file).unwrap_or_default(), bare);
        if !from_hosts.is_empty() {
            return Ok(from_hosts);
        }
        if bare.eq_ignore_ascii_case("localhost") {
            return Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        }
        let mut conf = parse_resolv_conf(&std::fs::read_to_string(&self.resolv_conf).unwrap_or_default());
        if let Some(ns) = &self.nameservers {
            conf.nameservers = ns.clone();
        }
        let deadline = Instant::now() + budget;
        let mut last_err = None;
        'names: for name in candidates(host, &conf) {
            for _ in 0..conf.attempts {
                for ns in &conf.nameservers {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break 'names;
                    }
                    match ask(*ns, &name, conf.timeout.min(left)) {
                        Ok(Answer::Addrs(a)) if !a.is_empty() => return Ok(a),
                        Ok(Answer::Addrs(_)) | Ok(Answer::NoName) => continue 'names,
                        Err(e) => last_err = Some(e),
                    }
                }
            }
        }
        Err(match last_err {
            Some(e) => io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")),
            None => io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {host}: no such host")),
        })
    }
}

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let authority = uri.authority().ok_or(ureq::Error::HostNotFound)?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let budget = if timeout.after.is_not_happening() {
            Duration::from_secs(30)
        } else {
            *timeout.after
        };
        let addrs = self.lookup(authority.host(), budget).map_err(|e| {
            log::debug!("{e}");
            ureq::Error::HostNotFound
        })?;
        let mut out = self.empty();
        for ip in addrs.into_iter().take(16) {
            out.push(SocketAddr::new(ip, port));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_parsing() {
        let c = parse_resolv_conf(
            "# comment\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\nnameserver bogus\nsearch lan corp.example.\noptions ndots:2 timeout:3 attempts:4 rotate\n",
        );
        assert_eq!(
            c.nameservers,
            vec!["192.168.1.1:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]
        );
        assert_eq!(c.search, vec!["lan", "corp.example"]);
        assert_eq!((c.ndots, c.timeout, c.attempts), (2, Duration::from_secs(3), 4));
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }

    #[test]
    fn hosts_and_candidates() {
        let hosts = "127.0.0.1 localhost\n192.168.1.10 nas.lan Registry # mine\n::1 localhost ip6-localhost\n";
        assert_eq!(
            hosts_lookup(hosts, "registry"),
            vec!["192.168.1.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(hosts_lookup(hosts, "localhost").len(), 2);
        assert!(hosts_lookup(hosts, "mine").is_empty());
        let conf = ResolvConf {
            search: vec!["lan".into()],
            ..ResolvConf::default()
        };
        assert_eq!(candidates("registry", &conf), vec!["registry.lan", "registry"]);
        assert_eq!(candidates("ghcr.io", &conf), vec!["ghcr.io", "ghcr.io.lan"]);
        assert_eq!(candidates("ghcr.io.", &conf), vec!["ghcr.io"]);
    }

    /// A DNS server of the test's own on 127.0.0.1: `reg.example` → 10.1.2.3 and fd00::7; NXDOMAIN otherwise;
    /// a reply with a wrong id first, which must be ignored.
    fn dns_server() -> SocketAddr {
        use simple_dns::rdata::{A, AAAA};
        use simple_dns::ResourceRecord;
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..64 {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let q = Packet::parse(&buf[..n]).unwrap();
                let question = q.questions[0].clone();
                let name = question.qname.to_string();
                let mut r = Packet::new_reply(q.id());
                r.questions.push(question.clone());
                if name == "reg.example" {
                    let rdata = match question.qtype {
                        QTYPE::TYPE(TYPE::A) => RData::A(A {
                            address: u32::from(Ipv4Addr::new(10, 1, 2, 3)),
                        }),
                        _ => RData::AAAA(AAAA {
                            address: u128::from("fd00::7".parse::<Ipv6Addr>().unwrap()),
                        }),
                    };
                    r.answers
                        .push(ResourceRecord::new(question.qname.clone(), CLASS::IN, 60, rdata));
                } else {
                    *r.rcode_mut() = RCODE::NameError;
                }
                let mut spoof = Packet::new_reply(q.id().wrapping_add(1));
                spoof.questions.push(question);
                spoof.answers.push(ResourceRecord::new(
                    Name::new("reg.example").unwrap(),
                    CLASS::IN,
                    60,
                    RData::A(A { address: 1 }),
                ));
                sock.send_to(&spoof.build_bytes_vec().unwrap(), from).unwrap();
                sock.send_to(&r.build_bytes_vec().unwrap(), from).unwrap();
            }
        });
        addr
    }

    #[test]
    fn dns_lookup_against_a_local_server() {
        let dir = crate::testutil::tempdir();
        std::fs::write(dir.join("hosts"), "10.9.9.9 pinned.example\n").unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            "search example\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        let r = Resolver {
            hosts_file: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            nameservers: Some(vec![dns_server()]),
        };
        let t = Duration::from_secs(5);
        assert_eq!(
            r.lookup("reg.example", t).unwrap(),
            vec!["10.1.2.3".parse::<IpAddr>().unwrap(), "fd00::7".parse().unwrap()]
        );
        assert_eq!(
            r.lookup("reg", t).unwrap()[0],
            "10.1.2.3".parse::<IpAddr>().unwrap(),
            "through the search list"
        );
        assert_eq!(
            r.lookup("pinned.example", t).unwrap(),
            vec!["10.9.9.9".parse::<IpAddr>().unwrap()],
            "hosts file first"
        );
        assert_eq!(r.lookup("[::1]", t).unwrap(), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        let e = r.lookup("missing.example", t).unwrap_err();
        assert!(e.to_string().contains("cannot resolve missing.example"), "{e}");
        // a silent server: bounded by the budget
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r2 = Resolver {
            nameservers: Some(vec![silent.local_addr().unwrap()]),
            ..r
        };
        let start = Instant::now();
        assert!(r2.lookup("reg.example", Duration::from_millis(300)).is_err());
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
