//! `command`: any program, started once; each message is a line on its stdin and each
//! line it prints is an `output` event. Like websocketd, except that one process is
//! shared by every viewer.

use super::{Adapter, Lifecycle, Parsed, Turn, line_text};
use crate::event::{NewEvent, Pipe};
use crate::worker::WorkerSpec;
use crate::worker::process::ProcessSpec;

pub struct Command;

impl Adapter for Command {
    fn kind(&self) -> &str {
        "command"
    }

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        Lifecycle::LongRunning
    }

    fn command(&self, spec: &WorkerSpec, _: Option<&Turn<'_>>) -> Result<ProcessSpec, String> {
        let argv = spec.command.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err("a `command` worker needs `command`: the program and its arguments".into());
        }
        let mut env: Vec<(String, String)> = spec.options.env.clone().into_iter().collect();
        env.push(("WORKERHUB_WORKER_NAME".into(), spec.name.clone()));
        Ok(ProcessSpec {
            argv,
            cwd: spec.project_path.clone(),
            env,
            stdin: true,
        })
    }

    fn encode_message(&self, message: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(message.len() + 1);
        bytes.extend_from_slice(message.as_bytes());
        bytes.push(b'\n');
        bytes
    }

    fn parse(&self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        out.events.push(NewEvent::Line {
            pipe,
            text: line_text(line),
        });
    }

    fn validate(&self, spec: &WorkerSpec) -> Result<(), String> {
        match &spec.command {
            Some(argv) if !argv.is_empty() && !argv[0].is_empty() => Ok(()),
            _ => Err("a `command` worker needs `command`: a non-empty array, the program and its arguments".into()),
        }
    }
}
