//! Command-line arguments, environment and `.env`.
//!
//! Every server flag is also `WORKERHUB_<NAME>` in the environment or in a `.env` file
//! in the working directory; a flag wins over the environment, which wins over `.env`.
//! The names of the older py-worker `.env` (`MAX_WORKERS`, `WORKER_TIMEOUT`, ...) are
//! read too; the `WORKERHUB_` name wins when both are set.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "workerhub",
    version,
    about = "Run AI coding CLIs and other programs as managed workers; watch and drive them live over HTTP and WebSocket.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the server (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Run a scripted conversation on a server of its own and write a report.
    Batch(crate::client::batch::BatchArgs),
    /// List the workers of a running server.
    Workers(crate::client::cli::ClientArgs),
    /// Create a worker.
    Create(crate::client::cli::CreateArgs),
    /// Delete a worker (by id or name).
    Rm {
        worker: String,
        #[command(flatten)]
        client: crate::client::cli::ClientArgs,
    },
    /// Send a message and show the answer until the turn ends.
    Send(crate::client::cli::SendArgs),
    /// Follow a worker's events.
    Watch(crate::client::cli::WatchArgs),
    /// Drive a terminal worker from this terminal (Ctrl-] detaches).
    Attach(crate::client::attach::AttachArgs),
    /// Answer a tool approval a worker waits for.
    Approve(crate::client::cli::ApproveArgs),
    /// Run a command on the server, as if here: its output and exit code come back.
    Exec(crate::client::cli::ExecArgs),
    /// Tasks: add, list, cancel, run.
    Tasks {
        #[command(subcommand)]
        command: crate::client::cli::TasksCommand,
    },
    /// The server's status.
    Status(crate::client::cli::ClientArgs),
    /// Named tokens with roles, for `--tokens FILE`.
    Token {
        #[command(subcommand)]
        command: crate::client::cli::TokenCommand,
    },
    /// What a worker changed in its worktree (the unified diff, or `--stat`).
    Diff(crate::client::changes::DiffArgs),
    /// Merge a worker's branch into the branch its worktree came from.
    Merge(crate::client::changes::MergeArgs),
    /// The machines workers may run on (`--hosts FILE`), or `hosts check NAME`.
    Hosts(crate::client::hosts::HostsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback exposes the server to the network.
    #[arg(long, env = "WORKERHUB_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (read it from the "listening on" line).
    #[arg(long, env = "WORKERHUB_PORT", default_value_t = 7788)]
    pub port: u16,
    /// Where workers, their history and settings are kept.
    #[arg(long, env = "WORKERHUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Serve the UI from this folder instead of the copy built into the binary.
    #[arg(long, env = "WORKERHUB_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// HTTP handler threads [default: 4 per core, at least 8].
    #[arg(long, env = "WORKERHUB_THREADS")]
    pub threads: Option<usize>,
    /// Threads that write to WebSockets [default: one per core].
    #[arg(long, env = "WORKERHUB_WRITER_THREADS")]
    pub writer_threads: Option<usize>,
    /// Most workers alive at once.
    #[arg(long, env = "WORKERHUB_MAX_WORKERS", default_value_t = 10)]
    pub max_workers: usize,
    /// Longest a turn of an AI worker may run, in seconds.
    #[arg(long, env = "WORKERHUB_WORKER_TIMEOUT", default_value_t = 300)]
    pub worker_timeout: u64,
    /// Seconds between SIGTERM and SIGKILL when a worker is stopped.
    #[arg(long, env = "WORKERHUB_STOP_GRACE", default_value_t = 5.0)]
    pub stop_grace: f64,
    /// Seconds a tool approval may wait for an answer before it is denied (never by
    /// default: the agent waits for a person).
    #[arg(long, env = "WORKERHUB_APPROVAL_TIMEOUT")]
    pub approval_timeout: Option<f64>,
    /// Another origin whose pages may use this server (repeatable; `*` allows any).
    #[arg(long, env = "WORKERHUB_ALLOW_ORIGIN", value_delimiter = ',')]
    pub allow_origin: Vec<String>,
    /// Another host name this server answers to (repeatable), e.g. behind a proxy.
    #[arg(long, env = "WORKERHUB_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// The access token (repeatable for several); generated and kept in DATA_DIR/token
    /// when none is given.
    #[arg(
        long,
        env = "WORKERHUB_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub token: Vec<String>,
    /// Named tokens with roles: a JSON file `{"tokens": [{"name", "sha256", "role"}]}`
    /// (role admin, operator or viewer; `sha256` of the token, hex). `workerhub token
    /// new NAME --role ROLE --tokens FILE` adds one.
    #[arg(long, env = "WORKERHUB_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// The hosts workers may run on, over ssh: a JSON file `{"NAME": {"ssh":
    /// "destination", "port"?, "identity_file"?, "options"?, "path"?, "kinds"?}}`.
    #[arg(long, env = "WORKERHUB_HOSTS")]
    pub hosts: Option<PathBuf>,
    /// Let a worker's `host` be any ssh destination, not only a name from `--hosts`.
    #[arg(long, env = "WORKERHUB_ALLOW_ADHOC_HOSTS")]
    pub allow_adhoc_hosts: bool,
    /// Turn authentication off (only allowed when bound to a loopback address).
    #[arg(long, env = "WORKERHUB_NO_AUTH")]
    pub no_auth: bool,
    /// Seconds an HTTP connection may stay silent (while sending its request head or
    /// between keep-alive requests) before it is closed.
    #[arg(long, env = "WORKERHUB_HTTP_TIMEOUT", default_value_t = 15.0)]
    pub http_timeout: f64,
    /// Most WebSocket connections from one client address.
    #[arg(
        long,
        env = "WORKERHUB_MAX_CONNECTIONS_PER_IP",
        default_value_t = 2_000
    )]
    pub max_connections_per_ip: usize,
    /// Most HTTP connections open at once (each holds a thread while it waits for its
    /// request); past it a connection is answered 503 and closed.
    #[arg(long, env = "WORKERHUB_MAX_HTTP_CONNECTIONS", default_value_t = 4096)]
    pub max_http_connections: usize,
    /// Most HTTP connections open at once from one client address. A reverse proxy
    /// puts every viewer behind one address, so this leaves room for a burst of them
    /// while one client still cannot take every thread.
    #[arg(
        long,
        env = "WORKERHUB_MAX_HTTP_CONNECTIONS_PER_IP",
        default_value_t = 1024
    )]
    pub max_http_connections_per_ip: usize,
    /// Most workers kept, running or not (each keeps its history on disk).
    #[arg(long, env = "WORKERHUB_MAX_STORED_WORKERS", default_value_t = 1000)]
    pub max_stored_workers: usize,
    /// An environment variable of the server to pass to every child all the same
    /// (repeatable), e.g. a provider key every kind may use.
    #[arg(long, env = "WORKERHUB_PASS_ENV", value_delimiter = ',')]
    pub pass_env: Vec<String>,
    /// Most live workers one token may have created [default: --max-workers].
    #[arg(long, env = "WORKERHUB_MAX_WORKERS_PER_TOKEN")]
    pub max_workers_per_token: Option<usize>,
    /// Most one-off commands one token may run at once [default: --max-commands].
    #[arg(long, env = "WORKERHUB_MAX_COMMANDS_PER_TOKEN")]
    pub max_commands_per_token: Option<usize>,
    /// Workers and commands may only run in folders under these (repeatable); symlinks
    /// are resolved first. Anywhere when unset.
    #[arg(long, env = "WORKERHUB_PROJECT_ROOT", value_delimiter = ',')]
    pub project_root: Vec<PathBuf>,
    /// Largest request body, in bytes.
    #[arg(long, env = "WORKERHUB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "WORKERHUB_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Most WebSocket connections at once.
    #[arg(long, env = "WORKERHUB_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Bytes a WebSocket client may fall behind live events; past it the client reads
    /// from history at its own pace until it has caught up.
    #[arg(long, env = "WORKERHUB_OUTBOX_BYTES", default_value_t = 8 << 20)]
    pub outbox_bytes: usize,
    /// Seconds a WebSocket client's socket may take nothing before it is closed with 1013.
    #[arg(long, env = "WORKERHUB_STALL_TIMEOUT", default_value_t = 15.0)]
    pub stall_timeout: f64,
    /// Seconds of silence before the server pings a WebSocket client.
    #[arg(long, env = "WORKERHUB_PING_INTERVAL", default_value_t = 30.0)]
    pub ping_interval: f64,
    /// Seconds a client has to answer a ping before it is closed.
    #[arg(long, env = "WORKERHUB_PONG_TIMEOUT", default_value_t = 10.0)]
    pub pong_timeout: f64,
    /// Recent events of each worker kept in memory (older ones are read from disk).
    #[arg(long, env = "WORKERHUB_MEMORY_EVENTS", default_value_t = 4096)]
    pub memory_events: usize,
    /// Most bytes of history kept on disk per worker; the oldest is dropped past it.
    #[arg(long, env = "WORKERHUB_HISTORY_MAX_BYTES", default_value_t = 1 << 30)]
    pub history_max_bytes: u64,
    /// Size of one history file.
    #[arg(long, env = "WORKERHUB_HISTORY_SEGMENT_BYTES", default_value_t = 8 << 20)]
    pub history_segment_bytes: u64,
    /// Most one-off commands running at once (`/api/exec`, `command:execute`).
    #[arg(long, env = "WORKERHUB_MAX_COMMANDS", default_value_t = 16)]
    pub max_commands: usize,
    /// Timeout of a one-off command that gives none, in seconds.
    #[arg(long, env = "WORKERHUB_EXEC_TIMEOUT", default_value_t = 60.0)]
    pub exec_timeout: f64,
    /// The longest timeout a one-off command may ask for, in seconds.
    #[arg(long, env = "WORKERHUB_EXEC_TIMEOUT_MAX", default_value_t = 3600.0)]
    pub exec_timeout_max: f64,
    /// Seconds between `system:status` pushes to `/ws` clients (0: never).
    #[arg(long, env = "WORKERHUB_STATUS_INTERVAL", default_value_t = 30.0)]
    pub status_interval: f64,
    /// A JSON file defining more worker kinds (see docs; `{"ai_clis": [...]}`).
    #[arg(long, env = "WORKERHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// The kind of a worker created without `ai_cli_type` (and without `command`).
    #[arg(long, env = "WORKERHUB_DEFAULT_AI_CLI", default_value = "claude")]
    pub default_ai_cli: String,
    /// Only these kinds may be used (comma-separated); all when unset.
    #[arg(long, env = "WORKERHUB_ENABLED_AI_CLIS", value_delimiter = ',')]
    pub enabled_ai_clis: Option<Vec<String>>,
    /// Relative `project_path`s are taken from this folder [default: the working folder].
    #[arg(long, env = "WORKERHUB_WORKERS_BASE_DIR")]
    pub workers_base_dir: Option<PathBuf>,
    /// The Claude Code program [default: `claude` on PATH].
    #[arg(long, env = "WORKERHUB_CLAUDE_BINARY")]
    pub claude_binary: Option<String>,
    /// Model for Claude Code workers that do not name one.
    #[arg(long, env = "WORKERHUB_CLAUDE_MODEL")]
    pub claude_model: Option<String>,
    /// Passed to Claude Code as ANTHROPIC_API_KEY.
    #[arg(long, env = "WORKERHUB_CLAUDE_API_KEY", hide_env_values = true)]
    pub claude_api_key: Option<String>,
    /// The Codex program [default: `codex` on PATH].
    #[arg(long, env = "WORKERHUB_CODEX_BINARY")]
    pub codex_binary: Option<String>,
    /// The Gemini CLI program [default: `gemini` on PATH].
    #[arg(long, env = "WORKERHUB_GEMINI_BINARY")]
    pub gemini_binary: Option<String>,
    /// The OpenCode program [default: `opencode` on PATH].
    #[arg(long, env = "WORKERHUB_OPENCODE_BINARY")]
    pub opencode_binary: Option<String>,
    /// Model for OpenCode workers that do not name one.
    #[arg(long, env = "WORKERHUB_OPENCODE_MODEL")]
    pub opencode_model: Option<String>,
    /// API key for OpenCode's provider.
    #[arg(long, env = "WORKERHUB_OPENCODE_API_KEY", hide_env_values = true)]
    pub opencode_api_key: Option<String>,
    /// An OpenAI-compatible endpoint for OpenCode (used with --opencode-model).
    #[arg(long, env = "WORKERHUB_OPENCODE_API_BASE")]
    pub opencode_api_base: Option<String>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "WORKERHUB_LOG", default_value = "info")]
    pub log: String,
    /// Where workers with `"isolation": "worktree"` get their git worktrees [default:
    /// DATA_DIR/worktrees].
    #[arg(long, env = "WORKERHUB_WORKTREES_DIR")]
    pub worktrees_dir: Option<PathBuf>,
}

/// Old names still read from `.env` and the environment, and the flag each stands for.
const LEGACY_NAMES: &[(&str, &str)] = &[
    ("MAX_WORKERS", "WORKERHUB_MAX_WORKERS"),
    ("WORKER_TIMEOUT", "WORKERHUB_WORKER_TIMEOUT"),
    ("DEFAULT_AI_CLI", "WORKERHUB_DEFAULT_AI_CLI"),
    ("ENABLED_AI_CLIS", "WORKERHUB_ENABLED_AI_CLIS"),
    ("WORKERS_BASE_DIR", "WORKERHUB_WORKERS_BASE_DIR"),
    ("CLAUDE_BINARY", "WORKERHUB_CLAUDE_BINARY"),
    ("CLAUDE_MODEL", "WORKERHUB_CLAUDE_MODEL"),
    ("CLAUDE_API_KEY", "WORKERHUB_CLAUDE_API_KEY"),
    ("CODEX_BINARY", "WORKERHUB_CODEX_BINARY"),
    ("GEMINI_BINARY", "WORKERHUB_GEMINI_BINARY"),
    ("OPENCODE_BINARY", "WORKERHUB_OPENCODE_BINARY"),
    ("OPENCODE_MODEL", "WORKERHUB_OPENCODE_MODEL"),
    ("OPENCODE_API_KEY", "WORKERHUB_OPENCODE_API_KEY"),
    ("OPENCODE_API_BASE", "WORKERHUB_OPENCODE_API_BASE"),
];

/// What the server runs with, converted from the arguments in one pure step before
/// any thread starts (`ServeArgs::config`), and checked.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub static_dir: Option<PathBuf>,
    /// HTTP handler threads and WebSocket writer threads.
    pub threads: usize,
    pub writer_threads: usize,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub sockets: SocketConfig,
    pub workers: WorkerConfig,
    pub commands: CommandConfig,
    /// Kinds from a `--config` file.
    pub kinds_file: Option<PathBuf>,
    /// Hosts from a `--hosts` file.
    pub hosts_file: Option<PathBuf>,
    /// Any ssh destination may be a worker's host.
    pub allow_adhoc_hosts: bool,
    pub cli: crate::adapters::CliSettings,
    /// Server variables passed to every child all the same.
    pub pass_env: Vec<String>,
    /// Between `system:status` pushes (None: never).
    pub status_every: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub off: bool,
    pub tokens: Vec<String>,
    pub tokens_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Silence allowed on a connection, and the whole of a request head.
    pub timeout: Duration,
    pub max_head_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_body: usize,
    pub allow_hosts: Vec<String>,
    pub allow_origins: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct SocketConfig {
    pub conn: crate::ws::conn::ConnConfig,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub max_workers: usize,
    pub max_stored_workers: usize,
    pub max_workers_per_token: usize,
    pub turn_timeout: Duration,
    pub stop_grace: Duration,
    pub result_grace: Duration,
    pub approval_timeout: Option<Duration>,
    /// Relative project paths are taken from here.
    pub base_dir: PathBuf,
    pub default_kind: String,
    /// As given; resolved (symlinks and all) at start.
    pub project_roots: Vec<PathBuf>,
    pub feed: crate::feed::FeedConfig,
    /// Where worktrees are made (`DATA_DIR/worktrees` unless `--worktrees-dir`).
    pub worktrees_dir: PathBuf,
}

#[derive(Clone, Copy, Debug)]
pub struct CommandConfig {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub max_running: usize,
    pub max_per_token: usize,
}

/// The largest request head (request line and headers) a client may send (431 past it).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Seconds as a duration, clamped to what makes sense (negative is zero).
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, 1e9)).unwrap_or(Duration::ZERO)
}

impl ServeArgs {
    /// The AI kinds' settings from these arguments.
    pub fn cli_settings(&self) -> crate::adapters::CliSettings {
        let mut given = std::collections::HashMap::new();
        for (kind, binary, model, api_key, api_base) in [
            (
                "claude",
                &self.claude_binary,
                &self.claude_model,
                &self.claude_api_key,
                &None,
            ),
            ("codex", &self.codex_binary, &None, &None, &None),
            ("gemini", &self.gemini_binary, &None, &None, &None),
            (
                "opencode",
                &self.opencode_binary,
                &self.opencode_model,
                &self.opencode_api_key,
                &self.opencode_api_base,
            ),
        ] {
            given.insert(
                kind.to_string(),
                crate::adapters::KindSettings {
                    binary: binary.clone(),
                    model: model.clone(),
                    api_key: api_key.clone(),
                    api_base: api_base.clone(),
                },
            );
        }
        let enabled = self.enabled_ai_clis.clone().map(|v| {
            v.into_iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        });
        crate::adapters::CliSettings::new(given, enabled)
    }

    /// The server's configuration, checked: combinations that would expose the server
    /// are refused here, with the reason.
    pub fn config(&self) -> Result<ServerConfig, String> {
        if self.no_auth && !crate::auth::is_loopback(&self.host) {
            return Err(format!(
                "refusing --no-auth on {}: without a token anyone who can reach the server can run programs; \
                 --no-auth is only allowed on a loopback address",
                self.host
            ));
        }
        if self.no_auth && self.allow_origin.iter().any(|o| o.trim() == "*") {
            return Err(
                "refusing --no-auth with --allow-origin '*': any web page open in a browser on this machine \
                 could then run programs here; name the origins you trust, or keep authentication on"
                    .to_string(),
            );
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let http_timeout = seconds(self.http_timeout).max(Duration::from_millis(100));
        let base_dir = match &self.workers_base_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| "/".into()),
        };
        Ok(ServerConfig {
            host: self.host.clone(),
            port: self.port,
            data_dir: self.data_dir.clone(),
            static_dir: self.static_dir.clone(),
            threads: self.threads.unwrap_or((4 * cores).max(8)).max(1),
            writer_threads: self.writer_threads.unwrap_or(cores).max(1),
            auth: AuthConfig {
                off: self.no_auth,
                tokens: self.token.clone(),
                tokens_file: self.tokens.clone(),
            },
            http: HttpConfig {
                timeout: http_timeout,
                max_head_bytes: MAX_HEAD_BYTES,
                max_connections: self.max_http_connections.max(1),
                max_connections_per_ip: self.max_http_connections_per_ip.max(1),
                max_body: self.max_body_bytes,
                allow_hosts: self.allow_host.clone(),
                allow_origins: self.allow_origin.clone(),
            },
            sockets: SocketConfig {
                conn: crate::ws::conn::ConnConfig {
                    outbox_bytes: self.outbox_bytes,
                    stall_timeout: seconds(self.stall_timeout).max(Duration::from_millis(100)),
                    max_message_bytes: self.max_message_bytes,
                    ping_interval: seconds(self.ping_interval).max(Duration::from_millis(100)),
                    pong_timeout: seconds(self.pong_timeout).max(Duration::from_millis(100)),
                    close_grace: Duration::from_secs(2),
                    // A client closed for being too slow may be stalled: give it time to
                    // read up to the close frame (its kernel buffers), so it learns where
                    // to resume.
                    stall_close_grace: Duration::from_secs(30),
                },
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
            },
            workers: WorkerConfig {
                max_workers: self.max_workers,
                max_stored_workers: self.max_stored_workers.max(1),
                max_workers_per_token: self.max_workers_per_token.unwrap_or(self.max_workers),
                turn_timeout: Duration::from_secs(self.worker_timeout),
                stop_grace: seconds(self.stop_grace),
                result_grace: Duration::from_secs(2),
                approval_timeout: self.approval_timeout.filter(|s| *s > 0.0).map(seconds),
                base_dir,
                default_kind: self.default_ai_cli.clone(),
                project_roots: self.project_root.clone(),
                feed: crate::feed::FeedConfig {
                    memory_events: self.memory_events,
                    limits: crate::feed::store::StoreLimits {
                        segment_bytes: self.history_segment_bytes.max(4096),
                        max_bytes: self.history_max_bytes,
                    },
                },
                // git runs in the repository: the folder must not be relative to here.
                worktrees_dir: std::path::absolute(
                    self.worktrees_dir
                        .clone()
                        .unwrap_or_else(|| self.data_dir.join("worktrees")),
                )
                .map_err(|err| format!("--worktrees-dir cannot be used: {err}"))?,
            },
            commands: CommandConfig {
                default_timeout: seconds(self.exec_timeout),
                max_timeout: seconds(self.exec_timeout_max),
                max_running: self.max_commands,
                max_per_token: self.max_commands_per_token.unwrap_or(self.max_commands),
            },
            kinds_file: self.config.clone(),
            hosts_file: self.hosts.clone(),
            allow_adhoc_hosts: self.allow_adhoc_hosts,
            cli: self.cli_settings(),
            pass_env: self.pass_env.clone(),
            status_every: (self.status_interval > 0.0).then(|| seconds(self.status_interval)),
        })
    }
}

/// Loads `.env` into the environment (never overriding what is set) and maps the old
/// names. Must run before any thread starts.
pub fn load_environment() -> Option<PathBuf> {
    let loaded = dotenvy::dotenv().ok();
    for (old, new) in LEGACY_NAMES {
        if std::env::var_os(new).is_none()
            && let Some(value) = std::env::var_os(old)
        {
            crate::sys::set_env_before_threads(new, &value);
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["workerhub"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().serve
    }

    #[test]
    fn the_arguments_become_a_checked_configuration() {
        let config = args(&["--port", "0", "--stop-grace=-3", "--status-interval", "0"])
            .config()
            .unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.workers.stop_grace, Duration::ZERO);
        assert!(config.status_every.is_none());
        assert!(config.threads >= 1 && config.writer_threads >= 1);
        assert_eq!(config.http.max_head_bytes, MAX_HEAD_BYTES);
    }

    #[test]
    fn combinations_that_expose_the_server_are_refused() {
        assert!(
            args(&["--no-auth", "--host", "0.0.0.0"])
                .config()
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            args(&["--no-auth", "--allow-origin", "*"])
                .config()
                .unwrap_err()
                .contains("--allow-origin")
        );
        assert!(args(&["--no-auth"]).config().is_ok());
    }
}
