//! One-off commands: a program run once in its own process group, with a timeout, its
//! output streamed as it comes and collected (capped). Shared by `POST /api/exec`,
//! `POST /api/exec/batch` and the agent protocol's `command:execute`.
//!
//! The result always comes. A timeout kills the whole group. A program that exits while
//! a grandchild holds its output open completes when the program exits: what is left is
//! read for a short grace, then the group is killed (see `worker::process`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender, unbounded};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::event::Pipe;
use crate::worker::Engine;
use crate::worker::process::{ProcEvent, Process, ProcessSink, ProcessSpec, signal_name};

/// Most lines and bytes of output kept in a result.
const MAX_LINES: usize = 10_000;
const MAX_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
}

/// The limits a request is checked against.
#[derive(Clone, Copy, Debug)]
pub struct ExecLimits {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
}

impl ExecRequest {
    /// Reads `{"argv": [...], "shell"?, "cwd"?, "env"?, "timeout"?}`. `argv` is run as it
    /// is; only with `"shell": true` is it a shell command line (`argv` with one string,
    /// or `command`), run by `sh -c`.
    pub fn from_json(
        payload: &Map<String, Value>,
        default_cwd: &Path,
        limits: ExecLimits,
    ) -> Result<ExecRequest, ApiError> {
        let shell = match payload.get("shell") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ApiError::bad_request("`shell` must be true or false")),
        };
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        let argv = match (payload.get("argv"), payload.get("command")) {
            (Some(v), _) => strings(v)
                .ok_or_else(|| ApiError::bad_request("`argv` must be an array of strings"))?,
            (None, Some(Value::String(cmd))) if shell => vec![cmd.clone()],
            (None, Some(v)) if v.is_array() => strings(v)
                .ok_or_else(|| ApiError::bad_request("`command` must be an array of strings"))?,
            _ => {
                return Err(ApiError::bad_request(
                    "`argv` is required: the program and its arguments",
                ));
            }
        };
        if argv.is_empty() || argv[0].is_empty() {
            return Err(ApiError::bad_request("`argv` must name a program"));
        }
        let argv = if shell {
            if argv.len() != 1 {
                return Err(ApiError::bad_request(
                    "with `shell: true`, `argv` is one string: the command line",
                ));
            }
            vec!["/bin/sh".into(), "-c".into(), argv[0].clone()]
        } else {
            argv
        };
        let cwd = match payload.get("cwd") {
            None | Some(Value::Null) => default_cwd.to_path_buf(),
            Some(Value::String(dir)) => default_cwd.join(dir),
            Some(_) => return Err(ApiError::bad_request("`cwd` must be a string")),
        };
        if !cwd.is_dir() {
            return Err(ApiError::bad_request(format!(
                "`cwd` {} is not a directory",
                cwd.display()
            )));
        }
        let env = match payload.get("env") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect::<Option<BTreeMap<_, _>>>()
                .ok_or_else(|| ApiError::bad_request("`env` must be an object of strings"))?,
            Some(_) => return Err(ApiError::bad_request("`env` must be an object of strings")),
        };
        if env.keys().any(|k| k.is_empty() || k.contains(['=', '\0'])) {
            return Err(ApiError::bad_request("`env` has an invalid variable name"));
        }
        let timeout = match payload.get("timeout") {
            None | Some(Value::Null) => limits.default_timeout,
            Some(v) => {
                let secs = v
                    .as_f64()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| {
                        ApiError::bad_request("`timeout` must be a positive number of seconds")
                    })?;
                Duration::from_secs_f64(secs).min(limits.max_timeout)
            }
        };
        Ok(ExecRequest {
            argv,
            cwd,
            env,
            timeout,
        })
    }
}

/// How a command ended.
#[derive(Clone, Debug, Default)]
pub struct ExecResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
    pub outputs: usize,
    pub output_data: Vec<(Pipe, String)>,
    pub output_truncated: bool,
    pub timed_out: bool,
    pub error: Option<String>,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.error.is_none()
    }

    pub fn json(&self) -> Value {
        let lines: Vec<Value> = self
            .output_data
            .iter()
            .map(|(pipe, text)| json!({"stream": pipe.as_str(), "text": text}))
            .collect();
        json!({
            "success": self.success(),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "signal_name": self.signal.map(signal_name),
            "duration": self.duration.as_secs_f64(),
            "outputs": self.outputs,
            "output_data": lines,
            "output_truncated": self.output_truncated,
            "timed_out": self.timed_out,
            "error": self.error,
        })
    }
}

/// Forwards a command's output to the thread that runs it.
struct ExecSink(Sender<ProcEvent>);

impl ProcessSink for ExecSink {
    fn on_process_event(&self, _process: u64, event: ProcEvent) {
        let _ = self.0.send(event);
    }
}

/// Runs a command to its end; `on_line` sees each line as it comes (line number from 1).
pub fn run(
    engine: &Engine,
    request: &ExecRequest,
    on_line: &dyn Fn(usize, Pipe, &str),
) -> ExecResult {
    let started = Instant::now();
    let mut result = ExecResult::default();
    let (tx, rx) = unbounded();
    let mut env: Vec<(String, String)> = request.env.clone().into_iter().collect();
    env.retain(|(k, _)| k != "WORKERHUB_TOKEN");
    let spec = ProcessSpec {
        argv: request.argv.clone(),
        cwd: request.cwd.clone(),
        env,
        stdin: false,
    };
    let process = match Process::spawn(
        &spec,
        Arc::new(ExecSink(tx)),
        &engine.output,
        engine.process,
    ) {
        Ok(p) => p,
        Err(err) => {
            result.error = Some(format!("could not start `{}`: {err}", request.argv[0]));
            result.duration = started.elapsed();
            return result;
        }
    };
    let mut deadline = started + request.timeout;
    let mut kept_bytes = 0;
    loop {
        match rx.recv_deadline(deadline) {
            Ok(ProcEvent::Lines { pipe, data }) => {
                let body = data.strip_suffix(b"\n").unwrap_or(&data);
                for line in body.split(|&b| b == b'\n') {
                    let text = crate::adapters::line_text(line);
                    result.outputs += 1;
                    on_line(result.outputs, pipe, &text);
                    if result.output_data.len() < MAX_LINES && kept_bytes + text.len() <= MAX_BYTES
                    {
                        kept_bytes += text.len();
                        result.output_data.push((pipe, text));
                    } else {
                        result.output_truncated = true;
                    }
                }
            }
            Ok(ProcEvent::Exited(exit)) => {
                result.exit_code = exit.code;
                result.signal = exit.signal;
                break;
            }
            Err(RecvTimeoutError::Timeout) if !result.timed_out => {
                result.timed_out = true;
                result.error = Some(format!(
                    "timed out after {:.1}s; the process group was killed",
                    request.timeout.as_secs_f64()
                ));
                process.signal(libc::SIGKILL);
                // The exit report follows shortly; never wait for it without a bound.
                deadline = Instant::now() + Duration::from_secs(5);
            }
            Err(_) => {
                result
                    .error
                    .get_or_insert_with(|| "the command's exit was not reported".into());
                break;
            }
        }
    }
    result.duration = started.elapsed();
    result
}
