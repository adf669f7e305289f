//! `command`: any program, started once; each message is a line on its stdin and each
//! line it prints is an `output` event with `{"stream","text"}`. Like websocketd, except
//! that one process is shared by every viewer.

use super::{
    Adapter, Launch, Lifecycle, LineParser, OptionKind, OptionSpec, Parsed, line_text, worker_env,
};
use crate::event::{Event, Pipe};
use crate::process::ProcessSpec;
use crate::spec::WorkerSpec;

pub struct Command;

impl Adapter for Command {
    fn kind(&self) -> &str {
        "command"
    }

    fn label(&self) -> &str {
        "Command"
    }

    fn options(&self) -> Vec<OptionSpec> {
        vec![
            OptionSpec::new(
                "command",
                "Command",
                OptionKind::Argv,
                "the program and its arguments, split as a shell would (no shell runs it)",
            )
            .required(),
            OptionSpec::new(
                "env",
                "Environment",
                OptionKind::Env,
                "NAME=value, one a line",
            ),
            OptionSpec::new(
                "terminal",
                "Run in a terminal",
                OptionKind::Flag,
                "for interactive programs (a shell, htop, vim, a REPL): viewers see its screen and type into it",
            ),
        ]
    }

    fn lifecycle(&self, _: &WorkerSpec) -> Lifecycle {
        Lifecycle::LongRunning
    }

    fn has_turns(&self, _: &WorkerSpec) -> bool {
        false
    }

    fn command(&self, launch: &Launch<'_>) -> Result<ProcessSpec, String> {
        let argv = launch.spec.command.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err("a `command` worker needs `command`: the program and its arguments".into());
        }
        Ok(ProcessSpec {
            argv,
            cwd: launch.spec.project_path.clone(),
            env: worker_env(launch.spec, Vec::new()),
            stdin: true,
            long_lines: false,
        })
    }

    fn parser(&self, _: &Launch<'_>) -> Box<dyn LineParser> {
        Box::new(Lines)
    }

    fn validate(&self, spec: &WorkerSpec) -> Result<(), String> {
        match &spec.command {
            Some(argv) if !argv.is_empty() && !argv[0].is_empty() => Ok(()),
            _ => Err("a `command` worker needs `command`: a non-empty array, the program and its arguments".into()),
        }
    }
}

/// Each line as it is.
pub struct Lines;

impl LineParser for Lines {
    fn line(&mut self, pipe: Pipe, line: &[u8], out: &mut Parsed) {
        out.events.push(Event::line(pipe, line_text(line)));
    }

    fn passes_lines_through(&self) -> bool {
        true
    }
}
