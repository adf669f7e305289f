//! What every request handler and WebSocket session works with: the server's services,
//! each with one owner. `server.rs` assembles them; the HTTP layer, the REST handlers and
//! the agent protocol use them.

use std::time::Instant;

use crate::dashboards::Dashboards;
use crate::exec::Commands;
use crate::http::Web;
use crate::tasks::Tasks;
use crate::worker::hub::Hub;
use crate::ws::Sockets;
use std::sync::Arc;

pub struct App {
    /// Every worker.
    pub hub: Arc<Hub>,
    /// Tasks for agents.
    pub tasks: Arc<Tasks>,
    /// One-off commands.
    pub commands: Arc<Commands>,
    /// Other machines workers may run on.
    pub hosts: Arc<crate::hosts::Hosts>,
    /// Every agent-protocol connection, for pushes.
    pub dashboards: Arc<Dashboards>,
    /// WebSockets: the writer pool, the open connections, their limits.
    pub sockets: Sockets,
    /// Who may use the HTTP API and from where.
    pub web: Web,
    pub started: Instant,
}
