//! Health and status.

use serde_json::json;

use crate::error::ApiError;
use crate::http::{Reply, Request};
use crate::server::App;
use crate::sys;

pub fn healthz(_: &App, _: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(json!({"status": "ok"})))
}

pub fn status(app: &App, _: &mut Request<'_>) -> Result<Reply, ApiError> {
    let mut by_state = serde_json::Map::new();
    for worker in app.hub.list() {
        let key = worker.status().as_str();
        let n = by_state.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        by_state.insert(key.into(), (n + 1).into());
    }
    Ok(Reply::ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "workers": {"total": app.hub.list().len(), "by_status": by_state},
        "connections": app.writers.count(),
        "process": {"rss_bytes": sys::rss_bytes(), "threads": sys::thread_count(), "open_fds": sys::open_fd_count()},
    })))
}
