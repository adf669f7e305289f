//! `/api/workers`, `/api/ai-clis` and the per-worker WebSocket `/ws/{id}`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::{Reply, Request};
use crate::server::App;
use crate::ws::worker_stream::WorkerStream;

/// Each kind: its program, whether it is available (found, and `--version` answers),
/// its version, default model, and whether it is enabled.
pub fn kinds(app: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(json!({"ai_clis": app.hub.registry.describe()})))
}

pub fn list(app: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, ApiError> {
    let workers: Vec<Value> = app.hub.list().iter().map(|w| w.view()).collect();
    Ok(Reply::ok(json!({"workers": workers})))
}

pub fn create(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let worker = app.hub.create(&body, req.caller)?;
    Ok(Reply::Json(201, worker.view()))
}

pub fn get(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(app.hub.require(req.param(0))?.view()))
}

pub fn delete(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let id = req.param(0).to_string();
    app.hub.delete(&id)?;
    Ok(Reply::ok(json!({"deleted": id})))
}

pub fn send(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let worker = app.hub.require(req.param(0))?;
    let body = req.json()?;
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("`content` is required: the message, a string"))?;
    let ack = worker.send_message(content)?;
    Ok(Reply::Json(202, ack))
}

/// `?since=N&limit=M`: events after seq N, at most M (default 1000, at most 10000).
pub fn events(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let worker = app.hub.require(req.param(0))?;
    let since = req.query_u64("since")?.unwrap_or(0);
    let limit = req.query_u64("limit")?.unwrap_or(1000).clamp(1, 10_000) as usize;
    let page = worker.feed.page(since, limit);
    // The events are already JSON: splice them into the answer without parsing them.
    let mut body = Vec::with_capacity(
        page.events
            .iter()
            .map(|e| e.json().len() + 1)
            .sum::<usize>()
            + 128,
    );
    body.extend_from_slice(b"{\"worker_id\":");
    body.extend_from_slice(Value::from(worker.id.as_str()).to_string().as_bytes());
    body.extend_from_slice(
        format!(
            ",\"first_seq\":{},\"last_seq\":{},\"events\":[",
            page.first_seq, page.last_seq
        )
        .as_bytes(),
    );
    for (i, event) in page.events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.json());
    }
    let next = page
        .events
        .last()
        .map_or(since.max(page.first_seq.saturating_sub(1)), |e| e.seq);
    body.extend_from_slice(format!("],\"next_since\":{next}}}\n").as_bytes());
    Ok(Reply::Bytes {
        status: 200,
        content_type: "application/json".into(),
        body,
    })
}

pub fn interrupt(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(app.hub.require(req.param(0))?.interrupt()?))
}

/// Ends the running turn (or the process) and drops queued messages.
pub fn stop(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let worker = app.hub.require(req.param(0))?;
    let mut answer = worker.stop();
    if let Some(map) = answer.as_object_mut() {
        map.insert("worker".into(), worker.view());
    }
    Ok(Reply::ok(answer))
}

/// Starts a long-running worker's process again.
pub fn start(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(app.hub.require(req.param(0))?.restart()?))
}

pub fn stream(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let worker = app.hub.require(req.param(0))?;
    let since = req.query_u64("since")?;
    Ok(Reply::Upgrade(Box::new(WorkerStream::new(worker, since))))
}

/// `/ws`: the agent protocol.
pub fn agents(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::Upgrade(Box::new(
        crate::protocol::session::AgentSession::new(app.clone(), req.caller),
    )))
}

/// `{"token"}`: sets the cookie the page authenticates with.
pub fn login(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let token = body.get("token").and_then(Value::as_str).unwrap_or("");
    if !app.auth.enabled() {
        return Ok(Reply::ok(json!({"ok": true, "auth": false})));
    }
    if app.auth.check(token).is_none() {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "that token is not valid",
        ));
    }
    let secure = req
        .header("X-Forwarded-Proto")
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    Ok(Reply::WithHeaders(
        Box::new(Reply::ok(json!({"ok": true, "auth": true}))),
        vec![(
            "Set-Cookie".into(),
            crate::http::auth::set_cookie(token, secure),
        )],
    ))
}
