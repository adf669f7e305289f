//! One `/ws` connection of the agent protocol: every request checked, answered once with
//! its `correlation_id`, and long work (stopping, deleting, running commands, following
//! a turn) done off the connection's reader thread so the connection stays responsive.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use serde_json::{Value, json};

use super::watch::TurnWatch;
use super::{PROTOCOL_VERSION, Request, envelope, parse_request};
use crate::error::ApiError;
use crate::http::auth::{Access, Caller};
use crate::metrics::METRICS;
use crate::server::App;
use crate::ws::conn::{Conn, Session};
use crate::ws::subscription::Subscription;

pub struct AgentSession {
    app: Arc<App>,
    /// The token the connection was opened with.
    caller: Caller,
    subscriptions: HashMap<String, Arc<Subscription>>,
}

impl AgentSession {
    pub fn new(app: Arc<App>, caller: Caller) -> AgentSession {
        AgentSession {
            app,
            caller,
            subscriptions: HashMap::new(),
        }
    }
}

/// Sends an answer to request `id`.
fn reply(conn: &Arc<Conn>, kind: &str, payload: Value, id: &str) {
    conn.send_json(&envelope(kind, payload, None, Some(id)));
}

fn reply_error(conn: &Arc<Conn>, kind: &str, err: &ApiError, id: Option<&str>) {
    conn.send_json(&envelope(
        kind,
        json!({"code": err.code, "message": err.message, "status": err.status}),
        None,
        id,
    ));
}

fn worker_id(req: &Request) -> Result<String, ApiError> {
    req.payload
        .get("worker_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| req.target.clone())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::bad_request("`payload.worker_id` (or `target`) is required"))
}

fn task_id(req: &Request) -> Result<String, ApiError> {
    req.payload
        .get("task_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("`payload.task_id` is required"))
}

/// Runs `work` on its own thread; the connection keeps serving meanwhile.
fn in_background(name: &str, work: impl FnOnce() + Send + 'static) {
    if let Err(err) = std::thread::Builder::new().name(name.into()).spawn(work) {
        log::error!("could not start a {name} thread: {err}");
    }
}

impl Session for AgentSession {
    fn on_open(&mut self, conn: &Arc<Conn>) {
        self.app.clients.add(conn, &self.caller);
        conn.send_json(&envelope(
            "connection:ack",
            json!({
                "connection_id": conn.id.to_string(),
                "server_version": env!("CARGO_PKG_VERSION"),
                "protocol_version": PROTOCOL_VERSION,
            }),
            None,
            None,
        ));
    }

    fn on_text(&mut self, conn: &Arc<Conn>, text: &str) {
        let started = Instant::now();
        let req = match parse_request(text) {
            Ok(req) => req,
            Err(invalid) => {
                let err = ApiError::bad_request(invalid.message);
                let err = ApiError {
                    code: invalid.code,
                    ..err
                };
                return reply_error(conn, "system:error", &err, invalid.id.as_deref());
            }
        };
        let family = req.kind.split(':').next().unwrap_or("system");
        let error_kind = match family {
            "agent" => "agent:error",
            "command" => "command:error",
            _ => "system:error",
        };
        if let Err(err) = self.dispatch(conn, &req) {
            reply_error(conn, error_kind, &err, Some(&req.id));
        }
        METRICS.protocol_latency.observe(started.elapsed());
    }

    fn on_close(&mut self, conn: &Arc<Conn>) {
        self.app.clients.remove(conn.id);
        for (_, sub) in self.subscriptions.drain() {
            sub.stop();
        }
    }
}

impl AgentSession {
    fn dispatch(&mut self, conn: &Arc<Conn>, req: &Request) -> Result<(), ApiError> {
        let app = &self.app;
        let id = req.id.as_str();
        match req.kind.as_str() {
            "connection:ping" => reply(
                conn,
                "connection:pong",
                json!({"server_time": crate::clock::now_rfc3339()}),
                id,
            ),
            "agent:create" => {
                let worker = app
                    .hub
                    .create(&Value::Object(req.payload.clone()), &self.caller)?;
                reply(conn, "agent:created", worker.view(), id);
            }
            "agent:status" if req.payload.contains_key("worker_id") || req.target.is_some() => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Read)?;
                reply(conn, "agent:status", worker.view(), id);
            }
            "agent:status" | "agent:list" => {
                let agents: Vec<Value> = app
                    .hub
                    .list_for(&self.caller)
                    .iter()
                    .map(|w| w.view())
                    .collect();
                reply(conn, "agent:status", json!({"agents": agents}), id);
            }
            "agent:subscribe" => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Read)?;
                let since = match req.payload.get("since") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        ApiError::bad_request("`since` must be a non-negative integer")
                    })?),
                };
                crate::api::workers::check_since(&worker, since)?;
                if let Some(old) = self.subscriptions.remove(&worker.id) {
                    old.stop();
                }
                let (first, last) = worker.feed.bounds();
                reply(
                    conn,
                    "agent:subscribed",
                    json!({"worker_id": worker.id, "since": since, "first_seq": first, "last_seq": last}),
                    id,
                );
                let sub = Subscription::start(conn, worker.clone(), since, true);
                self.subscriptions.insert(worker.id.clone(), sub);
            }
            "agent:unsubscribe" => {
                let worker = worker_id(req)?;
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker, Access::Read)
                    .map_or(worker, |w| w.id.clone());
                let was = self
                    .subscriptions
                    .remove(&worker)
                    .map(|s| s.stop())
                    .is_some();
                reply(
                    conn,
                    "agent:unsubscribed",
                    json!({"worker_id": worker, "was_subscribed": was}),
                    id,
                );
            }
            "agent:interrupt" => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let answer = worker.interrupt()?;
                reply(
                    conn,
                    "agent:status",
                    json!({"worker_id": worker.id, "interrupt": answer}),
                    id,
                );
            }
            "agent:stop" | "agent:delete" => {
                let worker = app
                    .hub
                    .require_for(&self.caller, &worker_id(req)?, Access::Change)?;
                let delete = req.kind == "agent:delete";
                let (app, conn, id) = (app.clone(), conn.clone(), id.to_string());
                in_background("agent-stop", move || {
                    let answer = if delete {
                        app.hub
                            .delete(&worker.id)
                            .map(|_| json!({"worker_id": worker.id, "deleted": true}))
                    } else {
                        let mut answer = worker.stop();
                        answer["worker_id"] = worker.id.clone().into();
                        Ok(answer)
                    };
                    match answer {
                        Ok(payload) => reply(&conn, "agent:stopped", payload, &id),
                        Err(err) => reply_error(&conn, "agent:error", &err, Some(&id)),
                    }
                });
            }
            "command:execute" => self.execute(conn, req)?,
            "task:assign" => {
                let task = app.tasks.create(&req.payload, &self.caller)?;
                reply(conn, "task:update", json!({"task": task.json()}), id);
            }
            "task:list" => {
                let status = match req.payload.get("status") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(crate::tasks::parse_status(v.as_str().unwrap_or(""))?),
                };
                let tasks: Vec<Value> = app
                    .tasks
                    .list(&self.caller, status)
                    .iter()
                    .map(|t| t.json())
                    .collect();
                reply(conn, "task:list", json!({"tasks": tasks}), id);
            }
            "task:cancel" => {
                let task = app.tasks.cancel(&self.caller, &task_id(req)?)?;
                reply(conn, "task:update", json!({"task": task.json()}), id);
            }
            "task:run" => {
                let task = app.tasks.run_now(&self.caller, &task_id(req)?)?;
                reply(conn, "task:update", json!({"task": task.json()}), id);
            }
            "system:status" => reply(
                conn,
                "system:status",
                crate::api::system::status_json(app),
                id,
            ),
            "system:metric" => {
                if !self.caller.is_admin() {
                    return Err(ApiError::new(
                        403,
                        "forbidden",
                        "metrics name every worker: only an admin token may read them",
                    ));
                }
                reply(
                    conn,
                    "system:metric",
                    crate::api::system::metrics_json(app),
                    id,
                )
            }
            other => {
                return Err(ApiError::new(
                    400,
                    "unknown_type",
                    format!("unknown message type `{other}`"),
                ));
            }
        }
        Ok(())
    }

    /// `command:execute`: a message to an agent (`target` or `payload.worker_id`, with
    /// `payload.content`), answered when its turn ends; or a one-off program
    /// (`payload.argv`), answered when it exits. Output comes as `command:progress`.
    fn execute(&mut self, conn: &Arc<Conn>, req: &Request) -> Result<(), ApiError> {
        let app = self.app.clone();
        let id = req.id.clone();
        let target = req.target.clone().or_else(|| {
            req.payload
                .get("worker_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if let Some(target) = target {
            let worker = app.hub.require_for(&self.caller, &target, Access::Change)?;
            let content = req
                .payload
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "`payload.content` is required: the message for the agent",
                    )
                })?;
            if !worker.has_turns() {
                // A program without turns: the message goes to its stdin; nothing marks
                // the end of an answer.
                let sent = worker.send_message(content, &self.caller.name)?;
                reply(
                    conn,
                    "command:result",
                    json!({"success": true, "worker_id": worker.id, "sent": sent}),
                    &id,
                );
                return Ok(());
            }
            let message_id = uuid::Uuid::new_v4().to_string();
            let weak: Weak<Conn> = Arc::downgrade(conn);
            let source: Arc<str> = worker.id.as_str().into();
            let (done_conn, done_id, worker_id) = (weak.clone(), id.clone(), worker.id.clone());
            let message = message_id.clone();
            let watch = TurnWatch::start(
                &worker,
                &message_id,
                move |event| {
                    if let Some(conn) = weak.upgrade() {
                        let payload = json!({"worker_id": &*source, "event": event.to_value()});
                        let frame = envelope("command:progress", payload, Some(&source), Some(&id));
                        conn.push_shared(
                            crate::ws::frame::text(frame.to_string().as_bytes()).into(),
                        );
                    }
                },
                move |outcome| {
                    if let Some(conn) = done_conn.upgrade() {
                        let mut payload = outcome.json();
                        payload["worker_id"] = worker_id.into();
                        payload["message_id"] = message.into();
                        reply(&conn, "command:result", payload, &done_id);
                    }
                },
            );
            if let Err(err) = worker.send_message_as(content, message_id, &self.caller.name) {
                worker
                    .feed
                    .unsubscribe(crate::feed::Subscriber::id(&*watch));
                return Err(err);
            }
            return Ok(());
        }

        let request = app.commands.request(&req.payload)?;
        let permit = app.commands.permit(&self.caller, &request.argv)?;
        let weak = Arc::downgrade(conn);
        let done_conn = conn.clone();
        let done_id = id.clone();
        app.commands.spawn(
            permit,
            request,
            Box::new(move |n, pipe, text| {
                if let Some(conn) = weak.upgrade() {
                    let payload = json!({"line": n, "stream": pipe.as_str(), "text": text});
                    let frame = envelope("command:progress", payload, None, Some(&id));
                    conn.push_shared(crate::ws::frame::text(frame.to_string().as_bytes()).into());
                }
            }),
            Box::new(move |result| reply(&done_conn, "command:result", result.json(), &done_id)),
        );
        Ok(())
    }
}
