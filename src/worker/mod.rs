//! A worker: a project folder, a kind (adapter), the child process(es) it runs, and the
//! feed of everything that happened. The hub (`hub.rs`) keeps the set of workers; the
//! message queue and turns are in `turns.rs`.

pub mod env;
pub mod hub;
pub mod process;
pub mod spec;
mod turns;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::adapters::{Adapter, Launch, Lifecycle, LineParser, Parsed, Registry};
use crate::clock;
use crate::event::NewEvent;
use crate::feed::{Feed, FeedConfig};
use crate::timer::Timer;
use env::ChildEnv;
use process::{Exit, OutputTx, ProcEvent, Process, ProcessConfig, ProcessSink};
pub use spec::{WorkerOptions, WorkerSpec};
use turns::{Pending, Turn};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The process is being started.
    Starting,
    /// A long-running process without turns (a `command`) is up.
    Running,
    /// Waiting for a message.
    Idle,
    /// A turn is running.
    Busy,
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
            Status::Exited => "exited",
            Status::Interrupted => "interrupted",
            Status::Error => "error",
        }
    }

    /// Whether the worker counts against `--max-workers`.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Starting | Status::Running | Status::Idle | Status::Busy
        )
    }
}

/// What every worker shares: where output goes, timers, limits, kind settings.
pub struct Engine {
    pub output: OutputTx,
    pub timer: Timer,
    pub process: ProcessConfig,
    /// Between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace: Duration,
    /// The longest a turn may run.
    pub turn_timeout: Duration,
    /// How long a turn's process may live on after printing its result.
    pub result_grace: Duration,
    pub feed: FeedConfig,
    /// `DATA_DIR/workers`.
    pub workers_dir: PathBuf,
    /// The kinds, their programs and settings.
    pub registry: Arc<Registry>,
    /// Told of every status change (the agent protocol pushes them).
    pub on_status: Mutex<Vec<StatusListener>>,
    /// The environment children start from (`env::ChildEnv`).
    pub child_env: ChildEnv,
    /// Folders processes may run in (canonical); anywhere when empty.
    pub project_roots: Vec<PathBuf>,
}

impl Engine {
    /// Refuses a folder outside the project roots, after resolving symlinks (so a
    /// folder swapped for a link to elsewhere is refused too).
    pub fn check_root(&self, folder: &Path) -> Result<PathBuf, StartError> {
        let canonical = folder.canonicalize().map_err(|err| {
            StartError::failed(format!(
                "the folder {} cannot be used: {err}",
                folder.display()
            ))
        })?;
        let roots = &self.project_roots;
        if roots.is_empty() || roots.iter().any(|root| canonical.starts_with(root)) {
            return Ok(canonical);
        }
        Err(StartError {
            code: "forbidden_path",
            message: format!(
                "{} is outside the allowed project roots (--project-root)",
                canonical.display()
            ),
        })
    }
}

/// Why a process could not be started: an error code for the `error` event and a
/// message.
#[derive(Clone, Debug)]
pub struct StartError {
    pub code: &'static str,
    pub message: String,
}

impl StartError {
    pub fn failed(message: impl Into<String>) -> StartError {
        StartError {
            code: "start_failed",
            message: message.into(),
        }
    }
}

/// Called with a worker and the fields of its new status. Runs under the worker's lock:
/// it must not call back into the worker.
pub type StatusListener = Box<dyn Fn(&Worker, &Map<String, Value>) + Send + Sync>;

/// What is kept in `worker.json` so a worker survives a restart.
#[derive(Serialize, Deserialize)]
struct Saved {
    id: String,
    created_at: String,
    spec: WorkerSpec,
    status: Status,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    signal: Option<i32>,
    #[serde(default)]
    turns: u64,
    /// The name of the token that created it.
    #[serde(default)]
    owner: Option<String>,
}

struct WorkerState {
    status: Status,
    process: Option<Arc<Process>>,
    /// The parser of the current process, and that process's id.
    parser: Option<(u64, Box<dyn LineParser>)>,
    exit: Option<Exit>,
    session_id: Option<String>,
    /// Why the worker is in `error`.
    error: Option<String>,
    /// Being deleted: nothing is saved any more.
    deleted: bool,
    queue: VecDeque<Pending>,
    turn: Option<Turn>,
    /// Turns started so far (also numbers them).
    turns: u64,
}

pub struct Worker {
    pub id: String,
    /// The name of the token that created it: it may see, drive and delete it (as may
    /// admins; viewers may watch it).
    pub owner: Option<String>,
    pub spec: WorkerSpec,
    pub created_at: String,
    pub feed: Feed,
    adapter: Arc<dyn Adapter>,
    engine: Arc<Engine>,
    state: Mutex<WorkerState>,
    dir: PathBuf,
    me: Weak<Worker>,
}

impl Worker {
    /// Creates a new worker's folder and feed; `start` runs it.
    pub fn create(
        id: String,
        spec: WorkerSpec,
        adapter: Arc<dyn Adapter>,
        engine: Arc<Engine>,
        owner: Option<String>,
    ) -> std::io::Result<Arc<Worker>> {
        let dir = engine.workers_dir.join(&id);
        let feed = Feed::open(&dir.join("events"), engine.feed)?;
        let session = spec.options.session_id.clone();
        let saved = Saved {
            id,
            created_at: clock::now_rfc3339(),
            spec,
            status: Status::Starting,
            session_id: session,
            exit_code: None,
            signal: None,
            turns: 0,
            owner,
        };
        let worker = Worker::assemble(saved, adapter, engine, feed, dir);
        worker.save();
        Ok(worker)
    }

    /// Loads a worker saved in `dir`. A process that was running when the server stopped
    /// is gone now: the worker is shown as interrupted, and keeps its session id so the
    /// next message resumes the CLI's session.
    pub fn restore(
        dir: &Path,
        engine: Arc<Engine>,
        adapter_for: impl Fn(&str) -> Option<Arc<dyn Adapter>>,
    ) -> Result<Arc<Worker>, String> {
        let text = std::fs::read_to_string(dir.join("worker.json")).map_err(|e| e.to_string())?;
        let mut saved: Saved = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let adapter = adapter_for(&saved.spec.ai_cli_type)
            .ok_or_else(|| format!("unknown kind `{}`", saved.spec.ai_cli_type))?;
        let feed = Feed::open(&dir.join("events"), engine.feed).map_err(|e| e.to_string())?;
        let was_running = matches!(
            saved.status,
            Status::Starting | Status::Running | Status::Busy
        );
        if was_running {
            saved.status = Status::Interrupted;
        }
        let worker = Worker::assemble(saved, adapter, engine, feed, dir.to_path_buf());
        if was_running {
            let st = worker.lock();
            let mut fields = worker.status_fields(&st);
            fields.insert(
                "reason".into(),
                "the server restarted while the process ran".into(),
            );
            worker.publish_status(fields);
            drop(st);
            worker.save();
        }
        Ok(worker)
    }

    fn assemble(
        saved: Saved,
        adapter: Arc<dyn Adapter>,
        engine: Arc<Engine>,
        feed: Feed,
        dir: PathBuf,
    ) -> Arc<Worker> {
        let exit = (saved.exit_code.is_some() || saved.signal.is_some()).then_some(Exit {
            code: saved.exit_code,
            signal: saved.signal,
            duration: Duration::ZERO,
        });
        Arc::new_cyclic(|me| Worker {
            id: saved.id,
            owner: saved.owner,
            spec: saved.spec,
            created_at: saved.created_at,
            feed,
            adapter,
            engine,
            state: Mutex::new(WorkerState {
                status: saved.status,
                process: None,
                parser: None,
                exit,
                session_id: saved.session_id,
                error: None,
                deleted: false,
                queue: VecDeque::new(),
                turn: None,
                turns: saved.turns,
            }),
            dir,
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WorkerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn session_id(&self) -> Option<String> {
        self.lock().session_id.clone()
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.adapter.lifecycle(&self.spec)
    }

    /// Whether messages queue up while a turn runs (AI kinds), rather than going
    /// straight to the program's stdin (`command`).
    pub fn has_turns(&self) -> bool {
        self.lifecycle() == Lifecycle::PerTurn || self.adapter.has_turns(&self.spec)
    }

    /// Starts the worker: a long-running kind without turns starts its process now;
    /// kinds with turns wait for their first message.
    pub fn start(&self) {
        if self.has_turns() {
            let mut st = self.lock();
            self.set_status(&mut st, Status::Idle, Map::new());
        } else {
            let mut st = self.lock();
            self.set_status(&mut st, Status::Starting, Map::new());
            if let Err(err) = self.spawn(&mut st, None) {
                self.fail(&mut st, &err);
            } else {
                let pid = st.process.as_ref().map(|p| p.pid);
                let mut fields = Map::new();
                fields.insert("pid".into(), pid.into());
                self.set_status(&mut st, Status::Running, fields);
            }
        }
        self.save();
    }

    /// Starts the program for a turn (`message`) or for the worker's life (None).
    fn spawn(&self, st: &mut WorkerState, message: Option<&str>) -> Result<(), StartError> {
        // The folder is checked against the project roots every time a process starts
        // in it, symlinks resolved: it may have been swapped for a link since creation.
        self.engine.check_root(&self.spec.project_path)?;
        let binary = match self.adapter.binary_name() {
            None => String::new(),
            Some(_) => self
                .engine
                .registry
                .resolve_binary(self.adapter.as_ref())
                .ok_or_else(|| {
                    StartError::failed(format!(
                        "the program for `{}` was not found",
                        self.adapter.kind()
                    ))
                })?
                .display()
                .to_string(),
        };
        let launch = Launch {
            spec: &self.spec,
            message,
            session_id: st.session_id.as_deref(),
            binary: &binary,
            settings: &self.engine.registry.settings,
        };
        let spec = self.adapter.command(&launch).map_err(StartError::failed)?;
        let env = self
            .engine
            .child_env
            .build(&self.adapter.credentials(), &spec.env);
        let sink = self
            .me
            .upgrade()
            .ok_or_else(|| StartError::failed("the worker is gone"))?;
        let process = Process::spawn(&spec, env, sink, &self.engine.output, self.engine.process)
            .map_err(|err| {
                StartError::failed(format!(
                    "could not start `{}`: {err}",
                    spec.argv.first().map_or("", |s| s.as_str())
                ))
            })?;
        st.parser = Some((process.id, self.adapter.parser(&self.spec)));
        st.process = Some(process);
        st.exit = None;
        Ok(())
    }

    fn fail(&self, st: &mut WorkerState, err: &StartError) {
        log::warn!("worker {}: {}", self.id, err.message);
        self.feed.publish_one(NewEvent::new(
            "error",
            json!({"code": err.code, "message": err.message}),
        ));
        st.error = Some(err.message.clone());
        self.set_status(st, Status::Error, Map::new());
    }

    fn set_status(&self, st: &mut WorkerState, status: Status, extra: Map<String, Value>) {
        st.status = status;
        let mut fields = self.status_fields(st);
        fields.extend(extra);
        self.publish_status(fields);
    }

    fn status_fields(&self, st: &WorkerState) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("status".into(), st.status.as_str().into());
        match st.status {
            Status::Exited => {
                if let Some(exit) = &st.exit {
                    fields.extend(exit.fields());
                }
            }
            Status::Error => {
                fields.insert("error".into(), st.error.clone().into());
            }
            _ => {}
        }
        if let Some(turn) = &st.turn {
            fields.insert("message_id".into(), turn.message.id.clone().into());
        }
        if self.has_turns() {
            fields.insert("queue".into(), turns::queue_json(&st.queue));
        }
        fields
    }

    fn publish_status(&self, fields: Map<String, Value>) {
        for listener in self
            .engine
            .on_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            listener(self, &fields);
        }
        self.feed.publish_one(NewEvent::Fields {
            kind: "status",
            fields,
        });
    }

    /// Starts a long-running worker's process again (after it exited, was stopped, or
    /// was interrupted by a restart).
    pub fn restart(&self) -> Result<Value, crate::error::ApiError> {
        if self.has_turns() {
            return Err(crate::error::ApiError::conflict(
                "not_restartable",
                "this worker starts a process for each message; just send one",
            ));
        }
        {
            let st = self.lock();
            if st.process.as_ref().is_some_and(|p| p.is_running()) {
                return Err(crate::error::ApiError::conflict(
                    "already_running",
                    "the worker's process is running",
                ));
            }
        }
        if let Err(err) = self.engine.check_root(&self.spec.project_path) {
            return Err(crate::error::ApiError::new(403, err.code, err.message));
        }
        self.start();
        Ok(self.view())
    }

    /// Everything a client may know about the worker.
    pub fn view(&self) -> Value {
        let st = self.lock();
        let (first_seq, last_seq) = self.feed.bounds();
        let mut view = self.spec.public_json();
        if let Some(map) = view.as_object_mut() {
            map.insert("id".into(), self.id.clone().into());
            map.insert("status".into(), st.status.as_str().into());
            map.insert("created_at".into(), self.created_at.clone().into());
            map.insert(
                "pid".into(),
                st.process
                    .as_ref()
                    .filter(|p| p.is_running())
                    .map(|p| p.pid)
                    .into(),
            );
            if let Some(exit) = &st.exit {
                map.insert("exit_code".into(), exit.code.into());
                map.insert("signal".into(), exit.signal.into());
            }
            map.insert("session_id".into(), st.session_id.clone().into());
            map.insert("error".into(), st.error.clone().into());
            map.insert("has_turns".into(), self.has_turns().into());
            map.insert(
                "takes_messages".into(),
                self.adapter.takes_messages(&self.spec).into(),
            );
            map.insert("queue".into(), turns::queue_json(&st.queue));
            map.insert("turn".into(), st.turn.as_ref().map(Turn::json).into());
            map.insert("turns".into(), st.turns.into());
            map.insert("first_seq".into(), first_seq.into());
            map.insert("last_seq".into(), last_seq.into());
            map.insert("viewers".into(), self.feed.subscriber_count().into());
            map.insert("owner".into(), self.owner.clone().into());
        }
        view
    }

    fn save(&self) {
        let st = self.lock();
        if st.deleted {
            return;
        }
        let saved = Saved {
            id: self.id.clone(),
            created_at: self.created_at.clone(),
            spec: self.spec.clone(),
            status: st.status,
            session_id: st.session_id.clone(),
            exit_code: st.exit.and_then(|e| e.code),
            signal: st.exit.and_then(|e| e.signal),
            turns: st.turns,
            owner: self.owner.clone(),
        };
        drop(st);
        let path = self.dir.join("worker.json");
        let result = serde_json::to_vec_pretty(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::private_files::write(&path, &bytes));
        if let Err(err) = result {
            log::warn!(
                "worker {}: could not save {}: {err}",
                self.id,
                path.display()
            );
        }
    }

    /// Marks the worker as being deleted: from now on nothing is written to its folder
    /// and no new turn starts.
    pub fn mark_deleted(&self) {
        let mut st = self.lock();
        st.deleted = true;
        st.queue.clear();
    }

    /// Tells the status listeners the worker is gone (every dashboard drops it).
    pub fn announce_deleted(&self) {
        let mut fields = Map::new();
        fields.insert("status".into(), Status::Exited.as_str().into());
        fields.insert("deleted".into(), true.into());
        for listener in self
            .engine
            .on_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            listener(self, &fields);
        }
    }

    /// Removes the worker's files (after it was stopped and its feed closed).
    pub fn remove_files(&self) {
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            log::warn!(
                "worker {}: could not remove {}: {err}",
                self.id,
                self.dir.display()
            );
        }
    }

    /// Parses a process's lines and publishes the events.
    fn on_lines(&self, process: u64, pipe: crate::event::Pipe, data: &[u8]) {
        let mut st = self.lock();
        let mut parsed = Parsed::default();
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        match st.parser.as_mut().filter(|(id, _)| *id == process) {
            // The hot path of a `command` worker: no per-line copy.
            Some((_, parser)) if parser.passes_lines_through() => {
                self.feed.publish_lines(pipe, body);
            }
            Some((_, parser)) => {
                for line in body.split(|&b| b == b'\n') {
                    parser.line(pipe, line, &mut parsed);
                }
            }
            None => {
                // Lines of an earlier process, arriving after it was replaced.
                let mut parser = self.adapter.parser(&self.spec);
                for line in body.split(|&b| b == b'\n') {
                    parser.line(pipe, line, &mut parsed);
                }
            }
        }
        self.feed.publish(std::mem::take(&mut parsed.events));
        let mut changed = false;
        if let Some(session) = parsed.session_id
            && st.session_id.as_deref() != Some(&session)
        {
            st.session_id = Some(session);
            changed = true;
        }
        if let Some(end) = parsed.turn_end {
            self.on_turn_end(&mut st, process, end);
            changed = true;
        }
        drop(st);
        if changed {
            self.save();
        }
    }

    fn on_exit(&self, process: u64, exit: Exit) {
        let mut st = self.lock();
        if st.process.as_ref().is_none_or(|p| p.id != process) {
            return;
        }
        if let Some((_, mut parser)) = st.parser.take() {
            let mut parsed = Parsed::default();
            parser.finish(&mut parsed);
            self.feed.publish(parsed.events);
        }
        st.exit = Some(exit);
        st.process = None;
        self.on_process_gone(&mut st, process, exit);
        drop(st);
        self.save();
    }
}

impl ProcessSink for Worker {
    fn on_process_event(&self, process: u64, event: ProcEvent) {
        match event {
            ProcEvent::Lines { pipe, data } => self.on_lines(process, pipe, &data),
            ProcEvent::Exited(exit) => self.on_exit(process, exit),
        }
    }
}
