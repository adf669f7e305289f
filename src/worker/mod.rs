//! A worker: a project folder, a kind (adapter), the child process(es) it runs, and the
//! feed of everything that happened. The hub (`hub.rs`) keeps the set of workers.

pub mod hub;
pub mod process;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::adapters::{Adapter, Lifecycle, Parsed};
use crate::clock;
use crate::error::ApiError;
use crate::event::NewEvent;
use crate::feed::{Feed, FeedConfig};
use crate::timer::Timer;
use process::{Exit, OutputTx, ProcEvent, Process, ProcessConfig, ProcessSink, StdinError};
pub use spec::{WorkerOptions, WorkerSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The process is being started.
    Starting,
    /// A long-running process is up.
    Running,
    /// Waiting for a message (per-turn kinds).
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

    /// Whether the worker still counts against `--max-workers`.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Starting | Status::Running | Status::Idle | Status::Busy
        )
    }
}

/// What every worker shares: where output goes, timers, limits.
pub struct Engine {
    pub output: OutputTx,
    pub timer: Timer,
    pub process: ProcessConfig,
    /// Between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace: Duration,
    /// The longest a turn may run.
    pub turn_timeout: Duration,
    pub feed: FeedConfig,
    /// `DATA_DIR/workers`.
    pub workers_dir: PathBuf,
}

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
}

struct WorkerState {
    status: Status,
    process: Option<Arc<Process>>,
    exit: Option<Exit>,
    session_id: Option<String>,
    /// Why the worker is in `error`.
    error: Option<String>,
    /// Being deleted: nothing is saved any more.
    deleted: bool,
}

pub struct Worker {
    pub id: String,
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
    ) -> std::io::Result<Arc<Worker>> {
        let dir = engine.workers_dir.join(&id);
        let feed = Feed::open(&dir.join("events"), engine.feed)?;
        let worker = Worker::assemble(
            id,
            clock::now_rfc3339(),
            spec,
            adapter,
            engine,
            feed,
            dir,
            Status::Starting,
            None,
        );
        worker.save();
        Ok(worker)
    }

    /// Loads a worker saved in `dir`. A process that was running when the server stopped
    /// is gone now: the worker is shown as interrupted.
    pub fn restore(
        dir: &Path,
        engine: Arc<Engine>,
        adapter_for: impl Fn(&str) -> Option<Arc<dyn Adapter>>,
    ) -> Result<Arc<Worker>, String> {
        let text = std::fs::read_to_string(dir.join("worker.json")).map_err(|e| e.to_string())?;
        let saved: Saved = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let adapter = adapter_for(&saved.spec.ai_cli_type)
            .ok_or_else(|| format!("unknown kind `{}`", saved.spec.ai_cli_type))?;
        let feed = Feed::open(&dir.join("events"), engine.feed).map_err(|e| e.to_string())?;
        let status = match saved.status {
            Status::Starting | Status::Running | Status::Busy => Status::Interrupted,
            other => other,
        };
        let interrupted = status == Status::Interrupted && saved.status != Status::Interrupted;
        let worker = Worker::assemble(
            saved.id,
            saved.created_at,
            saved.spec,
            adapter,
            engine,
            feed,
            dir.to_path_buf(),
            status,
            saved.session_id,
        );
        let (code, signal) = (saved.exit_code, saved.signal);
        if code.is_some() || signal.is_some() {
            worker.lock().exit = Some(Exit {
                code,
                signal,
                duration: Duration::ZERO,
            });
        }
        if interrupted {
            let mut fields = worker.status_fields(&worker.lock());
            fields.insert(
                "reason".into(),
                "the server restarted while the process ran".into(),
            );
            worker.feed.publish_one(NewEvent::Fields {
                kind: "status",
                fields,
            });
            worker.save();
        }
        Ok(worker)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        id: String,
        created_at: String,
        spec: WorkerSpec,
        adapter: Arc<dyn Adapter>,
        engine: Arc<Engine>,
        feed: Feed,
        dir: PathBuf,
        status: Status,
        session_id: Option<String>,
    ) -> Arc<Worker> {
        Arc::new_cyclic(|me| Worker {
            id,
            spec,
            created_at,
            feed,
            adapter,
            engine,
            state: Mutex::new(WorkerState {
                status,
                process: None,
                exit: None,
                session_id,
                error: None,
                deleted: false,
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

    pub fn lifecycle(&self) -> Lifecycle {
        self.adapter.lifecycle(&self.spec)
    }

    /// Starts the worker: a long-running kind starts its process now; a per-turn kind
    /// waits for its first message.
    pub fn start(&self) {
        match self.lifecycle() {
            Lifecycle::LongRunning => self.start_long_running(),
            Lifecycle::PerTurn => self.set_status(Status::Idle, Map::new()),
        }
    }

    fn start_long_running(&self) {
        self.set_status(Status::Starting, Map::new());
        let spec = match self.adapter.command(&self.spec, None) {
            Ok(spec) => spec,
            Err(message) => return self.fail(&message),
        };
        let Some(sink) = self.me.upgrade() else {
            return;
        };
        match Process::spawn(&spec, sink, &self.engine.output, self.engine.process) {
            Ok(process) => {
                let mut st = self.lock();
                let pid = process.pid;
                st.process = Some(process);
                st.exit = None;
                st.status = Status::Running;
                let mut fields = self.status_fields(&st);
                fields.insert("pid".into(), pid.into());
                self.publish_status(fields);
                drop(st);
                self.save();
            }
            Err(err) => self.fail(&format!("could not start `{}`: {err}", spec.argv.join(" "))),
        }
    }

    fn fail(&self, message: &str) {
        log::warn!("worker {}: {message}", self.id);
        self.feed.publish_one(NewEvent::new(
            "error",
            json!({"code": "start_failed", "message": message}),
        ));
        let mut st = self.lock();
        st.error = Some(message.to_string());
        st.status = Status::Error;
        let fields = self.status_fields(&st);
        self.publish_status(fields);
        drop(st);
        self.save();
    }

    fn set_status(&self, status: Status, extra: Map<String, Value>) {
        let mut st = self.lock();
        st.status = status;
        let mut fields = self.status_fields(&st);
        fields.extend(extra);
        self.publish_status(fields);
        drop(st);
        self.save();
    }

    fn status_fields(&self, st: &WorkerState) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("status".into(), st.status.as_str().into());
        if st.status == Status::Exited
            && let Some(exit) = &st.exit
        {
            fields.extend(exit.fields());
        }
        if let (Status::Error, Some(err)) = (st.status, &st.error) {
            fields.insert("error".into(), err.clone().into());
        }
        fields
    }

    fn publish_status(&self, fields: Map<String, Value>) {
        self.feed.publish_one(NewEvent::Fields {
            kind: "status",
            fields,
        });
    }

    /// Sends a message from a client: every viewer sees it as `user_message`, then the
    /// program gets it.
    pub fn send_message(&self, content: &str) -> Result<Value, ApiError> {
        let st = self.lock();
        let process = match (&st.process, st.status) {
            (Some(p), Status::Running) if p.is_running() => p.clone(),
            _ => {
                return Err(ApiError::conflict(
                    "worker_not_running",
                    format!(
                        "worker {} is {} and cannot take messages",
                        self.id,
                        st.status.as_str()
                    ),
                ));
            }
        };
        drop(st);
        // Published before the program sees the message, so its answer always comes
        // after the message in the feed.
        let seq = self
            .feed
            .publish_one(NewEvent::new("user_message", json!({"content": content})));
        match process.write_stdin(self.adapter.encode_message(content)) {
            Ok(()) => Ok(json!({"seq": seq, "state": "sent"})),
            Err(StdinError::Full) => Err(ApiError::new(
                503,
                "input_full",
                "the worker is not reading its input and its backlog is full; the message was not delivered",
            )),
            Err(StdinError::Closed) => Err(ApiError::conflict(
                "worker_not_running",
                "the worker's input is closed; the message was not delivered",
            )),
        }
    }

    /// Stops the worker's process (SIGTERM, then SIGKILL after the grace period) and
    /// waits for it to be reaped.
    pub fn stop(&self) {
        let process = self.lock().process.clone();
        if let Some(process) = process {
            process.terminate(self.engine.kill_grace);
        }
    }

    /// Everything a client may know about the worker.
    pub fn view(&self) -> Value {
        let st = self.lock();
        let (first_seq, last_seq) = self.feed.bounds();
        let mut view = self.spec.public_json();
        let map = view.as_object_mut().expect("public_json is an object");
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
        map.insert("first_seq".into(), first_seq.into());
        map.insert("last_seq".into(), last_seq.into());
        map.insert("viewers".into(), self.feed.subscriber_count().into());
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
        };
        drop(st);
        let path = self.dir.join("worker.json");
        let tmp = self.dir.join("worker.json.tmp");
        let result = serde_json::to_vec_pretty(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(err) = result {
            log::warn!(
                "worker {}: could not save {}: {err}",
                self.id,
                path.display()
            );
        }
    }

    /// Marks the worker as being deleted: from now on nothing is written to its folder.
    pub fn mark_deleted(&self) {
        self.lock().deleted = true;
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
}

impl ProcessSink for Worker {
    fn on_process_event(&self, process: u64, event: ProcEvent) {
        match event {
            ProcEvent::Lines { pipe, data } => {
                let mut parsed = Parsed::default();
                let body = data.strip_suffix(b"\n").unwrap_or(&data);
                for line in body.split(|&b| b == b'\n') {
                    self.adapter.parse(pipe, line, &mut parsed);
                }
                self.feed.publish(parsed.events);
                if let Some(session) = parsed.session_id {
                    let mut st = self.lock();
                    if st.session_id.as_deref() != Some(&session) {
                        st.session_id = Some(session);
                        drop(st);
                        self.save();
                    }
                }
            }
            ProcEvent::Exited(exit) => {
                let mut st = self.lock();
                if st.process.as_ref().is_none_or(|p| p.id != process) {
                    return;
                }
                st.exit = Some(exit);
                st.status = Status::Exited;
                let fields = self.status_fields(&st);
                self.publish_status(fields);
                drop(st);
                self.save();
            }
        }
    }
}
