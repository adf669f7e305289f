//! One-off commands: a program run once in its own process group, with a timeout, its
//! output streamed as it comes and collected (capped). Shared by `POST /api/exec`,
//! `POST /api/exec/batch` and the agent protocol's `command:execute`.
//!
//! The result always comes. A timeout kills the whole group. A program that exits while
//! a grandchild holds its output open completes when the program exits: what is left is
//! read for a short grace, then the group is killed (see `worker::process`).
//!
//! `Commands` owns every running command: the slots against `--max-commands` (in all
//! and per token), a thread per command (so a command that runs for an hour never holds
//! an HTTP thread), recent results for `GET /api/exec/{id}`, and stopping them all at
//! shutdown within the stop grace.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender, unbounded};
use serde_json::{Map, Value, json};

use crate::auth::{Access, Caller};
use crate::clock;
use crate::error::{Error, ErrorCode};
use crate::event::Pipe;
use crate::process::ledger::Owner;
use crate::process::{ProcEvent, Process, ProcessSink, ProcessSpec, signal_name};
use crate::worker::Engine;

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
    ) -> Result<ExecRequest, Error> {
        let shell = match payload.get("shell") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::invalid("`shell` must be true or false")),
        };
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        let argv =
            match (payload.get("argv"), payload.get("command")) {
                (Some(v), _) => strings(v)
                    .ok_or_else(|| Error::invalid("`argv` must be an array of strings"))?,
                (None, Some(Value::String(cmd))) if shell => vec![cmd.clone()],
                (None, Some(v)) if v.is_array() => strings(v)
                    .ok_or_else(|| Error::invalid("`command` must be an array of strings"))?,
                _ => {
                    return Err(Error::invalid(
                        "`argv` is required: the program and its arguments",
                    ));
                }
            };
        if argv.is_empty() || argv[0].is_empty() {
            return Err(Error::invalid("`argv` must name a program"));
        }
        let argv = if shell {
            if argv.len() != 1 {
                return Err(Error::invalid(
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
            Some(_) => return Err(Error::invalid("`cwd` must be a string")),
        };
        if !cwd.is_dir() {
            return Err(Error::invalid(format!(
                "`cwd` {} is not a directory",
                cwd.display()
            )));
        }
        let env = crate::spec::env_vars(payload.get("env"))?;
        let timeout = match payload.get("timeout") {
            None | Some(Value::Null) => limits.default_timeout,
            Some(v) => {
                let max = limits.max_timeout.as_secs_f64();
                let secs = v
                    .as_f64()
                    .filter(|s| *s > 0.0 && *s <= max)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "`timeout` must be a number of seconds above 0 and at most {max} (--exec-timeout-max), not {v}"
                        ))
                    })?;
                Duration::try_from_secs_f64(secs).map_err(|_| {
                    Error::invalid(format!("`timeout` {secs} is not a usable duration"))
                })?
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

/// Runs a command to its end; `on_started` gets its process (to stop it from elsewhere),
/// `on_line` sees each line as it comes (line number from 1).
fn run(
    engine: &Engine,
    id: &str,
    request: &ExecRequest,
    on_started: &dyn Fn(&Arc<Process>),
    on_line: &dyn Fn(usize, Pipe, &str),
) -> ExecResult {
    let started = Instant::now();
    let mut result = ExecResult::default();
    let (tx, rx) = unbounded();
    let added: Vec<(String, String)> = request.env.clone().into_iter().collect();
    // A one-off command is no AI kind: it gets none of their credentials.
    let env = engine.child_env.build(&[], &added);
    let spec = ProcessSpec {
        argv: request.argv.clone(),
        cwd: request.cwd.clone(),
        env: Vec::new(),
        stdin: false,
        long_lines: false,
    };
    if let Err(err) = engine.check_root(&request.cwd) {
        result.error = Some(err.message);
        return result;
    }
    let process = match engine.processes.spawn(
        &spec,
        env,
        Arc::new(ExecSink(tx)),
        Owner::Command(id.to_string()),
    ) {
        Ok(p) => {
            on_started(&p);
            p
        }
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
            // One-off commands run with pipes, never in a terminal.
            Ok(ProcEvent::Terminal(_)) => {}
            Ok(ProcEvent::Exited(exit)) => {
                result.exit_code = exit.code;
                result.signal = exit.signal;
                break;
            }
            // One-off commands run on this machine only.
            Ok(ProcEvent::Disconnected { .. } | ProcEvent::Reconnected) => {}
            Ok(ProcEvent::StartFailed(err)) => {
                result.error = Some(err.message);
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

/// Limits of one-off commands.
#[derive(Clone, Copy, Debug)]
pub struct CommandLimits {
    pub exec: ExecLimits,
    /// Most commands running at once.
    pub max_running: usize,
    /// Most commands one token may run at once.
    pub max_per_token: usize,
    /// Between SIGTERM and SIGKILL when commands are stopped at shutdown.
    pub stop_grace: Duration,
}

/// Sees each line of a command's output as it comes: its number (from 1), pipe, text.
pub type OnLine = Box<dyn Fn(usize, Pipe, &str) + Send>;

/// Results kept for `GET /api/exec/{id}` after a command ends.
const KEPT_RESULTS: usize = 256;

/// Every one-off command of the server.
pub struct Commands {
    engine: Arc<Engine>,
    /// Where commands run when they do not say.
    cwd: PathBuf,
    limits: CommandLimits,
    state: Mutex<CommandsState>,
    stopping: AtomicBool,
}

#[derive(Default)]
struct CommandsState {
    running: HashMap<String, RunningCommand>,
    by_token: HashMap<Arc<str>, usize>,
    finished: VecDeque<FinishedCommand>,
}

struct RunningCommand {
    owner: Arc<str>,
    argv: Vec<String>,
    started_at: String,
    process: Option<Arc<Process>>,
}

struct FinishedCommand {
    id: String,
    owner: Arc<str>,
    argv: Vec<String>,
    started_at: String,
    result: Value,
}

/// A command's place against the limits, from the moment it is allowed until it ends.
pub struct Permit {
    commands: Arc<Commands>,
    id: String,
    owner: Arc<str>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.commands.lock();
        st.running.remove(&self.id);
        if let Some(n) = st.by_token.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.by_token.remove(&self.owner);
            }
        }
    }
}

impl Permit {
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Refuses a caller that may not run commands (a viewer).
pub fn may_run(caller: &Caller) -> Result<(), Error> {
    if caller.may_create() {
        return Ok(());
    }
    Err(Error::forbidden(
        ErrorCode::Forbidden,
        format!(
            "the token `{}` is a viewer: it may not run commands",
            caller.name
        ),
    ))
}

impl Commands {
    pub fn new(engine: Arc<Engine>, cwd: PathBuf, limits: CommandLimits) -> Arc<Commands> {
        Arc::new(Commands {
            engine,
            cwd,
            limits,
            state: Mutex::new(CommandsState::default()),
            stopping: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, CommandsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a command request (`{"argv", "shell"?, "cwd"?, "env"?, "timeout"?}`) and
    /// checks its folder against the project roots.
    pub fn request(&self, payload: &Map<String, Value>) -> Result<ExecRequest, Error> {
        let request = ExecRequest::from_json(payload, &self.cwd, self.limits.exec)?;
        self.engine.check_root(&request.cwd)?;
        Ok(request)
    }

    /// Takes a slot for a command of `caller` (against `--max-commands` and the
    /// caller's share of it).
    pub fn permit(self: &Arc<Self>, caller: &Caller, argv: &[String]) -> Result<Permit, Error> {
        may_run(caller)?;
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Error::unavailable(
                ErrorCode::ShuttingDown,
                "the server is shutting down",
            ));
        }
        let mut st = self.lock();
        let running = st.running.len();
        if running >= self.limits.max_running {
            return Err(Error::limit(
                ErrorCode::TooManyCommands,
                format!(
                    "{running} commands are running, the limit (--max-commands) is {}",
                    self.limits.max_running
                ),
            ));
        }
        let mine = st.by_token.get(&caller.name).copied().unwrap_or(0);
        if mine >= self.limits.max_per_token {
            return Err(Error::limit(
                ErrorCode::TooManyCommands,
                format!(
                    "the token `{}` runs {mine} commands, its limit (--max-commands-per-token) is {}",
                    caller.name, self.limits.max_per_token
                ),
            ));
        }
        *st.by_token.entry(caller.name.clone()).or_insert(0) += 1;
        let id = uuid::Uuid::new_v4().to_string();
        st.running.insert(
            id.clone(),
            RunningCommand {
                owner: caller.name.clone(),
                argv: argv.to_vec(),
                started_at: clock::now_rfc3339(),
                process: None,
            },
        );
        Ok(Permit {
            commands: self.clone(),
            id,
            owner: caller.name.clone(),
        })
    }

    /// Runs a permitted command on this thread, to its end.
    pub fn run(
        &self,
        permit: &Permit,
        request: &ExecRequest,
        on_line: &dyn Fn(usize, Pipe, &str),
    ) -> ExecResult {
        let result = run(
            &self.engine,
            &permit.id,
            request,
            &|process| {
                let mut st = self.lock();
                if let Some(running) = st.running.get_mut(&permit.id) {
                    running.process = Some(process.clone());
                }
                drop(st);
                // Started while the server began to stop: stop it too.
                if self.stopping.load(Ordering::SeqCst) {
                    process.signal(libc::SIGTERM);
                }
            },
            on_line,
        );
        crate::metrics::inc(&crate::metrics::METRICS.commands_run);
        if !result.success() {
            crate::metrics::inc(&crate::metrics::METRICS.commands_failed);
        }
        crate::metrics::METRICS
            .command_latency
            .observe(result.duration);
        let mut st = self.lock();
        let (argv, started_at) = st
            .running
            .get(&permit.id)
            .map(|r| (r.argv.clone(), r.started_at.clone()))
            .unwrap_or_default();
        st.finished.push_back(FinishedCommand {
            id: permit.id.clone(),
            owner: permit.owner.clone(),
            argv,
            started_at,
            result: result.json(),
        });
        while st.finished.len() > KEPT_RESULTS {
            st.finished.pop_front();
        }
        result
    }

    /// Runs a permitted command on a thread of its own; `on_done` gets its result (or
    /// the reason it could not be started).
    pub fn spawn(
        self: &Arc<Self>,
        permit: Permit,
        request: ExecRequest,
        on_line: OnLine,
        on_done: Box<dyn FnOnce(ExecResult) + Send>,
    ) {
        let commands = self.clone();
        let name = format!("cmd-{}", &permit.id[..8.min(permit.id.len())]);
        let on_done = Arc::new(Mutex::new(Some(on_done)));
        let thread_done = on_done.clone();
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let result = commands.run(&permit, &request, &*on_line);
            drop(permit);
            if let Some(done) = thread_done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                done(result);
            }
        });
        if let Err(err) = spawned
            && let Some(done) = on_done.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            done(ExecResult {
                error: Some(format!("could not start a thread for the command: {err}")),
                ..ExecResult::default()
            });
        }
    }

    /// A command by id, as `caller` may see it: running, or its result.
    pub fn get(&self, caller: &Caller, id: &str) -> Result<Value, Error> {
        let st = self.lock();
        let not_found = || {
            Error::not_found(format!(
                "no command `{id}` (results are kept for the last {KEPT_RESULTS})"
            ))
        };
        if let Some(running) = st.running.get(id) {
            if !caller.may(Access::Read, Some(&running.owner)) {
                return Err(not_found());
            }
            return Ok(json!({"id": id, "state": "running", "argv": running.argv,
                             "started_at": running.started_at, "owner": &*running.owner}));
        }
        let done = st
            .finished
            .iter()
            .rev()
            .find(|f| f.id == id && caller.may(Access::Read, Some(&f.owner)))
            .ok_or_else(not_found)?;
        Ok(json!({"id": id, "state": "finished", "argv": done.argv,
                  "started_at": done.started_at, "owner": &*done.owner, "result": done.result}))
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    /// Refuses new commands and stops the running ones (SIGTERM, SIGKILL after the
    /// stop grace), all at once; returns when they are gone.
    pub fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let processes: Vec<Arc<Process>> = self
            .lock()
            .running
            .values()
            .filter_map(|r| r.process.clone())
            .collect();
        let grace = self.limits.stop_grace;
        std::thread::scope(|scope| {
            for process in &processes {
                scope.spawn(move || process.terminate(grace));
            }
        });
    }
}
