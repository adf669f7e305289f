//! The Agent Client Protocol (agentclientprotocol.com): JSON-RPC 2.0 over the agent's
//! stdin and stdout, one message a line, workerhub being the client. The `acp` kind runs
//! any agent that speaks it (the worker's `command`); Gemini CLI (`gemini --acp`) and
//! OpenCode (`opencode acp`) run through the same session in their live mode.
//!
//! One [`AcpSession`] per process keeps the conversation: `initialize`, then
//! `session/new` in the project folder (or `session/load` of the session to resume,
//! when the agent can), then a `session/prompt` per message, whose answer (its
//! `stopReason`) ends the turn; `session/cancel` interrupts. The agent's
//! `session/update` notifications become events (text and thought chunks joined,
//! tool calls with their kind, title, status, locations and diffs, plans), its
//! `session/request_permission` an approval. Whatever it says that this client does
//! not know becomes a `system` event with the line as `raw`, and a request it cannot
//! serve gets a JSON-RPC error: a newer agent never stops a worker.

use serde_json::{Map, Value, json};

use super::{
    Adapter, Ask, Launch, LineParser, Parsed, Pending, Rpc, TurnEnd, error_text, json_object,
    request_key, system_of as system, worker_env,
};
use crate::approval::Answer;
use crate::event::{AgentContent, Decision, Event, Pipe, ToolResult, ToolUse, TurnResult};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

/// The protocol version this client speaks.
const PROTOCOL_VERSION: u64 = 1;

/// The generic kind: any ACP agent, run from the worker's `command`.
pub struct Acp;

impl Adapter for Acp {
    fn kind(&self) -> &str {
        "acp"
    }

    fn label(&self) -> &str {
        "ACP agent"
    }

    fn options(&self) -> Vec<super::OptionSpec> {
        let mut options = vec![
            super::OptionSpec::new(
                "command",
                "Agent command",
                super::OptionKind::Argv,
                "the agent to run, speaking ACP on stdio (codex-acp, npx @agentclientprotocol/claude-agent-acp)",
            )
            .required(),
        ];
        options.extend(
            super::ai_options()
                .into_iter()
                .filter(|o| o.name != "model"),
        );
        options
    }

    fn validate(&self, spec: &WorkerSpec) -> Result<(), String> {
        match &spec.command {
            Some(argv) if !argv.is_empty() => Ok(()),
            _ => Err(
                "an `acp` worker needs `command`: the agent to run (for example [\"codex-acp\"])"
                    .into(),
            ),
        }
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let mut argv = launch
            .spec
            .command
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or("an `acp` worker needs `command`")?;
        argv.extend(launch.spec.options.extra_args.iter().cloned());
        Ok(ProcessSpec {
            argv,
            cwd: launch.spec.project_path.clone(),
            env: worker_env(launch.spec, Vec::new()),
            stdin: true,
            long_lines: true,
        })
    }

    fn session_modes(&self) -> &'static [&'static str] {
        &["live"]
    }

    fn version_args(&self) -> Option<Vec<String>> {
        None
    }

    fn parser(&self, launch: &Launch<'_>) -> Box<dyn LineParser> {
        Box::new(AcpSession::new(launch.spec, launch.session_id))
    }
}

/// Where the conversation with the agent stands.
#[derive(Clone, Debug, PartialEq)]
enum Stage {
    /// `initialize` sent.
    Initializing,
    /// `session/new` or `session/load` sent.
    Opening,
    Ready,
}

/// What a request this client sent was for, to read its answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sent {
    Initialize,
    NewSession,
    LoadSession,
    Prompt,
}

/// Text or thought chunks, joined until something else comes, and their lines.
#[derive(Default)]
struct Chunks {
    thinking: bool,
    text: String,
    raw: Vec<String>,
    /// The bytes of `raw`, kept as they come (summing them at each chunk costs the
    /// square of a long stream).
    raw_len: usize,
}

/// One agent process's ACP conversation (see the module's comment).
pub struct AcpSession {
    cwd: String,
    /// The session to resume, until it is loaded or replaced.
    resume: Option<String>,
    session_id: Option<String>,
    stage: Stage,
    can_load: bool,
    requests: Pending<Sent>,
    /// A message that came before the session was ready.
    held: Option<String>,
    prompting: bool,
    /// `session/cancel` was sent for the running prompt.
    cancelling: bool,
    chunks: Chunks,
    usage: Option<Value>,
    /// The agent's name for people, and what to do about a missing or refused key.
    label: String,
    hint: String,
}

impl AcpSession {
    pub fn new(spec: &WorkerSpec, resume: Option<&str>) -> AcpSession {
        AcpSession {
            cwd: spec.project_path.display().to_string(),
            resume: resume.map(str::to_string),
            session_id: None,
            stage: Stage::Initializing,
            can_load: false,
            requests: Pending::new(true),
            held: None,
            prompting: false,
            cancelling: false,
            chunks: Chunks::default(),
            usage: None,
            label: "The agent".into(),
            hint: "give the agent the key its model API wants (in the server's environment or the worker's env)".into(),
        }
    }

    /// The session of a built-in kind speaking ACP (Gemini CLI, OpenCode): named, with
    /// its key's hint.
    pub fn of_kind(adapter: &dyn Adapter, launch: &Launch<'_>) -> Box<dyn LineParser> {
        Box::new(
            AcpSession::new(launch.spec, launch.session_id)
                .for_kind(adapter.label(), adapter.credential_hint()),
        )
    }

    /// Names the agent and its key's hint in what a failing prompt says.
    pub fn for_kind(mut self, label: &str, hint: String) -> AcpSession {
        self.label = label.to_string();
        self.hint = hint;
        self
    }

    fn prompt(&mut self, message: &str) -> Vec<u8> {
        self.prompting = true;
        self.cancelling = false;
        let params = json!({
            "sessionId": self.session_id,
            "prompt": [{"type": "text", "text": message}],
        });
        self.requests
            .request("session/prompt", params, Sent::Prompt)
    }

    fn open_session(&mut self, out: &mut Parsed) {
        self.stage = Stage::Opening;
        let reply = match self.resume.clone().filter(|_| self.can_load) {
            Some(id) => self.requests.request(
                "session/load",
                json!({"sessionId": id, "cwd": self.cwd, "mcpServers": []}),
                Sent::LoadSession,
            ),
            None => self.requests.request(
                "session/new",
                json!({"cwd": self.cwd, "mcpServers": []}),
                Sent::NewSession,
            ),
        };
        out.replies.push(reply);
    }

    fn ready(&mut self, session: String, out: &mut Parsed) {
        // Nothing of a loaded session's replay runs into the first answer.
        self.chunks = Chunks::default();
        self.stage = Stage::Ready;
        self.session_id = Some(session.clone());
        out.session_id = Some(session);
        if let Some(message) = self.held.take() {
            let prompt = self.prompt(&message);
            out.replies.push(prompt);
        }
    }

    /// Joined chunks become one event when something else comes.
    fn flush(&mut self, out: &mut Parsed) {
        let chunks = std::mem::take(&mut self.chunks);
        if chunks.text.is_empty() {
            return;
        }
        let raw = chunks.raw.join("\n");
        out.events.push(Event::agent(if chunks.thinking {
            AgentContent::thinking(chunks.text, raw)
        } else {
            AgentContent::text(chunks.text, raw)
        }));
    }

    fn chunk(&mut self, thinking: bool, update: &Value, raw: &str, out: &mut Parsed) {
        if self.chunks.thinking != thinking {
            self.flush(out);
            self.chunks.thinking = thinking;
        }
        let content = &update["content"];
        match content["type"].as_str() {
            Some("text") | None => {
                self.chunks
                    .text
                    .push_str(content["text"].as_str().unwrap_or(""));
                self.chunks.raw.push(raw.to_string());
                self.chunks.raw_len += raw.len();
                // A long stream of chunks is shown as it goes, in pieces of this size.
                if self.chunks.raw_len >= 64 << 10 {
                    self.flush(out);
                }
            }
            // Images, audio, resources: kept as they are.
            Some(other) => {
                self.flush(out);
                out.events.push(Event::agent(AgentContent::system(
                    format!("content_{other}"),
                    content.clone(),
                    raw,
                )));
            }
        }
    }

    fn on_response(&mut self, id: u64, map: &Map<String, Value>, raw: &str, out: &mut Parsed) {
        let Some((what, result, error)) = self.requests.answered(id, map, raw, out) else {
            return;
        };
        match (what, error) {
            (Sent::Initialize, None) => {
                self.can_load = result["agentCapabilities"]["loadSession"] == true;
                out.events.push(Event::agent(AgentContent::system(
                    "init",
                    json!({
                        "protocol_version": result.get("protocolVersion"),
                        "agent": result.get("agentInfo"),
                        "capabilities": result.get("agentCapabilities"),
                        "auth_methods": result.get("authMethods"),
                    }),
                    raw,
                )));
                self.open_session(out);
            }
            (Sent::NewSession, None) => match result["sessionId"].as_str() {
                Some(session) => {
                    out.events.push(Event::agent(AgentContent::system(
                        "session",
                        json!({"session_id": session, "modes": result.get("modes"), "models": result.get("models")}),
                        raw,
                    )));
                    self.ready(session.to_string(), out);
                }
                None => self.fail("the agent opened no session (no `sessionId`)", raw, out),
            },
            (Sent::LoadSession, None) => {
                let session = self.resume.take().unwrap_or_default();
                out.events.push(Event::agent(AgentContent::system(
                    "session_loaded",
                    json!({"session_id": session}),
                    raw,
                )));
                self.ready(session, out);
            }
            (Sent::LoadSession, Some(error)) => {
                // The session is gone: a new one, and the worker says so.
                let lost = self.resume.take().unwrap_or_default();
                out.events.push(Event::agent(AgentContent::session_lost(
                    &lost,
                    format!("the agent could not load the earlier session ({}); this message starts a new session", error_text(error)),
                    raw,
                )));
                self.can_load = false;
                self.open_session(out);
            }
            (Sent::Prompt, None) => {
                self.flush(out);
                self.prompting = false;
                let stop = result["stopReason"].as_str().unwrap_or("end_turn");
                let is_error = matches!(stop, "refusal" | "max_tokens" | "max_turn_requests")
                    && !self.cancelling;
                let usage = result.get("usage").cloned().or_else(|| self.usage.take());
                out.events
                    .push(Event::agent(AgentContent::Result(Box::new(TurnResult {
                        subtype: Some(stop.to_string()),
                        is_error,
                        usage,
                        session_id: self.session_id.clone(),
                        reason: Some(stop.to_string()),
                        raw: raw.to_string(),
                        ..TurnResult::default()
                    }))));
                out.turn_end = Some(TurnEnd { is_error });
            }
            (Sent::Prompt, Some(error)) => {
                self.flush(out);
                self.prompting = false;
                // A refused key or a dead network, in the agent's words, says so with
                // what to do; anything else as it came.
                let said = error_text(error);
                let data = error.get("data").map(Value::to_string).unwrap_or_default();
                out.events.push(
                    match super::failure::classify_text(&format!("{said} {data}")) {
                        Some(failure) => failure.event(&self.label, &said, &self.hint),
                        None => Event::error(
                            crate::error::ErrorCode::TurnFailed,
                            format!("{} could not run the prompt: {said}", self.label),
                        ),
                    },
                );
                out.turn_end = Some(TurnEnd { is_error: true });
            }
            (Sent::Initialize | Sent::NewSession, Some(error)) => {
                let why = format!(
                    "the agent refused to start a session: {}",
                    error_text(error)
                );
                self.fail(&why, raw, out);
            }
        }
    }

    /// The session cannot start: a message waiting for it fails.
    fn fail(&mut self, why: &str, raw: &str, out: &mut Parsed) {
        super::session_failed(why, raw, out);
        if self.held.take().is_some() || self.prompting {
            self.prompting = false;
            out.turn_end = Some(TurnEnd { is_error: true });
        }
    }

    fn on_update(&mut self, params: &Value, raw: &str, out: &mut Parsed) {
        let update = &params["update"];
        // While a session loads, the agent replays its history: the past, which the
        // worker's own history already holds. Kept, as what it is, out of the answer.
        if self.stage == Stage::Opening {
            out.events.push(Event::agent(AgentContent::system(
                "replay",
                json!({"update": update.get("sessionUpdate")}),
                raw,
            )));
            return;
        }
        let kind = update["sessionUpdate"].as_str().unwrap_or("");
        match kind {
            "agent_message_chunk" => return self.chunk(false, update, raw, out),
            "agent_thought_chunk" => return self.chunk(true, update, raw, out),
            _ => self.flush(out),
        }
        match kind {
            "tool_call" => {
                let id = update["toolCallId"].as_str().unwrap_or("").to_string();
                let title = update["title"].as_str().unwrap_or("").to_string();
                out.events.push(Event::agent(AgentContent::ToolUse(ToolUse {
                    id: Some(id),
                    // Its title says what it does ("touch a.txt"); its kind is kept
                    // in the details.
                    name: Some(if title.is_empty() {
                        update["kind"].as_str().unwrap_or("tool").to_string()
                    } else {
                        title
                    }),
                    input: update.get("rawInput").cloned().unwrap_or(Value::Null),
                    details: tool_details(update),
                    raw: raw.to_string(),
                })));
                // A call that arrives already finished carries its result too.
                self.tool_result(update, raw, out);
            }
            "tool_call_update" => {
                if !self.tool_result(update, raw, out) {
                    let mut fields = tool_details(update);
                    fields.insert("tool_use_id".into(), update["toolCallId"].clone());
                    if let Some(input) = update.get("rawInput").filter(|v| !v.is_null()) {
                        fields.insert("input".into(), input.clone());
                    }
                    out.events.push(Event::agent(AgentContent::system(
                        "tool_call_update",
                        Value::Object(fields),
                        raw,
                    )));
                }
            }
            "plan" => out.events.push(Event::agent(AgentContent::Plan {
                entries: update
                    .get("entries")
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new())),
                raw: raw.to_string(),
            })),
            "usage_update" => {
                self.usage = update.get("usage").cloned().or(Some(update.clone()));
                out.events.push(Event::agent(AgentContent::system(
                    kind,
                    update.clone(),
                    raw,
                )));
            }
            _ => out.events.push(Event::agent(AgentContent::system(
                if kind.is_empty() { "update" } else { kind },
                update.clone(),
                raw,
            ))),
        }
    }

    /// A finished tool call's result; false when the update is not one.
    fn tool_result(&mut self, update: &Value, raw: &str, out: &mut Parsed) -> bool {
        let status = update["status"].as_str().unwrap_or("");
        if !matches!(status, "completed" | "failed") {
            return false;
        }
        let content = update["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| match b["type"].as_str() {
                        Some("content") => b["content"]["text"].as_str().map(str::to_string),
                        Some("diff") => Some(format!(
                            "changed {}",
                            b["path"].as_str().unwrap_or("a file")
                        )),
                        Some("terminal") => Some("(terminal output)".to_string()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter(|s| !s.is_empty())
            .or_else(|| update.get("rawOutput").map(super::content_text))
            .unwrap_or_default();
        out.events
            .push(Event::agent(AgentContent::ToolResult(ToolResult {
                tool_use_id: update["toolCallId"].as_str().map(str::to_string),
                content,
                is_error: status == "failed",
                exit_code: None,
                raw: raw.to_string(),
            })));
        true
    }

    fn on_request(
        &mut self,
        id: &Value,
        method: &str,
        params: &Value,
        raw: &str,
        out: &mut Parsed,
    ) {
        match method {
            "session/request_permission" => {
                self.flush(out);
                out.asks.push(permission_ask(id, params));
            }
            // This client offers no file system or terminal to the agent (its
            // capabilities say so); anything else it does not know either.
            _ => self.requests.refuse(id, method, raw, out),
        }
    }
}

impl LineParser for AcpSession {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        let Some((map, raw)) = json_object(pipe, line, out) else {
            return;
        };
        match Rpc::of(&map) {
            Rpc::Request { id, method, params } => self.on_request(id, method, params, &raw, out),
            Rpc::Notification {
                method: "session/update",
                params,
            } => self.on_update(params, &raw, out),
            Rpc::Notification { .. } => out.events.push(system("notification", &map, &raw)),
            Rpc::Response(id) => self.on_response(id, &map, &raw, out),
            Rpc::Other(subtype) => out.events.push(system(subtype, &map, &raw)),
        }
    }

    fn finish(&mut self, out: &mut Parsed) {
        self.flush(out);
    }

    fn start(&mut self) -> Option<Vec<u8>> {
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false}, "terminal": false},
            "clientInfo": {"name": "workerhub", "version": env!("CARGO_PKG_VERSION")},
        });
        Some(
            self.requests
                .request("initialize", params, Sent::Initialize),
        )
    }

    fn encode_message(&mut self, message: &str) -> Option<Vec<u8>> {
        if self.stage != Stage::Ready {
            self.held = Some(message.to_string());
            return Some(Vec::new());
        }
        Some(self.prompt(message))
    }

    fn answer(&mut self, ask: &Ask, answer: &Answer) -> Option<Vec<u8>> {
        let id = &ask.extra["id"];
        let options = ask.extra["options"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let wanted: &[&str] = match answer.decision {
            Decision::Allow => &["allow_once", "allow_always"],
            Decision::AllowSession => &["allow_always", "allow_once"],
            Decision::Deny => &["reject_once", "reject_always"],
            Decision::Cancelled | Decision::Expired => &[],
        };
        let chosen = answer.option_id.clone().or_else(|| {
            wanted.iter().find_map(|kind| {
                options
                    .iter()
                    .find(|o| o["kind"] == *kind)
                    .and_then(|o| o["optionId"].as_str().map(str::to_string))
            })
        });
        // After `session/cancel`, every waiting request is answered "cancelled".
        let outcome = match chosen.filter(|_| !self.cancelling) {
            Some(option) => json!({"outcome": "selected", "optionId": option}),
            None => json!({"outcome": "cancelled"}),
        };
        Some(
            self.requests
                .message(json!({"id": id, "result": {"outcome": outcome}})),
        )
    }

    fn interrupt(&mut self) -> Option<Vec<u8>> {
        self.cancelling = true;
        if !self.prompting {
            // Nothing asked yet: the held message is dropped with the turn.
            self.held = None;
        }
        Some(self.requests.message(json!({
            "method": "session/cancel",
            "params": {"sessionId": self.session_id},
        })))
    }
}

/// A `session/request_permission` as an approval.
fn permission_ask(id: &Value, params: &Value) -> Ask {
    let call = &params["toolCall"];
    let title = call["title"].as_str().filter(|t| !t.is_empty());
    let kind = call["kind"].as_str().unwrap_or("other");
    let input = call
        .get("rawInput")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!({"title": title}));
    let diff = call["content"].as_array().and_then(|blocks| {
        let diffs: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "diff")
            .map(|b| {
                let path = b["path"].as_str().unwrap_or("file");
                crate::approval::unified_diff(
                    path,
                    b["oldText"].as_str().unwrap_or(""),
                    b["newText"].as_str().unwrap_or(""),
                )
            })
            .collect();
        (!diffs.is_empty()).then(|| diffs.concat())
    });
    Ask {
        key: request_key(id),
        tool_name: kind.to_string(),
        input,
        tool_use_id: call["toolCallId"].as_str().map(str::to_string),
        reason: None,
        session_rule: None,
        summary: title.map(str::to_string),
        diff,
        takes_new_input: false,
        // What `answer` needs: the id, and the options to choose among (the tool call
        // itself, diffs and all, is in `input`, `summary` and `diff` already).
        extra: json!({"id": id, "options": params.get("options")}),
    }
}

/// What ACP says about a tool call besides its input, kept on the event (its `kind`
/// as `tool_kind`: an event's `kind` is what it is).
fn tool_details(update: &Value) -> Map<String, Value> {
    [
        ("kind", "tool_kind"),
        ("title", "title"),
        ("status", "status"),
        ("locations", "locations"),
        ("content", "content"),
    ]
    .iter()
    .filter_map(|(key, name)| {
        update
            .get(*key)
            .filter(|v| !v.is_null())
            .map(|v| (name.to_string(), v.clone()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> AcpSession {
        let spec: WorkerSpec = serde_json::from_value(json!({
            "name": "a", "ai_cli_type": "acp", "project_path": "/tmp", "command": ["agent"]
        }))
        .unwrap();
        AcpSession::new(&spec, None)
    }

    fn feed(s: &mut AcpSession, value: Value) -> Parsed {
        let mut out = Parsed::default();
        s.line(Pipe::Stdout, value.to_string().as_bytes(), &mut out);
        out
    }

    fn sent(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_message_before_the_session_is_held_then_prompted() {
        let mut s = session();
        let init = sent(&s.start().unwrap());
        assert_eq!(init["method"], "initialize");
        assert_eq!(s.encode_message("hello"), Some(Vec::new()));
        let out = feed(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1}}),
        );
        assert_eq!(sent(&out.replies[0])["method"], "session/new");
        let out = feed(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"result":{"sessionId":"s1"}}),
        );
        assert_eq!(out.session_id.as_deref(), Some("s1"));
        let prompt = sent(&out.replies[0]);
        assert_eq!(prompt["method"], "session/prompt");
        assert_eq!(prompt["params"]["prompt"][0]["text"], "hello");
        // Chunks are joined; the answer ends the turn.
        feed(
            &mut s,
            json!({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Hel"}}}}),
        );
        feed(
            &mut s,
            json!({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"lo"}}}}),
        );
        let out = feed(
            &mut s,
            json!({"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}),
        );
        assert!(
            matches!(&out.events[0], Event::Output { content: crate::event::Content::Agent(AgentContent::Text { text, .. }) } if text == "Hello")
        );
        assert_eq!(out.turn_end, Some(TurnEnd { is_error: false }));
    }

    #[test]
    fn permissions_are_answered_by_kind_and_cancelled_after_a_cancel() {
        let mut s = session();
        let out = feed(
            &mut s,
            json!({"jsonrpc":"2.0","id":"p1","method":"session/request_permission","params":{
            "sessionId":"s1","toolCall":{"toolCallId":"c1","title":"touch a.txt","kind":"execute"},
            "options":[{"optionId":"yes","kind":"allow_once","name":"Allow"},{"optionId":"always","kind":"allow_always","name":"Always"},{"optionId":"no","kind":"reject_once","name":"Reject"}]}}),
        );
        let ask = &out.asks[0];
        assert_eq!(ask.summary.as_deref(), Some("touch a.txt"));
        let answer = |d| Answer {
            decision: d,
            message: None,
            updated_input: None,
            option_id: None,
        };
        let allow = sent(&s.answer(ask, &answer(Decision::AllowSession)).unwrap());
        assert_eq!(allow["id"], "p1");
        assert_eq!(allow["result"]["outcome"]["optionId"], "always");
        let deny = sent(&s.answer(ask, &answer(Decision::Deny)).unwrap());
        assert_eq!(deny["result"]["outcome"]["optionId"], "no");
        s.interrupt();
        let cancelled = sent(&s.answer(ask, &answer(Decision::Deny)).unwrap());
        assert_eq!(cancelled["result"]["outcome"]["outcome"], "cancelled");
    }

    #[test]
    fn what_it_does_not_know_is_kept_and_unknown_requests_get_an_error() {
        let mut s = session();
        let out = feed(
            &mut s,
            json!({"jsonrpc":"2.0","method":"session/update","params":{"update":{"sessionUpdate":"brand_new","x":1}}}),
        );
        assert!(
            matches!(&out.events[0], Event::Output { content: crate::event::Content::Agent(AgentContent::System(sys)) } if sys.subtype == "brand_new")
        );
        let out = feed(
            &mut s,
            json!({"jsonrpc":"2.0","id":9,"method":"fs/read_text_file","params":{}}),
        );
        let reply = sent(&out.replies[0]);
        assert_eq!(reply["id"], 9);
        assert_eq!(reply["error"]["code"], super::super::METHOD_NOT_FOUND);
        let mut out = Parsed::default();
        s.line(Pipe::Stdout, b"not json at all", &mut out);
        assert_eq!(out.events.len(), 1);
    }
}
