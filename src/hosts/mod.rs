//! Other machines, reached over the user's own OpenSSH (their `~/.ssh/config`, keys,
//! agent, `ProxyJump`, known hosts): nothing is installed on the remote side.
//!
//! `--hosts FILE` names the hosts workers may run on: `{"NAME": {"ssh": "dev-box" or
//! "user@10.0.0.5", "port"?, "identity_file"?, "config_file"? (instead of
//! `~/.ssh/config`), "options"?: ["Key=value", ...],
//! "path"?: [folders added to the remote PATH], "kinds"?: [...]}}`. An entry that
//! cannot be used is reported (at start and in `GET /api/hosts`) and the others work.
//! Every ssh this server runs shares one multiplexed connection per host
//! (`ControlMaster=auto`, a `ControlPath` in the data folder), never waits for a
//! password (`BatchMode=yes`) and notices a dead network in seconds
//! (`ServerAliveInterval`). A host is checked (`POST /api/hosts/{name}/check`): reachable,
//! the round trip, the OS, and which AI CLIs answer there with their versions.

mod cleanup;
pub mod quote;
pub mod remote;
mod scripts;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use remote::{StartError, Traffic, TrafficView};

/// How long a check may take, connection included.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// The AI CLIs a check looks for.
const CLIS: &[&str] = &["claude", "codex", "gemini", "opencode"];

/// One usable entry of the hosts file.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Host {
    pub name: String,
    /// The ssh destination (`dev-box`, `user@10.0.0.5`).
    pub ssh: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// An ssh configuration file to read instead of the user's `~/.ssh/config` (`-F`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// More `-o` options, `Key=value` each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Folders added to the remote `PATH`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// The kinds it runs, when the file says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

/// Whether a host answered its last check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Not checked yet.
    Unknown,
    Reachable,
    Unreachable,
    /// Its entry in the hosts file cannot be used.
    Invalid,
}

/// What the last check found.
#[derive(Clone, Debug, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub state: HostState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Each AI CLI: its `--version` line there, or null when it is not found.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub clis: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its workers' connections: followed now, down now, reconnections, bytes.
    pub workers: TrafficView,
}

impl HostStatus {
    fn new(name: &str, host: Option<Host>, state: HostState) -> HostStatus {
        HostStatus {
            name: name.to_string(),
            state,
            host,
            latency_ms: None,
            os: None,
            clis: BTreeMap::new(),
            checked_at: None,
            error: None,
            workers: TrafficView::default(),
        }
    }
}

/// The hosts this server knows, and what their last checks found.
pub struct Hosts {
    /// `DATA_DIR/ssh`: the control sockets.
    control_dir: PathBuf,
    /// This server's name for its spools on other hosts (from its data folder), so two
    /// servers using one host keep apart.
    tag: String,
    entries: Mutex<BTreeMap<String, HostStatus>>,
    /// What went over ssh, by host.
    traffic: Mutex<BTreeMap<String, Arc<Traffic>>>,
    /// The environment every ssh gets (the server's, without its own settings): None
    /// inherits the server's (unit tests).
    ssh_env: Option<Vec<(OsString, OsString)>>,
    /// Whether a worker may name an ssh destination that is not in the hosts file.
    allow_adhoc: bool,
    /// What must still be ended or removed on hosts that did not answer.
    cleanups: cleanup::Cleanups,
}

impl Hosts {
    /// No hosts file: this machine only.
    pub fn none(data_dir: &Path) -> Hosts {
        use std::hash::{Hash, Hasher};
        let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        absolute.hash(&mut hasher);
        Hosts {
            control_dir: control_dir(data_dir),
            tag: format!("{:016x}", hasher.finish()),
            entries: Mutex::new(BTreeMap::new()),
            traffic: Mutex::new(BTreeMap::new()),
            ssh_env: None,
            allow_adhoc: false,
            cleanups: cleanup::Cleanups::open(data_dir.join("hosts-cleanup.json")),
        }
    }

    /// Every ssh gets `env` as its whole environment.
    pub fn with_env(mut self, env: Vec<(OsString, OsString)>) -> Hosts {
        self.ssh_env = Some(env);
        self
    }

    /// Workers may name ssh destinations that are not in the hosts file
    /// (`--allow-adhoc-hosts`).
    pub fn allow_adhoc(mut self, allow: bool) -> Hosts {
        self.allow_adhoc = allow;
        self
    }

    fn ssh_env(&self) -> Vec<(OsString, OsString)> {
        self.ssh_env
            .clone()
            .unwrap_or_else(|| std::env::vars_os().collect())
    }

    /// A worker's spool on its host, under `$HOME/.cache/workerhub/`.
    fn spool_key(&self, worker: &str) -> String {
        let worker: String = worker
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        format!("{}/{worker}", self.tag)
    }

    fn traffic(&self, host: &str) -> Arc<Traffic> {
        self.traffic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_string())
            .or_default()
            .clone()
    }

    /// Per host: connected, disconnected, reconnects, bytes (for `/metrics`).
    pub fn traffic_views(&self) -> Vec<(String, TrafficView)> {
        self.traffic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, t)| (name.clone(), t.view()))
            .collect()
    }

    /// The host a worker names: an entry of the hosts file, or, when ad-hoc hosts are
    /// allowed, an ssh destination.
    pub fn find(&self, name: &str) -> Result<Host, Error> {
        let found = self.get(name);
        match found {
            Err(err) if self.allow_adhoc && err.kind == ErrorKind::NotFound => {
                check_adhoc(name).map_err(|why| {
                    Error::invalid(format!("`host` {name:?} is not an ssh destination: {why}"))
                })?;
                Ok(Host {
                    name: name.to_string(),
                    ssh: name.to_string(),
                    port: None,
                    identity_file: None,
                    config_file: None,
                    options: Vec::new(),
                    path: Vec::new(),
                    kinds: Vec::new(),
                })
            }
            Err(err) if err.kind == ErrorKind::NotFound => Err(Error::invalid(format!(
                "no host `{name}` in the hosts file (--hosts), and ad-hoc hosts are not allowed (--allow-adhoc-hosts)"
            ))),
            other => other,
        }
    }

    /// Reads `file`. A file that cannot be read at all is an error; an entry that cannot
    /// be used is listed as invalid, with why.
    pub fn load(file: &Path, data_dir: &Path) -> Result<Hosts, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the hosts file {}: {e}", file.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the hosts file {} is not valid JSON: {e}", file.display()))?;
        let Value::Object(map) = value else {
            return Err(format!(
                "the hosts file {} must be an object: {{\"NAME\": {{\"ssh\": \"destination\"}}}}",
                file.display()
            ));
        };
        let hosts = Hosts::none(data_dir);
        {
            let mut entries = hosts.lock();
            for (name, entry) in &map {
                let status = match parse_host(name, entry) {
                    Ok(host) => HostStatus::new(name, Some(host), HostState::Unknown),
                    Err(why) => {
                        log::warn!("hosts file {}: host `{name}`: {why}", file.display());
                        let mut status = HostStatus::new(name, None, HostState::Invalid);
                        status.error = Some(why);
                        status
                    }
                };
                entries.insert(name.clone(), status);
            }
        }
        Ok(hosts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, HostStatus>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every host, as its last check left it.
    pub fn list(&self) -> Vec<HostStatus> {
        let mut list: Vec<HostStatus> = self.lock().values().cloned().collect();
        for status in &mut list {
            status.workers = self.traffic(&status.name).view();
        }
        list
    }

    /// A usable host by name.
    pub fn get(&self, name: &str) -> Result<Host, Error> {
        match self.lock().get(name) {
            Some(status) => status.host.clone().ok_or_else(|| {
                Error::invalid(format!(
                    "host `{name}` cannot be used: {}",
                    status.error.as_deref().unwrap_or("its entry is invalid")
                ))
            }),
            None => Err(Error::not_found(format!(
                "no host `{name}` (the hosts file names the hosts workers may run on)"
            ))),
        }
    }

    /// Checks `name` now (at most [`CHECK_TIMEOUT`]) and keeps what was found.
    pub fn check(&self, name: &str) -> Result<HostStatus, Error> {
        let host = self.get(name)?;
        let mut status = HostStatus::new(name, Some(host.clone()), HostState::Unreachable);
        status.checked_at = Some(crate::clock::now_rfc3339());
        let started = Instant::now();
        match self.ssh(&host, &probe_script(&host), b"", CHECK_TIMEOUT) {
            Ok(out) => {
                status.state = HostState::Reachable;
                status.latency_ms = Some(started.elapsed().as_millis() as u64);
                let mut lines = out.lines();
                status.os = lines.next().map(str::to_string);
                for line in lines {
                    if let Some((cli, version)) = line.split_once(' ')
                        && CLIS.contains(&cli)
                    {
                        let version = version.trim();
                        status.clis.insert(
                            cli.to_string(),
                            (!version.is_empty() && version != "-").then(|| version.to_string()),
                        );
                    }
                }
            }
            Err(StartError::Unreachable(why) | StartError::Failed(why)) => status.error = Some(why),
        }
        status.workers = self.traffic(name).view();
        self.lock().insert(name.to_string(), status.clone());
        Ok(status)
    }

    /// Ends the multiplexed connections (`ssh -O exit`), each within a second or two:
    /// they outlive the ssh that opened them, but not the server.
    pub fn close(&self) {
        let hosts: Vec<Host> = self
            .lock()
            .values()
            .filter_map(|s| s.host.clone())
            .collect();
        for host in hosts {
            let mut argv = self.ssh_argv(&host, "");
            argv.pop();
            let at = argv.len() - 2;
            argv.insert(at, "exit".into());
            argv.insert(at, "-O".into());
            let _ = self.run_ssh(&argv, b"", Duration::from_secs(2), 1 << 16);
        }
    }

    /// The ssh command line for `host`, running `remote` (a command line for the remote
    /// shell, built with [`quote`]).
    pub fn ssh_argv(&self, host: &Host, remote: &str) -> Vec<String> {
        let control = self.control_dir.join("%C");
        let mut argv: Vec<String> = vec!["ssh".into(), "-T".into()];
        for option in [
            "BatchMode=yes".to_string(),
            "ControlMaster=auto".to_string(),
            "ControlPersist=60".to_string(),
            format!("ControlPath={}", control.display()),
            "ServerAliveInterval=5".to_string(),
            "ServerAliveCountMax=3".to_string(),
            "ConnectTimeout=10".to_string(),
        ] {
            argv.push("-o".into());
            argv.push(option);
        }
        if let Some(port) = host.port {
            argv.push("-p".into());
            argv.push(port.to_string());
        }
        if let Some(config) = &host.config_file {
            argv.push("-F".into());
            argv.push(config.display().to_string());
        }
        if let Some(identity) = &host.identity_file {
            argv.push("-i".into());
            argv.push(identity.display().to_string());
        }
        for option in &host.options {
            argv.push("-o".into());
            argv.push(option.clone());
        }
        // `--`: the destination and the command are never read as options.
        argv.push("--".into());
        argv.push(host.ssh.clone());
        argv.push(remote.to_string());
        argv
    }

    /// Runs one ssh command line to its end, with this server's ssh environment.
    /// Runs one ssh command line to its end, with this server's ssh environment;
    /// `max_output` bytes of each stream are kept.
    fn run_ssh(
        &self,
        argv: &[String],
        stdin: &[u8],
        timeout: Duration,
        max_output: u64,
    ) -> Result<crate::process::bounded::RawOutput, String> {
        let mut options = crate::process::bounded::Options::new(timeout);
        options.stdin = stdin;
        options.max_output = max_output;
        if let Some(env) = &self.ssh_env {
            options.clear_env = true;
            options.env = env.clone();
        }
        crate::process::bounded::run_with(Path::new(&argv[0]), &argv[1..], &options)
    }

    /// Runs `remote` on `host` with `stdin` as its input: what it printed and its exit
    /// code, or `Unreachable` when ssh itself failed (255, or no answer in time).
    fn ssh_raw(
        &self,
        host: &Host,
        remote: &str,
        stdin: &[u8],
        timeout: Duration,
        max_output: u64,
    ) -> Result<crate::process::bounded::RawOutput, StartError> {
        private_control_dir(&self.control_dir).map_err(StartError::Failed)?;
        let argv = self.ssh_argv(host, remote);
        let out = self
            .run_ssh(&argv, stdin, timeout, max_output)
            .map_err(|e| {
                StartError::Unreachable(if e.contains("did not answer") {
                    format!("no answer within {}s", timeout.as_secs())
                } else {
                    e
                })
            })?;
        match out.code {
            Some(255) | None => Err(StartError::Unreachable(last_said(&out.stderr))),
            Some(_) => Ok(out),
        }
    }

    /// Runs `remote` on `host` with `stdin` as its input and returns its stdout. ssh's
    /// own failure is `Unreachable`; the remote command's, `Failed`; each with the last
    /// thing said.
    fn ssh(
        &self,
        host: &Host,
        remote: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<String, StartError> {
        let out = self.ssh_raw(host, remote, stdin, timeout, 1 << 20)?;
        if out.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(StartError::Failed(last_said(&out.stderr)))
    }
}

/// The last line a program said on stderr.
fn last_said(stderr: &[u8]) -> String {
    match String::from_utf8_lossy(stderr).trim().lines().last() {
        Some(last) => last.to_string(),
        None => "ssh failed and said nothing".to_string(),
    }
}

/// Where the control sockets live: `DATA_DIR/ssh`, unless that path is too long for a
/// socket's name (108 bytes; ssh adds 41 for `%C` and 17 for a temporary suffix while
/// it sets the socket up); then a private folder of this data folder's own under /tmp.
fn control_dir(data_dir: &Path) -> PathBuf {
    let dir = std::path::absolute(data_dir)
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .join("ssh");
    if dir.as_os_str().len() + 60 < 104 {
        return dir;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!(
        "/tmp/workerhub-ssh-{uid}-{:08x}",
        hasher.finish() as u32
    ))
}

/// Creates the control sockets' folder, and makes sure it is ours alone: ssh connects
/// to a socket it finds there, so a folder someone else made (under /tmp) or could write
/// into would hand them our commands.
fn private_control_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    crate::private_files::create_dir(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a private folder of this user; remove it and try again",
            dir.display()
        ));
    }
    Ok(())
}

/// The remote script of a check: the OS, then each CLI and its version (`-` when it is
/// not found).
fn probe_script(host: &Host) -> String {
    let mut script = String::new();
    if !host.path.is_empty() {
        let dirs: Vec<String> = host
            .path
            .iter()
            .filter_map(|d| quote::quote(d).ok())
            .collect();
        script.push_str(&format!("PATH=\"$PATH\":{}; ", dirs.join(":")));
    }
    script.push_str("uname -sr; for c in");
    for cli in CLIS {
        script.push(' ');
        script.push_str(cli);
    }
    script.push_str(
        "; do v=-; if command -v \"$c\" >/dev/null 2>&1; then v=$(\"$c\" --version 2>/dev/null </dev/null | head -n 1); fi; echo \"$c ${v:--}\"; done",
    );
    script
}

/// An ssh destination that ssh can only read as one: not empty, no spaces or control
/// characters, not starting with `-` (an option).
fn check_destination(ssh: &str) -> Result<(), String> {
    if ssh.is_empty()
        || ssh.len() > 255
        || ssh.starts_with('-')
        || ssh.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`ssh` {ssh:?} is not a destination (no spaces, not starting with `-`)"
        ));
    }
    Ok(())
}

/// An ad-hoc destination, `[user@]host` only: a name from a client may reach a
/// `ProxyCommand` or `Match exec` of the server's ssh configuration through `%h`, so it
/// holds nothing a shell would read (older OpenSSH does not refuse such names).
fn check_adhoc(ssh: &str) -> Result<(), String> {
    check_destination(ssh)?;
    let (user, host) = ssh
        .rsplit_once('@')
        .map_or((None, ssh), |(u, h)| (Some(u), h));
    let user_ok = user.is_none_or(|u| {
        !u.is_empty()
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    let host_ok = !host.is_empty()
        && !host.starts_with('-')
        && (host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
            || (host.starts_with('[')
                && host.ends_with(']')
                && host[1..host.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':')));
    if user_ok && host_ok {
        Ok(())
    } else {
        Err("only `user@host` (letters, digits, `.`, `-`, `_`) or a bracketed IPv6 address".into())
    }
}

/// One entry of the hosts file, checked: nothing in it can become an ssh option or
/// remote shell code but what it says.
fn parse_host(name: &str, entry: &Value) -> Result<Host, String> {
    crate::spec::check_name(name).map_err(|e| e.message)?;
    if name.is_empty() {
        return Err("a host needs a name".into());
    }
    let text = |key: &str| entry.get(key).and_then(Value::as_str);
    let ssh = text("ssh").ok_or("`ssh` (the destination, as for `ssh DESTINATION`) is required")?;
    check_destination(ssh)?;
    let port = match entry.get("port") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|p| (1..=65535).contains(p))
                .ok_or("`port` must be a number from 1 to 65535")? as u16,
        ),
    };
    let strings = |key: &str| -> Result<Vec<String>, String> {
        match entry.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{key}` must be a list of strings"))
                })
                .collect(),
            Some(_) => Err(format!("`{key}` must be a list of strings")),
        }
    };
    let options = strings("options")?;
    for option in &options {
        let valid = option.split_once('=').is_some_and(|(key, value)| {
            !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric())
                && !value.is_empty()
                && !value.chars().any(|c| c.is_control())
        });
        if !valid {
            return Err(format!(
                "option {option:?} is not `Key=value` (as `ssh -o` takes it)"
            ));
        }
    }
    let path = strings("path")?;
    if let Some(bad) = path
        .iter()
        .find(|d| !d.starts_with('/') || d.contains('\0'))
    {
        return Err(format!("`path` entry {bad:?} must be an absolute folder"));
    }
    Ok(Host {
        name: name.to_string(),
        ssh: ssh.to_string(),
        port,
        identity_file: text("identity_file").map(PathBuf::from),
        config_file: text("config_file").map(PathBuf::from),
        options,
        path,
        kinds: strings("kinds")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_are_checked_and_nothing_becomes_an_ssh_option() {
        assert!(parse_host("dev", &json!({"ssh": "dev-box", "port": 2222})).is_ok());
        assert!(parse_host("dev", &json!({"ssh": "-oProxyCommand=x"})).is_err());
        assert!(parse_host("dev", &json!({"ssh": "a b"})).is_err());
        assert!(parse_host("dev", &json!({"ssh": "a", "port": 0})).is_err());
        assert!(parse_host("dev", &json!({"ssh": "a", "options": ["ProxyCommand sh"]})).is_err());
        assert!(
            parse_host(
                "dev",
                &json!({"ssh": "a", "options": ["ServerAliveInterval=3"]})
            )
            .is_ok()
        );
        assert!(parse_host("a/b", &json!({"ssh": "a"})).is_err());
        assert!(parse_host("dev", &json!({"ssh": "a", "path": ["relative"]})).is_err());
    }

    #[test]
    fn ad_hoc_hosts_are_destinations_only_when_allowed() {
        let strict = Hosts::none(Path::new("/data"));
        let err = strict.find("me@box").unwrap_err();
        assert!(
            err.message.contains("--allow-adhoc-hosts"),
            "{}",
            err.message
        );
        let open = Hosts::none(Path::new("/data")).allow_adhoc(true);
        assert_eq!(open.find("me@box").unwrap().ssh, "me@box");
        assert!(open.find("-oProxyCommand=sh").is_err());
        assert!(open.find("a b").is_err());
        assert!(open.find("x$(touch${IFS}/tmp/p).corp").is_err());
        assert!(open.find("me@[::1]").is_ok());
    }

    #[test]
    fn the_ssh_command_line_ends_with_the_destination_after_dashes() {
        let hosts = Hosts::none(Path::new("/data"));
        let host = parse_host("dev", &json!({"ssh": "dev-box", "port": 2222})).unwrap();
        let argv = hosts.ssh_argv(&host, "'uname'");
        let n = argv.len();
        assert_eq!(&argv[n - 3..], ["--", "dev-box", "'uname'"]);
        assert!(argv.contains(&"BatchMode=yes".to_string()));
        assert!(argv.contains(&"ControlPath=/data/ssh/%C".to_string()));
    }
}
