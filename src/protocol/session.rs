//! One `/ws` connection of the agent protocol: every request checked, answered once with
//! its `correlation_id`, and long work (stopping, deleting, running commands, following
//! a turn) done off the connection's reader thread so the connection stays responsive.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use serde_json::{Value, json};

use super::watch::TurnWatch;
use super::{PROTOCOL_VERSION, Request, envelope, parse_request};
use crate::error::ApiError;
use crate::exec::{self, ExecRequest};
use crate::http::auth::Caller;
use crate::metrics::{self, METRICS};
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
        self.app.clients.add(conn);
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
                    .create(&Value::Object(req.payload.clone()), self.caller)?;
                reply(conn, "agent:created", worker.view(), id);
            }
            "agent:status" if req.payload.contains_key("worker_id") || req.target.is_some() => {
                let worker = app.hub.require(&worker_id(req)?)?;
                reply(conn, "agent:status", worker.view(), id);
            }
            "agent:status" | "agent:list" => {
                let agents: Vec<Value> = app.hub.list().iter().map(|w| w.view()).collect();
                reply(conn, "agent:status", json!({"agents": agents}), id);
            }
            "agent:subscribe" => {
                let worker = app.hub.require(&worker_id(req)?)?;
                let since = match req.payload.get("since") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        ApiError::bad_request("`since` must be a non-negative integer")
                    })?),
                };
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
                let worker = app.hub.get(&worker).map_or(worker, |w| w.id.clone());
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
                let worker = app.hub.require(&worker_id(req)?)?;
                let answer = worker.interrupt()?;
                reply(
                    conn,
                    "agent:status",
                    json!({"worker_id": worker.id, "interrupt": answer}),
                    id,
                );
            }
            "agent:stop" | "agent:delete" => {
                let worker = app.hub.require(&worker_id(req)?)?;
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
                let task = app.tasks.create(&req.payload)?;
                reply(conn, "task:update", json!({"task": task.json()}), id);
            }
            "task:list" => {
                let status = req.payload.get("status").and_then(Value::as_str);
                let tasks: Vec<Value> = app.tasks.list(status).iter().map(|t| t.json()).collect();
                reply(conn, "task:list", json!({"tasks": tasks}), id);
            }
            "task:cancel" => {
                let task = app.tasks.cancel(&task_id(req)?)?;
                reply(conn, "task:update", json!({"task": task.json()}), id);
            }
            "task:run" => {
                let task = app.tasks.run_now(&task_id(req)?)?;
                reply(conn, "task:update", json!({"task": task.json()}), id);
            }
            "system:status" => reply(
                conn,
                "system:status",
                crate::api::system::status_json(app),
                id,
            ),
            "system:metric" => reply(
                conn,
                "system:metric",
                crate::api::system::metrics_json(app),
                id,
            ),
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
            let worker = app.hub.require(&target)?;
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
                let sent = worker.send_message(content)?;
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
            if let Err(err) = worker.send_message_as(content, message_id) {
                worker
                    .feed
                    .unsubscribe(crate::feed::Subscriber::id(&*watch));
                return Err(err);
            }
            return Ok(());
        }

        let request = app.exec_request(&req.payload)?;
        let permit = app.command_permit(self.caller)?;
        let conn = conn.clone();
        in_background("command", move || {
            let _permit = permit;
            let weak = Arc::downgrade(&conn);
            let result = exec::run(&app.hub.engine, &request, &|n, pipe, text| {
                if let Some(conn) = weak.upgrade() {
                    let payload = json!({"line": n, "stream": pipe.as_str(), "text": text});
                    let frame = envelope("command:progress", payload, None, Some(&id));
                    conn.push_shared(crate::ws::frame::text(frame.to_string().as_bytes()).into());
                }
            });
            metrics::inc(&METRICS.commands_run);
            if !result.success() {
                metrics::inc(&METRICS.commands_failed);
            }
            METRICS.command_latency.observe(result.duration);
            reply(&conn, "command:result", result.json(), &id);
        });
        Ok(())
    }
}

/// A running one-off command's place against `--max-commands` and its token's limit.
pub struct CommandPermit {
    app: Arc<App>,
    caller: Caller,
}

impl Drop for CommandPermit {
    fn drop(&mut self) {
        self.app.running_commands.fetch_sub(1, Ordering::SeqCst);
        if let Some(caller) = self.caller
            && let Some(n) = self
                .app
                .commands_by_token
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&caller)
        {
            *n = n.saturating_sub(1);
        }
    }
}

impl App {
    /// Takes one of the `--max-commands` slots (and one of the caller's token).
    pub fn command_permit(self: &Arc<Self>, caller: Caller) -> Result<CommandPermit, ApiError> {
        if let Some(caller) = caller {
            let mut by_token = self
                .commands_by_token
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mine = by_token.entry(caller).or_insert(0);
            if *mine >= self.max_commands_per_token {
                return Err(ApiError::new(
                    429,
                    "too_many_commands",
                    format!(
                        "this token runs {mine} commands, its limit (--max-commands-per-token) is {}",
                        self.max_commands_per_token
                    ),
                ));
            }
            *mine += 1;
        }
        let permit = CommandPermit {
            app: self.clone(),
            caller,
        };
        let running = self.running_commands.fetch_add(1, Ordering::SeqCst);
        if running >= self.max_commands {
            drop(permit);
            return Err(ApiError::new(
                429,
                "too_many_commands",
                format!(
                    "{running} commands are running, the limit (--max-commands) is {}",
                    self.max_commands
                ),
            ));
        }
        Ok(permit)
    }

    /// Reads a one-off command request and checks its folder against the project roots.
    pub fn exec_request(
        &self,
        payload: &serde_json::Map<String, Value>,
    ) -> Result<ExecRequest, ApiError> {
        let request = ExecRequest::from_json(payload, &self.exec_cwd, self.exec_limits)?;
        let canonical = request
            .cwd
            .canonicalize()
            .map_err(|e| ApiError::bad_request(format!("`cwd` cannot be used: {e}")))?;
        self.hub.check_root(&canonical)?;
        Ok(request)
    }
}
