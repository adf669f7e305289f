//! Codex's app server (`codex app-server`): JSON-RPC over stdio, one message a line,
//! without the `jsonrpc` field. A live Codex worker runs one app server for many turns:
//! `initialize`, the `initialized` notification, `thread/start` in the project folder
//! (or `thread/resume` of the thread to continue), then `turn/start` per message; the
//! `turn/completed` notification ends the turn and `turn/interrupt` interrupts it.
//! Items become events as `codex exec --json` items do (`agentMessage` → text,
//! `reasoning` → thinking, `commandExecution` and `fileChange` → tool use and result),
//! its approval requests (`item/commandExecution/requestApproval`,
//! `item/fileChange/requestApproval`) approvals answered `accept`, `acceptForSession`,
//! `decline` or `cancel`. What it says that this client does not know becomes a
//! `system` event, and a request it cannot serve gets a JSON-RPC error.

use serde_json::{Map, Value, json};

use super::failure::retry;
use super::{
    Ask, LineParser, Parsed, Pending, Rpc, TurnEnd, error_text, json_object, request_key,
    system_of as system,
};
use crate::approval::Answer;
use crate::event::{AgentContent, Decision, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::spec::WorkerSpec;

/// What a request this client sent was for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sent {
    Initialize,
    StartThread,
    ResumeThread,
    StartTurn,
    Interrupt,
}

/// One app server's conversation.
pub struct CodexSession {
    cwd: String,
    model: Option<String>,
    /// `approvalPolicy` and `sandbox` of the thread.
    approval_policy: &'static str,
    sandbox: String,
    resume: Option<String>,
    thread: Option<String>,
    /// The turn running (once Codex said its id); `thread` is set once the session is
    /// ready.
    turn: Option<String>,
    requests: Pending<Sent>,
    held: Option<String>,
    /// An interrupt asked for before the turn had its id: sent once it has.
    interrupt_pending: bool,
    usage: Option<Value>,
    label: String,
    hint: String,
}

impl CodexSession {
    /// `asks`: the worker's policy leaves calls to people (Codex asks for anything its
    /// rules do not trust), else it runs everything.
    pub fn new(
        spec: &WorkerSpec,
        resume: Option<&str>,
        model: Option<String>,
        asks: bool,
        hint: String,
    ) -> CodexSession {
        // Commands may write in the project folder unless the worker says otherwise
        // (`permission_mode`: read-only, workspace-write, danger-full-access), asking or
        // not.
        let sandbox = spec
            .options
            .permission_mode
            .clone()
            .unwrap_or_else(|| "workspace-write".into());
        CodexSession {
            cwd: spec.project_path.display().to_string(),
            model,
            approval_policy: if asks { "untrusted" } else { "never" },
            sandbox,
            resume: resume.map(str::to_string),
            thread: None,
            turn: None,
            requests: Pending::new(false),
            held: None,
            interrupt_pending: false,
            usage: None,
            label: "Codex".into(),
            hint,
        }
    }

    fn thread_params(&self) -> Value {
        let mut params = json!({
            "cwd": self.cwd,
            "approvalPolicy": self.approval_policy,
            "sandbox": self.sandbox,
        });
        if let Some(model) = &self.model {
            params["model"] = json!(model);
        }
        params
    }

    fn open_thread(&mut self, out: &mut Parsed) {
        let reply = match self.resume.clone() {
            Some(thread) => {
                let mut params = self.thread_params();
                params["threadId"] = json!(thread);
                self.requests
                    .request("thread/resume", params, Sent::ResumeThread)
            }
            None => {
                let params = self.thread_params();
                self.requests
                    .request("thread/start", params, Sent::StartThread)
            }
        };
        out.replies.push(reply);
    }

    fn interrupt_request(&mut self) -> Option<Vec<u8>> {
        let (thread, turn) = (self.thread.clone()?, self.turn.clone()?);
        Some(self.requests.request(
            "turn/interrupt",
            json!({"threadId": thread, "turnId": turn}),
            Sent::Interrupt,
        ))
    }

    fn send_pending_interrupt(&mut self, out: &mut Parsed) {
        if self.interrupt_pending
            && let Some(bytes) = self.interrupt_request()
        {
            self.interrupt_pending = false;
            out.replies.push(bytes);
        }
    }

    fn start_turn(&mut self, message: &str) -> Vec<u8> {
        self.interrupt_pending = false;
        let params = json!({
            "threadId": self.thread,
            "input": [{"type": "text", "text": message}],
        });
        self.requests.request("turn/start", params, Sent::StartTurn)
    }

    fn on_response(&mut self, id: u64, map: &Map<String, Value>, raw: &str, out: &mut Parsed) {
        let Some((what, result, error)) = self.requests.answered(id, map, raw, out) else {
            return;
        };
        match (what, error) {
            (Sent::Initialize, None) => {
                out.events.push(Event::agent(AgentContent::system(
                    "init",
                    json!({"server": result.get("userAgent")}),
                    raw,
                )));
                out.replies
                    .push(self.requests.message(json!({"method": "initialized"})));
                self.open_thread(out);
            }
            (Sent::StartThread | Sent::ResumeThread, None) => {
                let thread = result["thread"]["id"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| self.resume.clone());
                self.resume = None;
                let Some(thread) = thread else {
                    return self.fail("Codex started no thread", raw, out);
                };
                out.events.push(Event::agent(AgentContent::system(
                    "thread",
                    json!({"session_id": thread, "model": result.get("model")}),
                    raw,
                )));
                self.thread = Some(thread.clone());
                out.session_id = Some(thread);
                if let Some(message) = self.held.take() {
                    let turn = self.start_turn(&message);
                    out.replies.push(turn);
                }
            }
            (Sent::ResumeThread, Some(error)) => {
                let lost = self.resume.take().unwrap_or_default();
                out.events.push(Event::agent(AgentContent::session_lost(
                    &lost,
                    format!("Codex could not resume the earlier thread ({}); this message starts a new one", error_text(error)),
                    raw,
                )));
                self.open_thread(out);
            }
            (Sent::StartTurn, None) => {
                self.turn = result["turn"]["id"].as_str().map(str::to_string);
                out.events.push(system("turn_started", map, raw));
                self.send_pending_interrupt(out);
            }
            (Sent::StartTurn, Some(error)) => {
                out.events.push(Event::error(
                    crate::error::ErrorCode::TurnFailed,
                    format!("Codex did not start the turn: {}", error_text(error)),
                ));
                out.turn_end = Some(TurnEnd { is_error: true });
            }
            (Sent::Interrupt, _) => out.events.push(system("interrupt", map, raw)),
            (Sent::Initialize | Sent::StartThread, Some(error)) => {
                let why = format!("Codex refused to start a session: {}", error_text(error));
                self.fail(&why, raw, out);
            }
        }
    }

    fn fail(&mut self, why: &str, raw: &str, out: &mut Parsed) {
        super::session_failed(why, raw, out);
        if self.held.take().is_some() {
            out.turn_end = Some(TurnEnd { is_error: true });
        }
    }

    fn on_notification(&mut self, method: &str, params: &Value, raw: &str, out: &mut Parsed) {
        match method {
            "turn/started" => {
                if let Some(turn) = params["turn"]["id"].as_str() {
                    self.turn = Some(turn.to_string());
                }
                self.send_pending_interrupt(out);
                out.events.push(Event::agent(AgentContent::system(
                    "turn_started",
                    json!({"turn_id": self.turn}),
                    raw,
                )));
            }
            "item/started" => self.item_started(&params["item"], raw, out),
            "item/completed" => self.item_completed(&params["item"], raw, out),
            // The whole text comes with the item's completion.
            "item/agentMessage/delta"
            | "item/reasoning/textDelta"
            | "item/reasoning/summaryTextDelta"
            | "item/commandExecution/outputDelta" => {}
            "thread/tokenUsage/updated" => {
                self.usage = params.get("tokenUsage").cloned();
            }
            "turn/completed" => {
                let turn = &params["turn"];
                let status = turn["status"].as_str().unwrap_or("completed");
                let is_error = status == "failed";
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        subtype: Some(status.to_string()),
                        is_error,
                        duration_ms: turn.get("durationMs").cloned(),
                        usage: self.usage.take(),
                        session_id: self.thread.clone(),
                        error: turn.get("error").filter(|e| !e.is_null()).cloned(),
                        raw: raw.to_string(),
                        ..TurnResult::default()
                    }))));
                self.turn = None;
                out.turn_end = Some(TurnEnd { is_error });
            }
            "error" => {
                let message = error_text(&params["error"]);
                if params["willRetry"] == true {
                    out.events.push(retry(None, None, None, None, message, raw));
                } else {
                    out.events.push(
                        match super::failure::classify_text(&params["error"].to_string()) {
                            Some(failure) => failure.event(&self.label, &message, &self.hint),
                            None => Event::error(crate::error::ErrorCode::TurnFailed, message),
                        },
                    );
                }
            }
            "serverRequest/resolved" => {
                out.events.push(Event::agent(AgentContent::system(
                    "request_resolved",
                    params.clone(),
                    raw,
                )));
            }
            _ => out.events.push(Event::agent(AgentContent::system(
                method,
                params.clone(),
                raw,
            ))),
        }
    }

    fn item_started(&mut self, item: &Value, raw: &str, out: &mut Parsed) {
        let id = item["id"].as_str().map(str::to_string);
        let (name, input) = match item["type"].as_str().unwrap_or("") {
            "commandExecution" => (
                "command_execution",
                json!({"command": item.get("command"), "cwd": item.get("cwd")}),
            ),
            "fileChange" => ("file_change", json!({"changes": item.get("changes")})),
            "mcpToolCall" => (
                item["tool"].as_str().unwrap_or("mcp_tool"),
                item.get("arguments").cloned().unwrap_or(Value::Null),
            ),
            "webSearch" => ("web_search", json!({"query": item.get("query")})),
            // Messages and reasoning are shown when they are complete.
            _ => {
                out.events.push(Event::agent(AgentContent::system(
                    "item_started",
                    json!({"item_type": item.get("type"), "id": item.get("id")}),
                    raw,
                )));
                return;
            }
        };
        out.events.push(Event::agent(AgentContent::ToolUse(ToolUse {
            id,
            name: Some(name.to_string()),
            input,
            details: Map::new(),
            raw: raw.to_string(),
        })));
    }

    fn item_completed(&mut self, item: &Value, raw: &str, out: &mut Parsed) {
        let id = item["id"].as_str().map(str::to_string);
        let failed = item["status"] == "failed" || item["status"] == "declined";
        match item["type"].as_str().unwrap_or("") {
            "agentMessage" => out.events.push(Event::agent(AgentContent::text(
                item["text"].as_str().unwrap_or(""),
                raw,
            ))),
            "reasoning" => {
                let text = ["summary", "content"]
                    .iter()
                    .filter_map(|k| item[*k].as_array())
                    .flatten()
                    .filter_map(|t| t.as_str().or_else(|| t["text"].as_str()))
                    .collect::<Vec<_>>()
                    .join("\n");
                out.events
                    .push(Event::agent(AgentContent::thinking(text, raw)));
            }
            "commandExecution" => {
                let exit_code = item["exitCode"].as_i64();
                out.events
                    .push(Event::agent(AgentContent::ToolResult(ToolResult {
                        tool_use_id: id,
                        content: item["aggregatedOutput"].as_str().unwrap_or("").to_string(),
                        is_error: failed || exit_code.is_some_and(|c| c != 0),
                        exit_code,
                        raw: raw.to_string(),
                    })));
            }
            "fileChange" => {
                let files: Vec<&str> = item["changes"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|c| c["path"].as_str()).collect())
                    .unwrap_or_default();
                out.events
                    .push(Event::agent(AgentContent::ToolResult(ToolResult {
                        tool_use_id: id,
                        content: format!("changed {}", files.join(", ")),
                        is_error: failed,
                        exit_code: None,
                        raw: raw.to_string(),
                    })));
            }
            "mcpToolCall" | "webSearch" => {
                out.events
                    .push(Event::agent(AgentContent::ToolResult(ToolResult {
                        tool_use_id: id,
                        content: super::content_text(
                            item.get("result").unwrap_or(&item["results"]),
                        ),
                        is_error: failed,
                        exit_code: None,
                        raw: raw.to_string(),
                    })));
            }
            other => out.events.push(Event::agent(AgentContent::system(
                if other.is_empty() { "item" } else { other },
                item.clone(),
                raw,
            ))),
        }
    }

    fn on_request(
        &mut self,
        id: &Value,
        method: &str,
        params: &Value,
        raw: &str,
        out: &mut Parsed,
    ) {
        let (tool, summary, input) = match method {
            "item/commandExecution/requestApproval" | "execCommandApproval" => {
                let command = match &params["command"] {
                    Value::String(c) => c.clone(),
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => String::new(),
                };
                (
                    "command_execution",
                    command.clone(),
                    json!({"command": command, "cwd": params.get("cwd")}),
                )
            }
            "item/fileChange/requestApproval" | "applyPatchApproval" => (
                "file_change",
                params["reason"]
                    .as_str()
                    .map_or_else(|| "change files".to_string(), str::to_string),
                params.clone(),
            ),
            _ => return self.requests.refuse(id, method, raw, out),
        };
        out.asks.push(Ask {
            key: request_key(id),
            tool_name: tool.to_string(),
            input,
            tool_use_id: params["itemId"].as_str().map(str::to_string),
            reason: params["reason"].as_str().map(str::to_string),
            session_rule: None,
            summary: Some(summary),
            diff: None,
            takes_new_input: false,
            extra: json!({"id": id, "method": method}),
        });
    }
}

impl LineParser for CodexSession {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        match Rpc::of(&map) {
            Rpc::Request { id, method, params } => self.on_request(id, method, params, &raw, out),
            Rpc::Notification { method, params } => self.on_notification(method, params, &raw, out),
            Rpc::Response(id) => self.on_response(id, &map, &raw, out),
            Rpc::Other(subtype) => out.events.push(system(subtype, &map, &raw)),
        }
    }

    fn start(&mut self) -> Option<Vec<u8>> {
        let params =
            json!({"clientInfo": {"name": "workerhub", "version": env!("CARGO_PKG_VERSION")}});
        Some(
            self.requests
                .request("initialize", params, Sent::Initialize),
        )
    }

    fn encode_message(&mut self, message: &str) -> Option<Vec<u8>> {
        if self.thread.is_none() {
            self.held = Some(message.to_string());
            return Some(Vec::new());
        }
        Some(self.start_turn(message))
    }

    fn answer(&mut self, ask: &Ask, answer: &Answer) -> Option<Vec<u8>> {
        let id = &ask.extra["id"];
        // The v1 requests answer with other words.
        let v1 = matches!(
            ask.extra["method"].as_str(),
            Some("execCommandApproval" | "applyPatchApproval")
        );
        let decision = match (answer.decision, v1) {
            (Decision::Allow, false) => "accept",
            (Decision::AllowSession, false) => "acceptForSession",
            (Decision::Deny, false) => "decline",
            (Decision::Cancelled | Decision::Expired, false) => "cancel",
            (Decision::Allow, true) => "approved",
            (Decision::AllowSession, true) => "approved_for_session",
            (Decision::Deny, true) => "denied",
            (Decision::Cancelled | Decision::Expired, true) => "abort",
        };
        Some(
            self.requests
                .message(json!({"id": id, "result": {"decision": decision}})),
        )
    }

    fn interrupt(&mut self) -> Option<Vec<u8>> {
        if self.held.take().is_some() {
            // The message never reached Codex: nothing to interrupt but the wait.
            return Some(Vec::new());
        }
        match self.interrupt_request() {
            Some(bytes) => Some(bytes),
            None => {
                // The turn has no id yet: it is interrupted as soon as it has one.
                self.interrupt_pending = true;
                Some(Vec::new())
            }
        }
    }
}
