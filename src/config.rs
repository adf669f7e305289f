//! Command-line arguments, environment and `.env`.
//!
//! Every server flag is also `WORKERHUB_<NAME>` in the environment or in a `.env` file
//! in the working directory; a flag wins over the environment, which wins over `.env`.
//! The names of the older py-worker `.env` (`MAX_WORKERS`, `WORKER_TIMEOUT`, ...) are
//! read too; the `WORKERHUB_` name wins when both are set.

use std::path::PathBuf;

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
    Serve(ServeArgs),
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
    /// Another origin whose pages may use this server (repeatable; `*` allows any).
    #[arg(long, env = "WORKERHUB_ALLOW_ORIGIN", value_delimiter = ',')]
    pub allow_origin: Vec<String>,
    /// Another host name this server answers to (repeatable), e.g. behind a proxy.
    #[arg(long, env = "WORKERHUB_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// Largest request body, in bytes.
    #[arg(long, env = "WORKERHUB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "WORKERHUB_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Most WebSocket connections at once.
    #[arg(long, env = "WORKERHUB_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Bytes a WebSocket client may fall behind before it is closed with 1013.
    #[arg(long, env = "WORKERHUB_OUTBOX_BYTES", default_value_t = 8 << 20)]
    pub outbox_bytes: usize,
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
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "WORKERHUB_LOG", default_value = "info")]
    pub log: String,
}

/// Old names still read from `.env` and the environment, and the flag each stands for.
const LEGACY_NAMES: &[(&str, &str)] = &[
    ("MAX_WORKERS", "WORKERHUB_MAX_WORKERS"),
    ("WORKER_TIMEOUT", "WORKERHUB_WORKER_TIMEOUT"),
];

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
