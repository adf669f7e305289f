//! workerhub: run AI coding CLIs and other programs as managed workers, and stream what
//! they print to browsers and WebSocket clients.
//!
//! The path of one line of output, module by module: a child process (`worker::process`)
//! → its reader thread → the broadcast channel → the worker's adapter (`adapters`) → the
//! worker's feed (`feed`: seq, history on disk, subscribers) → each connection's outbox
//! (`ws::conn`) → the writer pool (`ws::writer`) → the socket. See docs/ARCHITECTURE.md.

pub mod adapters;
pub mod api;
pub mod batch;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod exec;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod private_files;
pub mod protocol;
pub mod server;
pub mod sys;
pub mod tasks;
pub mod timer;
pub mod worker;
pub mod ws;
