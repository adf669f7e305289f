//! Health, status, metrics and the API's own description.

use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::error::{Error, ErrorCode};
use crate::http::reply::Reply;
use crate::http::request::Request;
use crate::metrics::{self, Exposition, METRICS, label};
use crate::{status, sys};

pub fn healthz(_: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::ok(json!({"status": "ok"})))
}

pub fn status(app: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::ok(status::status_json(app)))
}

/// `GET /metrics` in the Prometheus text format. It names every worker, so only an
/// admin token may read it.
pub fn prometheus(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    if !req.caller()?.is_admin() {
        return Err(Error::forbidden(
            ErrorCode::Forbidden,
            "metrics name every worker: only an admin token may read them",
        ));
    }
    let mut out = Exposition::new();
    out.one(
        "workerhub_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        app.started.elapsed().as_secs_f64(),
    );
    let workers: Vec<(String, f64)> = status::workers_by_status(app)
        .into_iter()
        .map(|(k, v)| (format!("status=\"{k}\""), v.as_f64().unwrap_or(0.0)))
        .collect();
    out.metric("workerhub_workers", "gauge", "Workers by status.", &workers);
    let tasks: Vec<(String, f64)> = app
        .tasks
        .count_by_status()
        .into_iter()
        .map(|(k, v)| (format!("status=\"{k}\""), v.as_f64().unwrap_or(0.0)))
        .collect();
    out.metric("workerhub_tasks", "gauge", "Tasks by status.", &tasks);
    out.one(
        "workerhub_ws_connections",
        "gauge",
        "Open WebSocket connections.",
        app.sockets.registry.count() as f64,
    );
    for counter in &metrics::COUNTERS {
        out.one(
            counter.name,
            "counter",
            counter.help,
            metrics::get(counter.value) as f64,
        );
    }
    out.one(
        "workerhub_resident_memory_bytes",
        "gauge",
        "Resident memory of the server.",
        sys::rss_bytes() as f64,
    );
    out.one(
        "workerhub_threads",
        "gauge",
        "Threads of the server.",
        sys::thread_count() as f64,
    );
    let mut events = Vec::new();
    let mut bytes = Vec::new();
    for w in app.hub.list() {
        let labels = format!(
            "worker=\"{}\",name=\"{}\"",
            label(&w.id),
            label(&w.spec.name)
        );
        events.push((labels.clone(), w.feed.published() as f64));
        bytes.push((labels, w.feed.published_bytes() as f64));
    }
    out.metric(
        "workerhub_worker_events_total",
        "counter",
        "Events published per worker since the server started.",
        &events,
    );
    out.metric(
        "workerhub_worker_event_bytes_total",
        "counter",
        "Bytes of events published per worker since the server started.",
        &bytes,
    );
    // Per host: its workers' connections and what came over them.
    let hosts = app.hosts.traffic_views();
    let per_host = |value: fn(&crate::hosts::remote::TrafficView) -> u64| -> Vec<(String, f64)> {
        hosts
            .iter()
            .map(|(name, t)| (format!("host=\"{}\"", label(name)), value(t) as f64))
            .collect()
    };
    out.metric(
        "workerhub_host_workers_connected",
        "gauge",
        "Remote programs followed now, per host.",
        &per_host(|t| t.connected),
    );
    out.metric(
        "workerhub_host_workers_disconnected",
        "gauge",
        "Remote programs whose host cannot be reached now, per host.",
        &per_host(|t| t.disconnected),
    );
    out.metric(
        "workerhub_host_reconnects_total",
        "counter",
        "Connections to a host that ended before their program did.",
        &per_host(|t| t.reconnects),
    );
    out.metric(
        "workerhub_host_output_bytes_total",
        "counter",
        "Output bytes received from programs on each host.",
        &per_host(|t| t.bytes),
    );
    out.histogram(
        "workerhub_http_request_seconds",
        "Time to answer an HTTP request.",
        &METRICS.http_latency,
    );
    out.histogram(
        "workerhub_protocol_request_seconds",
        "Time to handle an agent-protocol request on /ws.",
        &METRICS.protocol_latency,
    );
    out.histogram(
        "workerhub_command_seconds",
        "Run time of one-off commands.",
        &METRICS.command_latency,
    );
    Ok(Reply::Bytes {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
        body: out.finish().into_bytes(),
    })
}

/// The OpenAPI 3 description of the REST API.
pub fn openapi(_: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::Bytes {
        status: 200,
        content_type: "application/json".into(),
        body: OPENAPI.as_bytes().to_vec(),
    })
}

pub const OPENAPI: &str = include_str!("openapi.json");
