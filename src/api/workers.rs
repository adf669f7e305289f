//! `/api/workers`, `/api/ai-clis` and the per-worker WebSocket `/ws/{id}`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Access;
use crate::error::{Error, ErrorCode, ErrorKind};
use crate::http::reply::Reply;
use crate::http::request::Request;
use crate::ws::worker_stream::WorkerStream;

/// Each kind: its program, whether it is available (found, and `--version` answers),
/// its version, default model, and whether it is enabled; and what a new worker's form
/// needs besides: the default kind and the folders workers may run in.
pub fn kinds(app: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::ok(json!({
        "ai_clis": app.hub.registry.describe(),
        "default": app.hub.default_kind(),
        "project_roots": app.hub.engine.project_roots,
    })))
}

pub fn list(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let workers: Vec<_> = app
        .hub
        .list_for(req.caller()?)
        .iter()
        .map(|w| w.view())
        .collect();
    Ok(Reply::typed(200, &json!({"workers": workers})))
}

pub fn create(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?.clone();
    let body = req.json()?;
    let worker = app.hub.create(&body, &caller)?;
    Ok(Reply::typed(201, &worker.view()))
}

/// The worker of the request's path, if the caller may `access` it.
fn worker(
    app: &Arc<App>,
    req: &Request<'_>,
    access: Access,
) -> Result<Arc<crate::worker::Worker>, Error> {
    app.hub.require_for(req.caller()?, req.param(0), access)
}

pub fn get(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::typed(200, &worker(app, req, Access::Read)?.view()))
}

/// `?keep_branch=false` deletes a worktree's branch too (it is kept by default).
pub fn delete(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    let keep_branch = match req.query("keep_branch") {
        None | Some("" | "true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Err(Error::invalid(format!(
                "`keep_branch` must be true or false, not `{other}`"
            )));
        }
    };
    let removed = app.hub.delete_keeping(&worker.id, keep_branch)?;
    let mut body = json!({"deleted": req.param(0)});
    if let Some(removed) = removed {
        body["worktree"] = serde_json::to_value(removed).unwrap_or(Value::Null);
    }
    Ok(Reply::ok(body))
}

pub fn send(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    let by = req.caller()?.name.clone();
    let body = req.json()?;
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("`content` is required: the message, a string"))?;
    let receipt = worker.send_message(content, &by)?;
    Ok(Reply::typed(202, &receipt))
}

/// Events of one page at most, by default and at most.
const PAGE_EVENTS: u64 = 1000;
const MAX_PAGE_EVENTS: u64 = 10_000;
/// Bytes of events of one page at most: a page stops before the event that would pass
/// it (but always holds at least one event, whatever its size).
const MAX_PAGE_BYTES: usize = 4 << 20;

/// `?since=N&limit=M`: events after seq N, at most M (default 1000, at most 10,000) and
/// at most 4 MiB of them; `next` is the address of the page after this one.
pub fn events(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Read)?;
    let since = req.query_u64("since")?.unwrap_or(0);
    let limit = req.query_u64("limit")?.unwrap_or(PAGE_EVENTS);
    if limit > MAX_PAGE_EVENTS {
        return Err(Error::invalid(format!(
            "`limit` must be at most {MAX_PAGE_EVENTS}; follow `next` for more"
        )));
    }
    let page = worker.feed.page(since, limit as usize, MAX_PAGE_BYTES);
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
    let more = next < page.last_seq;
    let next_url = if more {
        Value::from(format!(
            "/api/workers/{}/events?since={next}&limit={limit}",
            worker.id
        ))
    } else {
        Value::Null
    };
    body.extend_from_slice(
        format!("],\"next_since\":{next},\"has_more\":{more},\"next\":{next_url}}}\n").as_bytes(),
    );
    Ok(Reply::Bytes {
        status: 200,
        content_type: "application/json".into(),
        body,
    })
}

/// The tool approvals a worker waits for.
pub fn approvals(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Read)?;
    Ok(Reply::ok(json!({"approvals": worker.pending_approvals()})))
}

/// Answers a tool approval: `{"decision": "allow"|"allow_session"|"deny", "message"?,
/// "updated_input"?}`. The first answer wins; a later one gets 409 `already_decided`.
pub fn approve(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    let by = req.caller()?.name.to_string();
    let answer = crate::approval::Answer::from_json(&req.json()?)?;
    let resolved = worker.answer_approval(req.param(1), answer, &by)?;
    Ok(Reply::typed(200, &resolved))
}

pub fn interrupt(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::typed(
        200,
        &worker(app, req, Access::Change)?.interrupt()?,
    ))
}

/// Ends the running turn (or the process) and drops queued messages; answers with what
/// it did and the worker as it is afterwards.
pub fn stop(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    let stopped = worker.stop();
    let view = worker.view();
    Ok(Reply::typed(
        200,
        &json!({"stopped": stopped.stopped, "dropped_messages": stopped.dropped_messages, "worker": view}),
    ))
}

/// Starts a long-running worker's process again.
pub fn start(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    app.hub.start(&worker)?;
    Ok(Reply::typed(200, &worker.view()))
}

pub fn stream(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?.clone();
    let worker = worker(app, req, Access::Read)?;
    let since = req.query_u64("since")?;
    worker.check_since(since)?;
    Ok(Reply::Upgrade(Box::new(WorkerStream::new(
        worker, since, caller,
    ))))
}

/// `/ws`: the agent protocol.
pub fn agents(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?.clone();
    Ok(Reply::Upgrade(Box::new(
        crate::protocol::session::AgentSession::new(app.clone(), caller),
    )))
}

/// `{"token"}`: sets the cookie the page authenticates with. Wrong tokens are counted
/// per address and throttled.
pub fn login(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let body = req.json()?;
    let token = body.get("token").and_then(Value::as_str).unwrap_or("");
    if !app.web.auth.enabled() {
        return Ok(Reply::ok(json!({"ok": true, "auth": false})));
    }
    let ip = req.inner.remote_addr().map(|a| a.ip());
    if let Some(left) = app.web.auth.blocked(ip) {
        return Err(crate::auth::too_many_attempts(left));
    }
    if app.web.auth.check(token).is_none() {
        app.web.auth.failed(ip, "login");
        return Err(Error::new(
            ErrorKind::Unauthorized,
            ErrorCode::Unauthorized,
            "that token is not valid",
        ));
    }
    let secure = req
        .header("X-Forwarded-Proto")
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    Ok(Reply::WithHeaders(
        Box::new(Reply::ok(json!({"ok": true, "auth": true}))),
        vec![("Set-Cookie".into(), crate::auth::set_cookie(token, secure))],
    ))
}
