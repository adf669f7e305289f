//! Token authentication, the Jupyter way.
//!
//! Authentication is on unless `--no-auth` is given, which is refused unless the server
//! binds a loopback address. The token comes from `--token` / `WORKERHUB_TOKEN`, or is
//! generated (256 random bits) and kept in `DATA_DIR/token` (mode 0600) so it survives
//! restarts. Clients present it as `Authorization: Bearer TOKEN`, as the
//! `workerhub_token` cookie (HttpOnly, SameSite=Strict: what the page gets), or, for
//! WebSocket upgrades and the page's first load only, as `?token=`. Comparison is
//! constant-time. `/healthz` and the page's static files need no token.

use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const COOKIE: &str = "workerhub_token";

/// Who a request is: with authentication on, the index of the token it presented.
pub type Caller = Option<usize>;

pub struct Auth {
    tokens: Vec<String>,
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

/// Compares two secrets in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// 32 random bytes from the kernel, as hex.
fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Auth {
    /// No authentication (`--no-auth`, loopback only).
    pub fn off() -> Auth {
        Auth { tokens: Vec::new() }
    }

    /// The given tokens, or the one kept in `data_dir/token` (created if missing).
    /// Returns the auth and whether the token was generated here.
    pub fn load(given: &[String], data_dir: &Path) -> Result<(Auth, bool), String> {
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
        if !given.is_empty() {
            return Ok((Auth { tokens: given }, false));
        }
        let path = data_dir.join("token");
        if let Ok(token) = std::fs::read_to_string(&path) {
            let token = token.trim().to_string();
            if token.len() >= 16 {
                // Whoever can read the token can run programs: keep it private.
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                return Ok((
                    Auth {
                        tokens: vec![token],
                    },
                    false,
                ));
            }
        }
        let token = generate().map_err(|e| format!("cannot generate a token: {e}"))?;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok((
            Auth {
                tokens: vec![token],
            },
            true,
        ))
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The first token (for the banner's page address).
    pub fn primary(&self) -> Option<&str> {
        self.tokens.first().map(String::as_str)
    }

    /// Which token `presented` is, if any.
    pub fn check(&self, presented: &str) -> Option<usize> {
        let mut found = None;
        // Compare against every token, so timing does not tell which one matched.
        for (i, token) in self.tokens.iter().enumerate() {
            if same(presented.as_bytes(), token.as_bytes()) {
                found = Some(i);
            }
        }
        found
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
    fn only_exact_tokens_match() {
        let auth = Auth {
            tokens: vec!["0123456789abcdef".into(), "fedcba9876543210".into()],
        };
        assert_eq!(auth.check("fedcba9876543210"), Some(1));
        assert_eq!(auth.check("0123456789abcdeF"), None);
        assert_eq!(auth.check("0123456789abcde"), None);
        assert_eq!(auth.check(""), None);
    }

    #[test]
    fn a_generated_token_is_kept_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("workerhub-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, generated) = Auth::load(&[], &dir).unwrap();
        assert!(generated);
        assert_eq!(first.primary().unwrap().len(), 64);
        let mode = std::fs::metadata(dir.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, generated) = Auth::load(&[], &dir).unwrap();
        assert!(!generated);
        assert_eq!(first.primary(), second.primary());
        std::fs::remove_dir_all(&dir).unwrap();
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
