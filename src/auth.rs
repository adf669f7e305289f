//! Tokens, who they are, and what each may do.
//!
//! Authentication is on unless `--no-auth` is given, which is refused unless the server
//! binds a loopback address. Tokens come from:
//! * `--token` / `WORKERHUB_TOKEN`: admin tokens (named `admin`, `admin-2`, ...);
//! * `--tokens FILE`: named tokens with a role, stored as SHA-256 hashes only;
//! * neither: one admin token generated (256 random bits) and kept in `DATA_DIR/token`
//!   (mode 0600) so it survives restarts.
//!
//! Dashboards present a token as `Authorization: Bearer TOKEN`, as the `workerhub_token`
//! cookie (HttpOnly, SameSite=Strict: what the page gets), or, for WebSocket upgrades
//! and the page's first load only, as `?token=`. Every token is compared, in constant
//! time, by its hash. Failed attempts are counted per address and throttled.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "workerhub_token";

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, on every worker.
    Admin,
    /// Create workers, tasks and commands, and see, drive and delete its own workers.
    Operator,
    /// Watch every worker; change nothing.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// Who made a request: the name of the token it presented, and its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: Arc<str>,
    pub role: Role,
}

/// What a caller wants to do to something owned by `owner` (a token name; None for
/// things no token owns, such as workers from before tokens had names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// See it: list, read, follow its events.
    Read,
    /// Change it: send messages, interrupt, stop, start, approve, delete.
    Change,
}

impl Caller {
    /// The caller of a server without authentication (`--no-auth`, loopback only).
    pub fn local() -> Caller {
        Caller {
            name: "local".into(),
            role: Role::Admin,
        }
    }

    /// Whether this caller may `access` something owned by `owner`.
    pub fn may(&self, access: Access, owner: Option<&str>) -> bool {
        let own = owner == Some(&*self.name);
        match (self.role, access) {
            (Role::Admin, _) => true,
            (Role::Operator, _) => own,
            (Role::Viewer, Access::Read) => true,
            (Role::Viewer, Access::Change) => false,
        }
    }

    /// Whether this caller may create workers, tasks and one-off commands.
    pub fn may_create(&self) -> bool {
        self.role != Role::Viewer
    }

    /// Whether this caller may see the whole server (metrics with every worker).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// One accepted token: its name, role and hash.
struct Token {
    name: Arc<str>,
    role: Role,
    hash: [u8; 32],
}

/// A named token in a `--tokens` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    /// SHA-256 of the token, hex.
    sha256: String,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

pub struct Auth {
    tokens: Vec<Token>,
    /// The token to print in the banner's page address (a generated or given admin
    /// token; never one from the tokens file, which holds only hashes).
    shown: Option<String>,
    throttle: Throttle,
}

/// Where the tokens came from, for the banner.
pub enum TokenSource {
    Off,
    Given,
    File,
    Kept(std::path::PathBuf),
    Generated(std::path::PathBuf),
}

/// Whether `host` (as given to --host) is a loopback address or name.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares two hashes in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// 32 random bytes from the kernel, as hex.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Reads a `--tokens` file: `{"tokens": [{"name", "sha256", "role"}]}`.
fn read_tokens_file(path: &Path) -> Result<Vec<Token>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
    let file: TokensFile = serde_json::from_str(&text)
        .map_err(|e| format!("the tokens file {} is not valid: {e}", path.display()))?;
    let mut tokens = Vec::new();
    for entry in file.tokens {
        let name = entry.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(format!(
                "{}: token name `{}` must be 1 to 64 letters, digits, `-`, `_`, `.` or `@`",
                path.display(),
                entry.name
            ));
        }
        let hash = parse_hex32(&entry.sha256).ok_or_else(|| {
            format!(
                "{}: token `{name}`: `sha256` must be 64 hex digits (printf %s TOKEN | sha256sum)",
                path.display()
            )
        })?;
        if tokens.iter().any(|t: &Token| &*t.name == name) {
            return Err(format!(
                "{}: token name `{name}` is used twice",
                path.display()
            ));
        }
        tokens.push(Token {
            name: name.into(),
            role: entry.role,
            hash,
        });
    }
    if tokens.is_empty() {
        return Err(format!("{}: no tokens", path.display()));
    }
    Ok(tokens)
}

impl Auth {
    /// No authentication (`--no-auth`, loopback only).
    pub fn off() -> Auth {
        Auth {
            tokens: Vec::new(),
            shown: None,
            throttle: Throttle::default(),
        }
    }

    /// The given admin tokens and the tokens file, or else the admin token kept in
    /// `data_dir/token` (created if missing).
    pub fn load(
        given: &[String],
        tokens_file: Option<&Path>,
        data_dir: &Path,
    ) -> Result<(Auth, TokenSource), String> {
        let given: Vec<String> = given
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(short) = given.iter().find(|t| t.len() < 16) {
            return Err(format!(
                "a token must be at least 16 characters (got {}); leave --token out to have one generated",
                short.len()
            ));
        }
        let mut tokens: Vec<Token> = given
            .iter()
            .enumerate()
            .map(|(i, t)| Token {
                name: if i == 0 {
                    "admin".into()
                } else {
                    format!("admin-{}", i + 1).into()
                },
                role: Role::Admin,
                hash: sha256(t),
            })
            .collect();
        if let Some(path) = tokens_file {
            let from_file = read_tokens_file(path)?;
            if let Some(clash) = from_file
                .iter()
                .find(|t| tokens.iter().any(|g| g.name == t.name))
            {
                return Err(format!(
                    "{}: the name `{}` is reserved for --token",
                    path.display(),
                    clash.name
                ));
            }
            tokens.extend(from_file);
        }
        let auth = |tokens, shown| Auth {
            tokens,
            shown,
            throttle: Throttle::default(),
        };
        if !tokens.is_empty() {
            let source = if given.is_empty() {
                TokenSource::File
            } else {
                TokenSource::Given
            };
            return Ok((auth(tokens, given.first().cloned()), source));
        }
        let path = data_dir.join("token");
        if let Ok(token) = std::fs::read_to_string(&path) {
            let token = token.trim().to_string();
            if token.len() >= 16 {
                crate::private_files::restrict(&path);
                let admin = Token {
                    name: "admin".into(),
                    role: Role::Admin,
                    hash: sha256(&token),
                };
                return Ok((auth(vec![admin], Some(token)), TokenSource::Kept(path)));
            }
        }
        let token = generate().map_err(|e| format!("cannot generate a token: {e}"))?;
        crate::private_files::create_dir(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        crate::private_files::write(&path, format!("{token}\n").as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let admin = Token {
            name: "admin".into(),
            role: Role::Admin,
            hash: sha256(&token),
        };
        Ok((auth(vec![admin], Some(token)), TokenSource::Generated(path)))
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The admin token to show in the banner's page address, if there is one to show.
    pub fn shown(&self) -> Option<&str> {
        self.shown.as_deref()
    }

    /// Names and roles of the accepted tokens (for the banner).
    pub fn describe(&self) -> Vec<(String, &'static str)> {
        self.tokens
            .iter()
            .map(|t| (t.name.to_string(), t.role.as_str()))
            .collect()
    }

    /// Who `presented` is, if it is a token of this server. Without authentication
    /// everyone is the local admin.
    pub fn check(&self, presented: &str) -> Option<Caller> {
        if !self.enabled() {
            return Some(Caller::local());
        }
        let hash = sha256(presented);
        let mut found = None;
        // Compare against every token, so timing does not tell which one matched.
        for token in &self.tokens {
            if same(&hash, &token.hash) {
                found = Some(Caller {
                    name: token.name.clone(),
                    role: token.role,
                });
            }
        }
        found
    }

    /// Failed attempts from `ip`: when it is blocked, the time left.
    pub fn blocked(&self, ip: Option<IpAddr>) -> Option<Duration> {
        ip.and_then(|ip| self.throttle.blocked(ip))
    }

    /// Records a wrong token presented from `ip`, logging it.
    pub fn failed(&self, ip: Option<IpAddr>, what: &str) {
        let Some(ip) = ip else { return };
        let count = self.throttle.failed(ip);
        log::warn!("a wrong token was presented from {ip} ({what}); {count} in the last minute");
    }

    /// The token a request presents: its bearer header, its cookie, or (when
    /// `query_ok`) its `?token=`.
    pub fn presented<'a>(
        authorization: Option<&'a str>,
        cookie: Option<&'a str>,
        query_token: Option<&'a str>,
        query_ok: bool,
    ) -> Option<&'a str> {
        if let Some(auth) = authorization {
            let mut parts = auth.trim().splitn(2, ' ');
            if let (Some(scheme), Some(value)) = (parts.next(), parts.next())
                && scheme.eq_ignore_ascii_case("bearer")
            {
                return Some(value.trim());
            }
        }
        if let Some(value) = cookie.and_then(cookie_value) {
            return Some(value);
        }
        query_token.filter(|_| query_ok)
    }
}

/// Failed token attempts per address: past `MAX_FAILURES` within a minute the address
/// is refused for a minute. With 256-bit tokens guessing is hopeless anyway; this keeps
/// the log readable and the attempts slow.
#[derive(Default)]
struct Throttle {
    by_ip: Mutex<HashMap<IpAddr, Attempts>>,
}

struct Attempts {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; the oldest are forgotten past it.
const MAX_TRACKED: usize = 10_000;

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Attempts>> {
        self.by_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .get(&ip)
            .and_then(|a| a.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    fn failed(&self, ip: IpAddr) -> u32 {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, a| now.duration_since(a.window_start) < WINDOW);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let attempts = map.entry(ip).or_insert(Attempts {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now.duration_since(attempts.window_start) >= WINDOW {
            attempts.window_start = now;
            attempts.failures = 0;
        }
        attempts.failures += 1;
        if attempts.failures >= MAX_FAILURES {
            attempts.blocked_until = Some(now + WINDOW);
        }
        attempts.failures
    }
}

/// The answer to an address that presented too many wrong tokens.
pub fn too_many_attempts(left: Duration) -> crate::error::Error {
    crate::error::Error::limit(
        crate::error::ErrorCode::TooManyAttempts,
        format!(
            "too many wrong tokens from this address; try again in {} s",
            left.as_secs().max(1)
        ),
    )
}

/// The value of our cookie in a `Cookie` header.
fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value.trim())
    })
}

/// The `Set-Cookie` value that carries the token to the page.
pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with(tokens: &[(&str, &str, Role)]) -> Auth {
        Auth {
            tokens: tokens
                .iter()
                .map(|(name, token, role)| Token {
                    name: (*name).into(),
                    role: *role,
                    hash: sha256(token),
                })
                .collect(),
            shown: None,
            throttle: Throttle::default(),
        }
    }

    #[test]
    fn tokens_are_found_in_header_cookie_and_query() {
        assert_eq!(
            Auth::presented(Some("Bearer abc"), None, None, false),
            Some("abc")
        );
        assert_eq!(
            Auth::presented(None, Some("a=1; workerhub_token=xyz; b=2"), None, false),
            Some("xyz")
        );
        assert_eq!(Auth::presented(None, None, Some("q"), true), Some("q"));
        assert_eq!(Auth::presented(None, None, Some("q"), false), None);
        assert_eq!(Auth::presented(Some("Basic abc"), None, None, false), None);
    }

    #[test]
    fn only_exact_tokens_match_and_say_who_they_are() {
        let auth = auth_with(&[
            ("ops", "0123456789abcdef", Role::Operator),
            ("eyes", "fedcba9876543210", Role::Viewer),
        ]);
        let who = auth.check("fedcba9876543210").unwrap();
        assert_eq!((&*who.name, who.role), ("eyes", Role::Viewer));
        assert_eq!(auth.check("0123456789abcdeF"), None);
        assert_eq!(auth.check("0123456789abcde"), None);
        assert_eq!(auth.check(""), None);
    }

    #[test]
    fn roles_decide_what_a_caller_may_do_to_whose_workers() {
        let op = Caller {
            name: "a".into(),
            role: Role::Operator,
        };
        let viewer = Caller {
            name: "v".into(),
            role: Role::Viewer,
        };
        assert!(op.may(Access::Change, Some("a")));
        assert!(!op.may(Access::Read, Some("b")));
        assert!(!op.may(Access::Read, None));
        assert!(viewer.may(Access::Read, Some("a")));
        assert!(!viewer.may(Access::Change, Some("v")));
        assert!(!viewer.may_create());
        assert!(Caller::local().may(Access::Change, Some("anyone")));
    }

    #[test]
    fn a_generated_token_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("workerhub-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, source) = Auth::load(&[], None, &dir).unwrap();
        assert!(matches!(source, TokenSource::Generated(_)));
        assert_eq!(first.shown().unwrap().len(), 64);
        let mode = std::fs::metadata(dir.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = Auth::load(&[], None, &dir).unwrap();
        assert!(matches!(source, TokenSource::Kept(_)));
        assert_eq!(first.shown(), second.shown());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tokens_file_holds_hashes_names_and_roles() {
        let dir = std::env::temp_dir().join(format!("workerhub-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.json");
        let hash = hex(&sha256("operator-token-0001"));
        std::fs::write(
            &path,
            format!(r#"{{"tokens":[{{"name":"alice","sha256":"{hash}","role":"operator"}}]}}"#),
        )
        .unwrap();
        let (auth, _) = Auth::load(&[], Some(&path), &dir).unwrap();
        assert_eq!(auth.shown(), None, "hashed tokens are never shown");
        let alice = auth.check("operator-token-0001").unwrap();
        assert_eq!((&*alice.name, alice.role), ("alice", Role::Operator));
        std::fs::write(
            &path,
            r#"{"tokens":[{"name":"a b","sha256":"00","role":"operator"}]}"#,
        )
        .unwrap();
        assert!(Auth::load(&[], Some(&path), &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn repeated_failures_from_one_address_are_throttled() {
        let auth = auth_with(&[("a", "0123456789abcdef", Role::Admin)]);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            auth.failed(Some(ip), "test");
        }
        assert!(auth.blocked(Some(ip)).is_none());
        auth.failed(Some(ip), "test");
        assert!(auth.blocked(Some(ip)).is_some());
        assert!(auth.blocked(Some("127.0.0.8".parse().unwrap())).is_none());
    }

    #[test]
    fn loopback_names() {
        for h in ["127.0.0.1", "::1", "[::1]", "localhost", "127.1.2.3"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "192.168.1.2", "example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
