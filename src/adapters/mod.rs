//! Worker kinds (`ai_cli_type`). An adapter knows how to start its program, how to hand
//! it a message, and how to turn each line it prints into events. Adding a kind is one
//! file here plus one line in [`Registry::builtin`].

pub mod command;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::{NewEvent, Pipe};
use crate::worker::WorkerSpec;
use crate::worker::process::ProcessSpec;

/// How a kind's process lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// One process for the worker's life; each message is written to its stdin.
    LongRunning,
    /// One process per message (turn), started with the message and, after the first,
    /// the session to resume.
    PerTurn,
}

/// The end of a turn, as the program reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnEnd {
    pub is_error: bool,
}

/// What one output line means.
#[derive(Default)]
pub struct Parsed {
    pub events: Vec<NewEvent>,
    /// The session this program is in (to resume it next turn).
    pub session_id: Option<String>,
    pub turn_end: Option<TurnEnd>,
}

/// A message to start a turn with.
pub struct Turn<'a> {
    pub message: &'a str,
    pub session_id: Option<&'a str>,
}

pub trait Adapter: Send + Sync {
    fn kind(&self) -> &str;
    fn lifecycle(&self, spec: &WorkerSpec) -> Lifecycle;
    /// The process to start: the long-running one (`turn` is None) or one turn's.
    fn command(&self, spec: &WorkerSpec, turn: Option<&Turn<'_>>) -> Result<ProcessSpec, String>;
    /// What to write to a long-running process's stdin for one message.
    fn encode_message(&self, message: &str) -> Vec<u8>;
    /// Turns one line (without its newline) into events and signals.
    fn parse(&self, pipe: Pipe, line: &[u8], out: &mut Parsed);
    /// Checks a new worker's spec (required fields, shapes).
    fn validate(&self, spec: &WorkerSpec) -> Result<(), String>;
}

/// The kinds this server offers.
pub struct Registry {
    adapters: BTreeMap<String, Arc<dyn Adapter>>,
}

impl Registry {
    pub fn builtin() -> Registry {
        let mut adapters: BTreeMap<String, Arc<dyn Adapter>> = BTreeMap::new();
        {
            let adapter = Arc::new(command::Command) as Arc<dyn Adapter>;
            adapters.insert(adapter.kind().to_string(), adapter);
        }
        Registry { adapters }
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.get(kind).cloned()
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn Adapter>> {
        self.adapters.values()
    }
}

/// A line as text: invalid UTF-8 is replaced (U+FFFD) and a trailing `\r` dropped.
pub fn line_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}
