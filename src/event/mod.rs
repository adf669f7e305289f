//! The one event type everything shares: what a worker's feed carries, as a type.
//!
//! [`Event`] is the wire format and the domain model at once (`#[serde(tag = "type")]`):
//! producers (the worker, its turns, the adapters) build variants, consumers (the
//! command-line client, batch mode, the agent protocol, tasks) match them, and adding a
//! variant makes the compiler list every place that must learn about it. The JSON is
//! exactly what docs/PROTOCOL.md documents; the feed adds `seq` and `timestamp` when it
//! publishes an event ([`published`]), and keeps it framed, so fanning out copies no
//! JSON. The hot path of a `command` worker, its lines, is written straight into frames
//! (`published::LineTemplate`) as the same JSON `Event::Output` with a `Line` gives.

pub mod diff;
pub mod published;
pub mod terminal;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ErrorCode;
pub use published::{EventBatch, LineTemplate, Published, line_str, one_off_frame, seq_of_line};
pub use terminal::{TerminalData, TerminalSize, TerminalSnapshot};

/// Which pipe of the child a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pipe {
    Stdout,
    Stderr,
}

impl Pipe {
    pub fn as_str(self) -> &'static str {
        match self {
            Pipe::Stdout => "stdout",
            Pipe::Stderr => "stderr",
        }
    }
}

/// What a worker's feed carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The worker's state changed.
    Status(StatusEvent),
    /// A client sent the worker a message.
    UserMessage(UserMessage),
    /// The program said something: a line (`command`), or a parsed piece of an AI
    /// CLI's output.
    Output { content: Content },
    /// Something went wrong for the worker (with a seq), or with one client's input
    /// (sent to that client only, without a seq).
    Error(ErrorEvent),
    /// The program asks whether it may use a tool; someone answers.
    ApprovalRequest(ApprovalRequest),
    /// A request was answered, withdrawn or expired.
    ApprovalResolved(ApprovalResolved),
    /// What the worker changed in its git worktree, after a turn (or when asked).
    Diff(diff::DiffSummary),
    /// Bytes a terminal worker's program wrote to its terminal.
    Terminal(TerminalData),
    /// A terminal worker's terminal changed size.
    TerminalResize(TerminalSize),
    /// A terminal worker's screen as it is, sent to one viewer as it connects (no seq).
    TerminalSnapshot(TerminalSnapshot),
    /// A type this build does not know (from a newer server): kept, not understood.
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The `type` this event has on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Status(_) => "status",
            Event::UserMessage(_) => "user_message",
            Event::Output { .. } => "output",
            Event::Error(_) => "error",
            Event::ApprovalRequest(_) => "approval_request",
            Event::ApprovalResolved(_) => "approval_resolved",
            Event::Diff(_) => "diff",
            Event::Terminal(_) => "terminal",
            Event::TerminalResize(_) => "terminal_resize",
            Event::TerminalSnapshot(_) => "terminal_snapshot",
            Event::Unknown => "unknown",
        }
    }

    /// A line a program printed.
    pub fn line(stream: Pipe, text: impl Into<String>) -> Event {
        Event::Output {
            content: Content::Line(Line {
                stream,
                text: text.into(),
            }),
        }
    }

    /// A piece of an AI CLI's output.
    pub fn agent(content: AgentContent) -> Event {
        Event::Output {
            content: Content::Agent(content),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Event {
        Event::Error(ErrorEvent::new(code, message))
    }
}

/// A worker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The process is being started.
    Starting,
    /// A long-running process without turns (a `command`) is up.
    Running,
    /// Waiting for a message.
    Idle,
    /// A turn is running.
    Busy,
    /// A turn waits for someone to answer a tool approval.
    WaitingApproval,
    /// Its host cannot be reached: the program may still run there, and is followed
    /// again once the host answers (`reason` says what happened).
    Disconnected,
    /// The process ended by itself or was stopped.
    Exited,
    /// The server restarted while the process ran.
    Interrupted,
    /// The process could not be started.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Idle => "idle",
            Status::Busy => "busy",
            Status::WaitingApproval => "waiting_approval",
            Status::Disconnected => "disconnected",
            Status::Exited => "exited",
            Status::Interrupted => "interrupted",
            Status::Error => "error",
        }
    }

    /// The state in a sentence about the worker: "`echo` has exited".
    pub fn phrase(self) -> &'static str {
        match self {
            Status::Starting => "is starting",
            Status::Running => "is running",
            Status::Idle => "is idle",
            Status::Busy => "is busy",
            Status::WaitingApproval => "is waiting for an approval",
            Status::Disconnected => "cannot reach its host",
            Status::Exited => "has exited",
            Status::Interrupted => "was interrupted by a restart of the server",
            Status::Error => "could not be started",
        }
    }

    /// Whether the worker counts against `--max-workers`.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Starting
                | Status::Running
                | Status::Idle
                | Status::Busy
                | Status::WaitingApproval
                | Status::Disconnected
        )
    }
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Failed,
    Interrupted,
    Timeout,
    Stopped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Timeout => "timeout",
            Outcome::Stopped => "stopped",
        }
    }
}

/// How a process ended, as events carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_name: Option<String>,
}

/// `{"type":"status","status":...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub exit: ExitFields,
    /// Why the worker is in `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The message whose turn is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Messages waiting behind the running turn (kinds with turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<Vec<Queued>>,
    /// The turn that just ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_turn: Option<LastTurn>,
    /// Why the state changed, when it is not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Tool approvals waiting for an answer (while the worker is `waiting_approval`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_approvals: Vec<PendingApproval>,
}

impl StatusEvent {
    pub fn new(status: Status) -> StatusEvent {
        StatusEvent {
            status,
            pid: None,
            exit: ExitFields::default(),
            error: None,
            message_id: None,
            queue: None,
            last_turn: None,
            reason: None,
            pending_approvals: Vec::new(),
        }
    }
}

/// A message waiting for its turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub message_id: String,
    pub position: usize,
    pub state: MessageState,
    pub queued_at: String,
    /// The start of the message.
    pub content: String,
}

/// The end of a turn, in the `status` that follows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastTurn {
    pub number: u64,
    pub message_id: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Given to the program.
    Sent,
    /// Waiting behind the running turn.
    Queued,
}

/// `{"type":"user_message","content":...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MessageState>,
    /// Its place in the queue, when queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The name of the token that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Where it was read from, when it was not sent through workerhub (`transcript`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// `{"type":"error","code":...,"message":...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub code: ErrorCode,
    pub message: String,
    /// The message (turn) it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The `user_message` that was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_seq: Option<u64>,
    /// How the program ended, when that is the error.
    #[serde(flatten)]
    pub exit: ExitFields,
    /// What to do about it, when workerhub knows (a missing key: which variable to set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// `history_gap`: the first seq still kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The approval an answer was refused for (`already_decided`, `not_found`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

impl ErrorEvent {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorEvent {
        ErrorEvent {
            code,
            message: message.into(),
            message_id: None,
            message_seq: None,
            exit: ExitFields::default(),
            hint: None,
            approval_id: None,
            first_seq: None,
            worker_id: None,
        }
    }
}

/// How a tool approval was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Allowed this once.
    Allow,
    /// Allowed, and calls like it for the rest of the session.
    AllowSession,
    Deny,
    /// The program withdrew its request (or the turn ended without an answer).
    Cancelled,
    /// Nobody can answer any more: the process is gone (a restart of the server).
    Expired,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::AllowSession => "allow_session",
            Decision::Deny => "deny",
            Decision::Cancelled => "cancelled",
            Decision::Expired => "expired",
        }
    }

    /// A decision a person (or a rule) may give; the others only happen.
    pub fn is_answer(self) -> bool {
        matches!(
            self,
            Decision::Allow | Decision::AllowSession | Decision::Deny
        )
    }
}

/// One answer a request offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalOption {
    pub decision: Decision,
    pub label: String,
    /// For `allow_session`: the rule that will allow calls like it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// `{"type":"approval_request",...}`: the program asks to use a tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub approval_id: String,
    pub tool_name: String,
    #[serde(default)]
    pub input: Value,
    /// What it would do, for people: the command, or the file and what changes.
    pub summary: String,
    /// For edits: the change as a unified diff, when the input carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    pub options: Vec<ApprovalOption>,
    /// The message whose turn asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// Why the program asks (a path outside the project, a rule), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `{"type":"approval_resolved",...}`: how a request ended, and who ended it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalResolved {
    pub approval_id: String,
    pub decision: Decision,
    /// The token that answered, or what decided (`rules`, `timeout`, `interrupt`, ...).
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

/// A request still waiting, as status events list it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub approval_id: String,
    pub tool_name: String,
    pub summary: String,
}

/// What an `output` event says: a line of a `command` worker, or a piece of an AI CLI's
/// output (which has a `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Agent(AgentContent),
    Line(Line),
}

/// `{"stream": "stdout"|"stderr", "text": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub stream: Pipe,
    pub text: String,
}

/// The pieces of an AI CLI's output, the same for every CLI. Each keeps the CLI's own
/// line as `raw` (but `log`, which is a line that was not in the CLI's format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentContent {
    /// What the assistant says.
    Text {
        text: String,
        #[serde(default)]
        raw: String,
    },
    /// What the assistant thinks (when the CLI shows it).
    Thinking {
        text: String,
        #[serde(default)]
        raw: String,
    },
    ToolUse(ToolUse),
    ToolResult(ToolResult),
    /// The CLI could not reach its model API (or was told to wait) and tries again.
    Retry(Retry),
    /// The agent's plan: its `entries` (`content`, `priority`, `status`), whole each time.
    Plan {
        entries: Value,
        #[serde(default)]
        raw: String,
    },
    /// The end of a turn.
    Result(Box<TurnResult>),
    /// Anything else the CLI said (session start, warnings, steps), with its fields.
    System(System),
    /// A line that is not in the CLI's format.
    Log {
        stream: Pipe,
        text: String,
    },
}

impl AgentContent {
    /// The session the program was to resume is gone, and what happens instead (a
    /// `system` event of subtype `session_lost`).
    pub fn session_lost(session_id: &str, message: String, raw: &str) -> AgentContent {
        AgentContent::system(
            "session_lost",
            serde_json::json!({"session_id": session_id, "message": message}),
            raw,
        )
    }

    pub fn text(text: impl Into<String>, raw: impl Into<String>) -> AgentContent {
        AgentContent::Text {
            text: text.into(),
            raw: raw.into(),
        }
    }

    pub fn thinking(text: impl Into<String>, raw: impl Into<String>) -> AgentContent {
        AgentContent::Thinking {
            text: text.into(),
            raw: raw.into(),
        }
    }

    /// A `system` piece: `subtype` and the other fields of `fields` (an object; other
    /// values are kept under `data`).
    pub fn system(
        subtype: impl Into<String>,
        fields: Value,
        raw: impl Into<String>,
    ) -> AgentContent {
        let fields = match fields {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("data".to_string(), other)]),
        };
        AgentContent::System(System {
            subtype: subtype.into(),
            fields,
            raw: Some(raw.into()),
        })
    }
}

/// The assistant calls a tool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolUse {
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub input: Value,
    /// What agents of the Agent Client Protocol say about a call: its `tool_kind`
    /// (`execute`, `edit`, ...), `title`, `status`, `locations` and `content` (diffs).
    #[serde(default, flatten, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    #[serde(default)]
    pub raw: String,
}

/// The CLI tries its model API again: the attempt, how many it makes, how long it
/// waits first, and why, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The HTTP status the API answered, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong, in words ("the API is unreachable: connection refused").
    pub error: String,
    #[serde(default)]
    pub raw: String,
}

/// A retry in words: "retry 4 of 10 in 8 s: the API is unreachable".
pub fn describe_retry(retry: &Retry) -> String {
    let mut words = String::from("retry");
    match (retry.attempt, retry.max_attempts) {
        (Some(n), Some(max)) => words.push_str(&format!(" {n} of {max}")),
        (Some(n), None) => words.push_str(&format!(" {n}")),
        _ => {}
    }
    if let Some(ms) = retry.delay_ms {
        words.push_str(&format!(" in {:.0} s", (ms as f64 / 1000.0).max(1.0)));
    }
    format!("{words}: {}", retry.error)
}

/// What a tool returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub tool_use_id: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub raw: String,
}

/// A turn's result, as the CLI reported it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The turn's final answer, when the CLI reports it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub raw: String,
}

/// A `system` piece: its subtype and whatever fields the CLI gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct System {
    #[serde(default)]
    pub subtype: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(event: &Event) -> Value {
        let mut out = Vec::new();
        event.write_json(3, "T", &mut out);
        let value: Value = serde_json::from_slice(&out).unwrap();
        let back: Event = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&back, event, "{value}");
        value
    }

    #[test]
    fn events_serialize_as_the_protocol_documents_them() {
        let mut status = StatusEvent::new(Status::Exited);
        status.exit.exit_code = Some(0);
        assert_eq!(
            roundtrip(&Event::Status(status)),
            json!({"seq": 3, "type": "status", "timestamp": "T", "status": "exited", "exit_code": 0})
        );
        assert_eq!(
            roundtrip(&Event::line(Pipe::Stderr, "oops")),
            json!({"seq": 3, "type": "output", "timestamp": "T", "content": {"stream": "stderr", "text": "oops"}})
        );
        assert_eq!(
            roundtrip(&Event::agent(AgentContent::ToolUse(ToolUse {
                id: Some("t1".into()),
                name: Some("Bash".into()),
                input: json!({"command": "ls"}),
                raw: "{}".into(),
                details: Default::default(),
            }))),
            json!({"seq": 3, "type": "output", "timestamp": "T", "content": {"kind": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}, "raw": "{}"}})
        );
        assert_eq!(
            roundtrip(&Event::agent(AgentContent::system(
                "init",
                json!({"model": "m"}),
                "raw line"
            ))),
            json!({"seq": 3, "type": "output", "timestamp": "T", "content": {"kind": "system", "subtype": "init", "model": "m", "raw": "raw line"}})
        );
        assert_eq!(
            roundtrip(&Event::agent(AgentContent::Log {
                stream: Pipe::Stdout,
                text: "not json".into()
            })),
            json!({"seq": 3, "type": "output", "timestamp": "T", "content": {"kind": "log", "stream": "stdout", "text": "not json"}})
        );
        let mut err = ErrorEvent::new(ErrorCode::TurnFailed, "it died");
        err.exit.signal = Some(9);
        err.message_id = Some("m1".into());
        assert_eq!(
            roundtrip(&Event::Error(err)),
            json!({"seq": 3, "type": "error", "timestamp": "T", "code": "turn_failed", "message": "it died", "message_id": "m1", "signal": 9})
        );
    }

    #[test]
    fn an_unknown_type_is_kept_as_unknown() {
        let event: Event =
            serde_json::from_value(json!({"type": "from_the_future", "x": 1})).unwrap();
        assert_eq!(event, Event::Unknown);
    }
}
