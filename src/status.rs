//! The server's state as values: workers and tasks by state, connections, messages,
//! uptime (`GET /api/status`, `system:status`), and the counters with every worker's
//! figures (`system:metric`).

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::metrics::{self, METRICS};
use crate::sys;

pub fn workers_by_status(app: &App) -> Map<String, Value> {
    let mut by_status = Map::new();
    for worker in app.hub.list() {
        let key = worker.status().as_str();
        let n = by_status.get(key).and_then(Value::as_u64).unwrap_or(0);
        by_status.insert(key.into(), (n + 1).into());
    }
    by_status
}

/// The tool approvals waiting for someone, and how many workers wait (counts only:
/// every connection gets this, whatever workers its token may see).
fn pending_approvals(app: &App) -> Value {
    let (mut pending, mut workers) = (0, 0);
    for worker in app.hub.list() {
        let n = worker.pending_count();
        pending += n;
        workers += usize::from(n > 0);
    }
    json!({"pending": pending, "workers_waiting": workers})
}

/// Workers and tasks by state, connections, messages, uptime, version.
pub fn status_json(app: &App) -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "workers": {"total": app.hub.list().len(), "by_status": workers_by_status(app)},
        "approvals": pending_approvals(app),
        "tasks": {"total": app.tasks.len(), "by_status": app.tasks.count_by_status()},
        "connections": app.sockets.registry.count(),
        "agent_connections": app.dashboards.count(),
        "messages": {
            "received": metrics::get(&METRICS.ws_messages_received),
            "sent": metrics::get(&METRICS.ws_messages_sent),
        },
        "commands_running": app.commands.running(),
        "process": {"rss_bytes": sys::rss_bytes(), "threads": sys::thread_count(), "open_fds": sys::open_fd_count()},
    })
}

/// The counters as JSON (for `system:metric`).
pub fn metrics_json(app: &App) -> Value {
    let workers: Vec<Value> = app
        .hub
        .list()
        .iter()
        .map(|w| json!({"worker_id": w.id, "name": w.spec.name, "events": w.feed.published(), "bytes": w.feed.published_bytes()}))
        .collect();
    let mut out = Map::new();
    for counter in &metrics::COUNTERS {
        out.insert(counter.key.into(), metrics::get(counter.value).into());
    }
    out.insert("workers".into(), workers.into());
    out.insert("status".into(), status_json(app));
    Value::Object(out)
}
