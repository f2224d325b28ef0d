//! Who may use depot over TCP. The unix socket is trusted by its file mode and group; on TCP a request carries
//! a session (a cookie from `POST /api/v1/login`) or an API token (`Authorization: Bearer …`).
//!
//! - Users live in the database with argon2id password hashes (PHC strings). The first admin's password comes
//!   from the config or is generated once into a 0600 file.
//! - Sessions outlive a restart (the owner's page keeps working across one): the database keeps the sha256 of
//!   each session's id, never the id, so nothing on disk opens a session; memory holds the live ones.
//! - Tokens are 256 random bits shown once; the database keeps their sha256 (a KDF adds nothing to a secret that
//!   long).
//! - Failed logins are slowed per (user name, peer) and per peer (an IPv6 peer by its /64): after a few failures
//!   each further attempt must wait for a delay that doubles with every failure; an attempt inside the delay is
//!   refused without even checking the password, so a guesser learns nothing faster than the delay allows. An
//!   attempt is counted before its check, so parallel attempts get no more checks than sequential ones; no key
//!   is the user name alone, so a guesser elsewhere cannot lock the owner out. The peer is the TCP peer, or the
//!   client the NAS's loopback proxy names in `X-Forwarded-For`.
//! - The LAN registry's token endpoint trades an API token for a pull token ([`Auth::issue_pull_token`]): 256
//!   random bits that live [`PULL_TOKEN_LIFETIME`] in memory only (a restart ends them; a client asks again, as
//!   registries' clients do), at most [`MAX_PULL_TOKENS`] at once, and die with the API token they came from.

mod kdf;

use crate::store::db::{TokenRow, UserRow};
use crate::store::Db;
use crate::sync::Locked;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session lasts this long after its login or last refresh.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Failures allowed before attempts are delayed.
const FREE_FAILURES: u32 = 3;
/// The longest delay between attempts.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// Password checks at once: each takes argon2's 19 MiB, and a NAS has little memory.
const VERIFY_SLOTS: usize = 2;
/// Throttle records kept at most (the oldest go first): a flood of peers cannot grow memory without bound.
const MAX_THROTTLE_KEYS: usize = 10_000;
pub const ADMIN: &str = "admin";
/// How long a pull token of the LAN registry's token endpoint serves (the distribution spec's clients fetch a
/// new one when it runs out).
pub const PULL_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Pull tokens held at most: a client asking for one per request cannot grow memory without bound.
const MAX_PULL_TOKENS: usize = 10_000;
/// The prefix of a pull token, so that one is told from an API token at a glance.
const PULL_TOKEN_PREFIX: &str = "dpr_";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("too many failed logins: try again in {} s", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("no token with id {0}")]
    NoSuchToken(i64),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] crate::store::DbError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The unix socket: whoever may open it is trusted.
    Local,
    User {
        name: String,
        admin: bool,
    },
    Token {
        id: i64,
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie's value: 256 random bits.
    pub id: String,
    pub user: String,
    pub admin: bool,
    /// Unix seconds of the login.
    pub login_time: i64,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    fn delay(&self) -> Duration {
        if self.count < FREE_FAILURES {
            return Duration::ZERO;
        }
        let shift = (self.count - FREE_FAILURES).min(16);
        (Duration::from_secs(1) * (1u32 << shift)).min(MAX_DELAY)
    }

    /// How long an attempt must still wait, if at all.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let ready = self.last + self.delay();
        (ready > now).then(|| ready - now)
    }
}

pub struct Auth {
    db: Arc<Db>,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<HashMap<String, Failures>>,
    verify_slots: smol::lock::Semaphore,
    /// sha256 of a pull token → the API token it was issued for and when it expires.
    pull_tokens: Mutex<HashMap<String, PullToken>>,
}

#[derive(Debug, Clone)]
struct PullToken {
    id: i64,
    name: String,
    expires: Instant,
}

/// A login attempt counted by [`Auth::reserve`], to be checked by [`Auth::check`].
#[derive(Debug)]
pub struct Attempt {
    user: String,
    peer: Option<IpAddr>,
    keys: Vec<String>,
}

/// What a failed login counts against: the (user, peer) pair and the peer, never the user alone (a guesser
/// anywhere could then lock the owner out). An IPv6 peer counts by its /64, which one host usually has whole;
/// the unix socket (no peer) by the user.
fn throttle_keys(user: &str, peer: Option<IpAddr>) -> Vec<String> {
    // an IPv4-mapped IPv6 address is its IPv4 address
    let peer = peer.map(|p| match p.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => v4.to_string(),
    });
    match peer {
        Some(p) => vec![format!("user:{user}@{p}"), format!("peer:{p}")],
        None => vec![format!("user:{user}@local")],
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("the system's random source");
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// argon2id (19 MiB, 2 passes: the OWASP minimum) in PHC form; see [`kdf`] for where its memory goes.
pub fn hash_password(password: &str) -> String {
    kdf::hash(password, random_bytes::<16>())
}

fn verify_password(password: &str, phc: &str) -> bool {
    kdf::verify(password, phc)
}

fn token_sha256(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// The prefix of every API token, so that one is recognisable in a config file or a leak scanner.
pub const TOKEN_PREFIX: &str = "dpt_";

impl Auth {
    pub fn new(db: Arc<Db>) -> Auth {
        Auth {
            db,
            sessions: Mutex::default(),
            throttle: Mutex::default(),
            verify_slots: smol::lock::Semaphore::new(VERIFY_SLOTS),
            pull_tokens: Mutex::default(),
        }
    }

    /// Make sure an admin exists. With no users yet: `password` if the config gives one, else a generated one
    /// written to `<data_root>/admin-password` (0600), whose path is returned for the log. A password given in
    /// the config also replaces the admin's at every start, so that editing the config is the way back in.
    pub fn ensure_admin(&self, password: Option<&str>, data_root: &Path) -> Result<Option<PathBuf>, AuthError> {
        if let Some(p) = password {
            if p.len() < 8 {
                return Err(AuthError::Invalid("admin_password: at least 8 characters".into()));
            }
            let current = self.db.auth().user(ADMIN)?;
            if !current.as_ref().is_some_and(|u| verify_password(p, &u.password_hash)) {
                self.db.auth().put_user(&UserRow {
                    name: ADMIN.into(),
                    password_hash: hash_password(p),
                    admin: true,
                })?;
            }
            return Ok(None);
        }
        if self.db.auth().user_count()? > 0 {
            return Ok(None);
        }
        // 20 characters of an unambiguous alphabet: ~100 bits
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY3479";
        let generated: String = random_bytes::<20>()
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        let path = crate::store::DataRoot::new(data_root).admin_password();
        // Survives a crash as: the file whole (then the user row follows) or no file (a new one is made at the
        // next start, as no user exists yet).
        crate::fsutil::write_atomic(&path, format!("{generated}\n").as_bytes(), 0o600).map_err(|source| {
            AuthError::Io {
                context: format!("writing {}", path.display()),
                source,
            }
        })?;
        self.db.auth().put_user(&UserRow {
            name: ADMIN.into(),
            password_hash: hash_password(&generated),
            admin: true,
        })?;
        Ok(Some(path))
    }

    /// Take one attempt for `user` from `peer` before checking anything: refused while the pair or the peer
    /// must wait, else counted as a failure at once, so that a parallel burst gets no more checks than a
    /// sequence would. [`Auth::check`] clears the count on success.
    pub fn reserve(&self, user: &str, peer: Option<IpAddr>) -> Result<Attempt, AuthError> {
        let keys = throttle_keys(user, peer);
        let now = Instant::now();
        let mut t = self.throttle.locked();
        if let Some(retry_after) = keys.iter().filter_map(|k| t.get(k).and_then(|f| f.wait(now))).max() {
            return Err(AuthError::Throttled { retry_after });
        }
        while t.len() + keys.len() > MAX_THROTTLE_KEYS {
            let Some(oldest) = t.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone()) else {
                break;
            };
            t.remove(&oldest);
        }
        for k in &keys {
            let f = t.entry(k.clone()).or_insert(Failures { count: 0, last: now });
            f.count += 1;
            f.last = now;
        }
        Ok(Attempt {
            user: user.to_string(),
            peer,
            keys,
        })
    }

    /// One of the [`VERIFY_SLOTS`] password checks; wait for it without holding a thread.
    pub async fn verify_slot(&self) -> smol::lock::SemaphoreGuard<'_> {
        self.verify_slots.acquire().await
    }

    /// Check the password of a reserved attempt; blocking (argon2 takes tens of milliseconds and its 19 MiB
    /// for that long). Hold a [`Auth::verify_slot`] around it.
    pub fn check(&self, attempt: Attempt, password: &str) -> Result<Session, AuthError> {
        let row = self.db.auth().user(&attempt.user)?;
        let ok = match &row {
            Some(u) => verify_password(password, &u.password_hash),
            None => {
                verify_password(password, kdf::DECOY);
                false
            }
        };
        let Some(u) = row.filter(|_| ok) else {
            log::warn!(
                "failed login for user {:?}{}",
                attempt.user,
                attempt.peer.map(|p| format!(" from {p}")).unwrap_or_default()
            );
            return Err(AuthError::BadCredentials);
        };
        let mut t = self.throttle.locked();
        for k in &attempt.keys {
            t.remove(k);
        }
        drop(t);
        Ok(self.start_session(u.name, u.admin))
    }

    fn start_session(&self, user: String, admin: bool) -> Session {
        let s = Session {
            id: hex(&random_bytes::<32>()),
            user,
            admin,
            login_time: crate::store::db::now(),
            expires: Instant::now() + SESSION_LIFETIME,
        };
        self.persist(&s);
        let mut all = self.sessions.locked();
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        all.insert(s.id.clone(), s.clone());
        s
    }

    /// Keep `s` in the database (by its id's sha256). A failure is logged: the session still works until a
    /// restart.
    fn persist(&self, s: &Session) {
        let left = s.expires.saturating_duration_since(Instant::now()).as_secs() as i64;
        let row = crate::store::db::SessionRow {
            user: s.user.clone(),
            admin: s.admin,
            login_time: s.login_time,
            expires: crate::store::db::now() + left,
        };
        if let Err(e) = self.db.auth().put_session(&token_sha256(&s.id), &row) {
            log::warn!("keeping a session across restarts: {e}");
        }
    }

    /// The live session with this id: in memory, or kept from before a restart.
    pub fn session(&self, id: &str) -> Option<Session> {
        let mut all = self.sessions.locked();
        if let Some(s) = all.get(id).filter(|s| s.expires > Instant::now()) {
            return Some(s.clone());
        }
        let row = self.db.auth().session(&token_sha256(id)).ok().flatten()?;
        let left = (row.expires - crate::store::db::now()).max(0) as u64;
        let s = Session {
            id: id.to_string(),
            user: row.user,
            admin: row.admin,
            login_time: row.login_time,
            expires: Instant::now() + Duration::from_secs(left),
        };
        all.insert(s.id.clone(), s.clone());
        Some(s)
    }

    /// Extend a live session by [`SESSION_LIFETIME`] from now.
    pub fn refresh(&self, id: &str) -> Option<Session> {
        self.session(id)?;
        let mut all = self.sessions.locked();
        let s = all.get_mut(id).filter(|s| s.expires > Instant::now())?;
        s.expires = Instant::now() + SESSION_LIFETIME;
        let s = s.clone();
        drop(all);
        self.persist(&s);
        Some(s)
    }

    pub fn logout(&self, id: &str) -> Option<Session> {
        let s = self.session(id);
        if let Err(e) = self.db.auth().delete_session(&token_sha256(id)) {
            log::warn!("ending a kept session: {e}");
        }
        self.sessions.locked().remove(id);
        s
    }

    /// A new API token: the token itself (shown once) and its record.
    pub fn create_token(&self, name: &str) -> Result<(String, TokenRow), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "a token name is 1 to 100 printable characters".into(),
            ));
        }
        let token = format!("{TOKEN_PREFIX}{}", hex(&random_bytes::<32>()));
        let row = self.db.auth().create_token(name, &token_sha256(&token))?;
        Ok((token, row))
    }

    pub fn tokens(&self) -> Result<Vec<TokenRow>, AuthError> {
        Ok(self.db.auth().tokens()?)
    }

    pub fn revoke_token(&self, id: i64) -> Result<(), AuthError> {
        // the pull tokens it bought go first: none outlives the revocation, even should the delete fail
        self.pull_tokens.locked().retain(|_, t| t.id != id);
        if self.db.auth().delete_token(id)? {
            Ok(())
        } else {
            Err(AuthError::NoSuchToken(id))
        }
    }

    /// The token presented as a bearer, if it is one of ours.
    pub fn token(&self, presented: &str) -> Result<Option<TokenRow>, AuthError> {
        if !presented.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        Ok(self.db.auth().use_token(&token_sha256(presented))?)
    }
}

impl Auth {
    /// A pull token for the API token `(id, name)` a client showed the LAN registry's token endpoint, and how
    /// long it serves. When [`MAX_PULL_TOKENS`] are live the one closest to expiring makes room.
    pub fn issue_pull_token(&self, id: i64, name: &str) -> (String, Duration) {
        let token = format!("{PULL_TOKEN_PREFIX}{}", hex(&random_bytes::<32>()));
        let now = Instant::now();
        let mut all = self.pull_tokens.locked();
        all.retain(|_, t| t.expires > now);
        if all.len() >= MAX_PULL_TOKENS {
            if let Some(k) = all.iter().min_by_key(|(_, t)| t.expires).map(|(k, _)| k.clone()) {
                all.remove(&k);
            }
        }
        all.insert(
            token_sha256(&token),
            PullToken {
                id,
                name: name.to_string(),
                expires: now + PULL_TOKEN_LIFETIME,
            },
        );
        (token, PULL_TOKEN_LIFETIME)
    }

    /// The principal of a live pull token (the API token it was issued for).
    pub fn pull_token(&self, presented: &str) -> Option<Principal> {
        if !presented.starts_with(PULL_TOKEN_PREFIX) {
            return None;
        }
        let key = token_sha256(presented);
        let mut all = self.pull_tokens.locked();
        match all.get(&key) {
            Some(t) if t.expires > Instant::now() => Some(Principal::Token {
                id: t.id,
                name: t.name.clone(),
            }),
            Some(_) => {
                all.remove(&key);
                None
            }
            None => None,
        }
    }
}
