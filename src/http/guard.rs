//! Who may talk to the server from a browser: the Host and Origin checks that stop DNS
//! rebinding and cross-site requests (CVE-2025-52882 was a local WebSocket server
//! without them).

use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub struct Origins {
    /// Host names (lowercase, IPv6 in brackets) this server answers to.
    names: Vec<String>,
    port: u16,
    /// Extra origins allowed to change state (`--allow-origin`); `*` allows any.
    allowed: Vec<String>,
    /// Bound to 0.0.0.0 or [::]: the addresses of this machine's interfaces are ours
    /// too, read again (at most every few seconds) when an unknown one is named, since
    /// interfaces come and go.
    any_address: Option<RwLock<Interfaces>>,
}

struct Interfaces {
    read_at: Instant,
    addresses: Vec<IpAddr>,
}

/// How often the interfaces' addresses may be read again.
const INTERFACES_TTL: Duration = Duration::from_secs(5);

/// Splits `host[:port]` (with `[v6]` brackets) and returns the host, lowercased.
fn host_part(value: &str) -> String {
    let value = value.trim();
    let host = if value.starts_with('[') {
        value.find(']').map_or(value, |end| &value[..=end])
    } else {
        value.rsplit_once(':').map_or(value, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

impl Origins {
    pub fn new(
        bind_host: &str,
        port: u16,
        allow_hosts: &[String],
        allow_origins: &[String],
    ) -> Origins {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bind = bind_host.to_ascii_lowercase();
        let bind = match bind.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{bind}]"),
            _ => bind,
        };
        names.push(bind);
        names.extend(allow_hosts.iter().map(|h| host_part(h)));
        let any_address = bind_host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
            .then(|| {
                RwLock::new(Interfaces {
                    read_at: Instant::now(),
                    addresses: crate::sys::local_addresses(),
                })
            });
        Origins {
            names,
            port,
            allowed: allow_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            any_address,
        }
    }

    fn is_own_name(&self, host: &str) -> bool {
        self.names.iter().any(|n| n == host) || self.is_interface_address(host)
    }

    /// Whether `host` is an IP literal of one of this machine's interfaces (when bound
    /// to every address).
    fn is_interface_address(&self, host: &str) -> bool {
        let Some(interfaces) = &self.any_address else {
            return false;
        };
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return false;
        };
        let known = |list: &Interfaces| list.addresses.contains(&ip);
        {
            let list = interfaces.read().unwrap_or_else(|p| p.into_inner());
            if known(&list) {
                return true;
            }
            if list.read_at.elapsed() < INTERFACES_TTL {
                return false;
            }
        }
        let mut list = interfaces.write().unwrap_or_else(|p| p.into_inner());
        if list.read_at.elapsed() >= INTERFACES_TTL {
            list.addresses = crate::sys::local_addresses();
            list.read_at = Instant::now();
        }
        known(&list)
    }

    /// Whether a request's Host header names this server. A missing Host (HTTP/1.0) is
    /// accepted: DNS rebinding always sends one.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        host.is_none_or(|h| self.is_own_name(&host_part(h)))
    }

    /// Whether a browser page from `origin` may use this server: its own pages (http,
    /// one of its names, its port) or an origin allowed by configuration.
    pub fn origin_ok(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.allowed.iter().any(|a| a == "*" || *a == origin) {
            return true;
        }
        let Some(rest) = origin.strip_prefix("http://") else {
            return false;
        };
        let (host, port) = if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => (&rest[..=end], rest[end + 1..].strip_prefix(':')),
                None => return false,
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port_ok = match port {
            Some(p) => p.parse::<u16>().ok() == Some(self.port),
            None => self.port == 80,
        };
        port_ok && self.is_own_name(host)
    }
}

/// `application/json`, with or without parameters such as charset.
pub fn is_json_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> Origins {
        Origins::new(
            "127.0.0.1",
            7788,
            &["box.lan".into()],
            &["https://proxy.example".into()],
        )
    }

    #[test]
    fn own_names_pass_and_foreign_hosts_fail() {
        let o = origins();
        for ok in ["localhost:7788", "127.0.0.1", "[::1]:7788", "BOX.LAN:7788"] {
            assert!(o.host_ok(Some(ok)), "{ok}");
        }
        for bad in ["evil.example", "evil.example:7788", "10.0.0.1:7788"] {
            assert!(!o.host_ok(Some(bad)), "{bad}");
        }
        assert!(o.host_ok(None));
    }

    #[test]
    fn only_own_or_allowed_origins_pass() {
        let o = origins();
        assert!(o.origin_ok("http://localhost:7788"));
        assert!(o.origin_ok("http://[::1]:7788"));
        assert!(o.origin_ok("https://proxy.example"));
        assert!(!o.origin_ok("http://localhost:9999"));
        assert!(!o.origin_ok("http://evil.example"));
        assert!(!o.origin_ok("https://localhost:7788"));
        assert!(!o.origin_ok("null"));
    }

    #[test]
    fn a_wildcard_bind_accepts_its_interfaces_addresses_but_not_other_ips_or_names() {
        let o = Origins::new("0.0.0.0", 80, &[], &[]);
        let ours = crate::sys::local_addresses();
        let v4 = ours
            .iter()
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
            .copied();
        if let Some(ip) = v4 {
            assert!(o.host_ok(Some(&ip.to_string())));
            assert!(o.origin_ok(&format!("http://{ip}")));
        }
        assert!(o.host_ok(Some("127.0.0.1")));
        assert!(
            !o.host_ok(Some("203.0.113.77")),
            "not an address of this machine"
        );
        assert!(!o.origin_ok("http://203.0.113.77"));
        assert!(!o.host_ok(Some("rebind.evil.example")));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(!is_json_content_type("text/plain"));
    }
}
