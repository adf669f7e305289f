//! workerhub: run AI coding CLIs and other programs as managed workers, and stream what
//! they print to browsers and WebSocket clients.
//!
//! The path of one line of output, module by module: a child process (`process`) → its
//! reader thread → the broadcast channel (`process::broadcast`) → the worker's adapter
//! (`adapters`) → the worker's feed (`feed`: seq, history on disk, subscribers) → each
//! connection's outbox (`ws::outbox`) → the writer pool (`ws::writer`) → the socket. See
//! docs/ARCHITECTURE.md.

pub mod adapters;
pub mod api;
pub mod app;
pub mod approval;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod dashboards;
pub mod discovery;
pub mod error;
pub mod event;
pub mod exec;
pub mod feed;
pub mod hosts;
pub mod http;
pub mod metrics;
pub mod private_files;
pub mod process;
pub mod protocol;
pub mod server;
pub mod spec;
pub mod status;
pub mod sys;
pub mod tasks;
pub mod terminal;
pub mod timer;
pub mod wire;
pub mod worker;
pub mod worktree;
pub mod ws;
