//! The agent protocol's envelope (docs/PROTOCOL.md): every message on `/ws`, both ways,
//! is `{"id","type","timestamp","payload","source"?,"correlation_id"?}`.

use serde_json::{Map, Value};

use crate::clock;
use crate::wire::frame;

/// An enum of message types with their names on the wire, read and written through
/// one table.
macro_rules! message_types {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every type with its name.
            pub const ALL: &'static [($name, &'static str)] = &[$(($name::$variant, $wire),)*];

            /// Its name on the wire, e.g. `agent:create`.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            /// The type named `name`.
            pub fn parse(name: &str) -> Option<$name> {
                Self::ALL.iter().find(|(_, n)| *n == name).map(|(kind, _)| *kind)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

message_types! {
    /// What a client may ask (`type` of a request).
    RequestType {
        ConnectionPing = "connection:ping",
        AgentCreate = "agent:create",
        AgentStatus = "agent:status",
        AgentList = "agent:list",
        AgentSubscribe = "agent:subscribe",
        AgentUnsubscribe = "agent:unsubscribe",
        AgentInterrupt = "agent:interrupt",
        AgentStop = "agent:stop",
        AgentDelete = "agent:delete",
        AgentApprove = "agent:approve",
        AgentInput = "agent:input",
        AgentResize = "agent:resize",
        CommandExecute = "command:execute",
        TaskAssign = "task:assign",
        TaskList = "task:list",
        TaskCancel = "task:cancel",
        TaskRun = "task:run",
        SystemStatus = "system:status",
        SystemMetric = "system:metric",
    }
}

message_types! {
    /// What the server sends: answers to requests and pushes.
    ServerType {
        ConnectionAck = "connection:ack",
        ConnectionPong = "connection:pong",
        AgentCreated = "agent:created",
        AgentStatus = "agent:status",
        AgentSubscribed = "agent:subscribed",
        AgentUnsubscribed = "agent:unsubscribed",
        AgentStopped = "agent:stopped",
        AgentApproved = "agent:approved",
        AgentInput = "agent:input",
        AgentResize = "agent:resize",
        AgentEvent = "agent:event",
        AgentError = "agent:error",
        CommandProgress = "command:progress",
        CommandResult = "command:result",
        CommandError = "command:error",
        TaskUpdate = "task:update",
        TaskList = "task:list",
        TaskComplete = "task:complete",
        TaskFailed = "task:failed",
        SystemStatus = "system:status",
        SystemMetric = "system:metric",
        SystemError = "system:error",
    }
}

impl ServerType {
    /// An error answer (`agent:error`, `command:error`, `system:error`).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            ServerType::AgentError | ServerType::CommandError | ServerType::SystemError
        )
    }
}

impl RequestType {
    /// The type of the error answer to a failed request of this type.
    pub fn error_type(self) -> ServerType {
        match self {
            RequestType::AgentCreate
            | RequestType::AgentStatus
            | RequestType::AgentList
            | RequestType::AgentSubscribe
            | RequestType::AgentUnsubscribe
            | RequestType::AgentInterrupt
            | RequestType::AgentStop
            | RequestType::AgentDelete
            | RequestType::AgentApprove
            | RequestType::AgentInput
            | RequestType::AgentResize => ServerType::AgentError,
            RequestType::CommandExecute => ServerType::CommandError,
            RequestType::ConnectionPing
            | RequestType::TaskAssign
            | RequestType::TaskList
            | RequestType::TaskCancel
            | RequestType::TaskRun
            | RequestType::SystemStatus
            | RequestType::SystemMetric => ServerType::SystemError,
        }
    }
}

/// A new envelope: `{"id","type","timestamp","payload","source"?,"correlation_id"?}`.
pub fn envelope(
    kind: ServerType,
    payload: Value,
    source: Option<&str>,
    correlation_id: Option<&str>,
) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    map.insert("type".into(), kind.name().into());
    map.insert("timestamp".into(), clock::now_rfc3339().into());
    map.insert("payload".into(), payload);
    if let Some(source) = source {
        map.insert("source".into(), source.into());
    }
    if let Some(id) = correlation_id {
        map.insert("correlation_id".into(), id.into());
    }
    Value::Object(map)
}

/// The timestamp a feed event carries (feed JSON always has it right after `type`).
fn event_timestamp(json: &[u8]) -> &[u8] {
    const KEY: &[u8] = b"\"timestamp\":\"";
    json.windows(KEY.len())
        .position(|w| w == KEY)
        .and_then(|at| {
            let rest = &json[at + KEY.len()..];
            rest.iter().position(|&b| b == b'"').map(|end| &rest[..end])
        })
        .unwrap_or(b"")
}

/// A feed event wrapped as an `agent:event` envelope from worker `source`, framed. Its
/// id, `SOURCE:SEQ`, is the same for every subscriber, so it is built once per event.
pub fn envelope_event_frame(seq: u64, json: &[u8], source: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 160);
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(source.as_bytes());
    out.push(b':');
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(ServerType::AgentEvent.name().as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":\"");
    out.extend_from_slice(event_timestamp(json));
    out.extend_from_slice(b"\",\"source\":\"");
    out.extend_from_slice(source.as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    out.extend_from_slice(json);
    out.push(b'}');
    frame::text(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_name_and_reads_back() {
        for (kind, name) in RequestType::ALL {
            assert_eq!(kind.name(), *name);
            assert_eq!(RequestType::parse(name), Some(*kind));
        }
        for (kind, name) in ServerType::ALL {
            assert_eq!(kind.name(), *name);
            assert_eq!(ServerType::parse(name), Some(*kind));
        }
        assert_eq!(
            RequestType::parse("agent:event"),
            None,
            "only the server sends it"
        );
    }

    #[test]
    fn an_event_envelope_carries_the_event_whole() {
        let json = br#"{"seq":7,"type":"output","timestamp":"2026-01-01T00:00:00.000000Z","x":1}"#;
        let frame = envelope_event_frame(7, json, "w1");
        let header = if frame[1] == 126 { 4 } else { 2 };
        let v: Value = serde_json::from_slice(&frame[header..]).unwrap();
        assert_eq!(v["id"], "w1:7");
        assert_eq!(v["type"], "agent:event");
        assert_eq!(v["source"], "w1");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(v["payload"]["x"], 1);
    }
}
