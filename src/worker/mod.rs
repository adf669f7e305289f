//! A worker: a project folder, a kind (adapter), the child process(es) it runs, and the
//! feed of everything that happened. The hub (`hub.rs`) keeps the set of workers; the
//! message queue and turns are in `turns.rs`; following one turn is `follow.rs`;
//! starting a process again after a crash is `restart.rs`.
//!
//! A worker speaks only its own types: its events (`crate::event`), its errors
//! (`crate::error`), its views and receipts (below). It knows nothing of HTTP or
//! WebSockets; whoever watches every worker (the agent protocol's dashboards) is told
//! through an [`Observer`].

mod approvals;
pub mod follow;
pub mod hub;
pub mod isolation;
mod restart;
mod terminal;
mod turns;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::adapters::registry::KeyUse;
use crate::adapters::{Adapter, Launch, Lifecycle, LineParser, Parsed, Registry};
use crate::approval::ApprovalPolicy;
use crate::clock;
use crate::error::{Error, ErrorCode, ErrorKind};
use crate::event::{
    ApprovalRequest, Decision, ErrorEvent, Event, ExitFields, LastTurn, Pipe, Queued, Status,
    StatusEvent,
};
use crate::feed::{Feed, FeedConfig};
use crate::process::env::ChildEnv;
use crate::process::ledger::{Ended, Owner};
use crate::process::{Exit, ProcEvent, Process, ProcessSink, Processes};
pub use crate::spec::{PublicSpec, WorkerOptions, WorkerSpec};
use crate::timer::Timer;
use follow::TurnFollower;
use restart::Restarts;
use turns::{Pending, Turn};

/// What every worker shares: how processes start, timers, limits, kind settings, and
/// who is told of changes.
pub struct Engine {
    pub processes: Processes,
    pub timer: Timer,
    /// Between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace: Duration,
    /// The longest a turn may run (time spent waiting for approvals not counted).
    pub turn_timeout: Duration,
    /// How long a tool approval may wait before it is denied (never when None).
    pub approval_timeout: Option<Duration>,
    /// How long a turn's process may live on after printing its result.
    pub result_grace: Duration,
    pub feed: FeedConfig,
    /// `DATA_DIR/workers`.
    pub workers_dir: PathBuf,
    /// The kinds, their programs and settings.
    pub registry: Arc<Registry>,
    /// The environment children start from.
    pub child_env: ChildEnv,
    /// Folders processes may run in (canonical); anywhere when empty.
    pub project_roots: Vec<PathBuf>,
    /// Other machines workers may run on, over ssh.
    pub hosts: Arc<crate::hosts::Hosts>,
    /// Told of every worker's changes.
    observers: Mutex<Vec<Arc<dyn Observer>>>,
}

/// What a worker tells those who watch every worker.
pub enum Notice<'a> {
    /// Its state changed: the `status` event it just published.
    Status(&'a StatusEvent),
    /// Its process ended, and with it the worker (a `command`).
    Exited(&'a ExitFields),
    /// It is being deleted.
    Deleted,
}

/// Someone who watches every worker (a dashboard pushes what it is told). Called under
/// the worker's lock: it must not call back into the worker.
pub trait Observer: Send + Sync {
    fn notice(&self, worker: &Worker, notice: &Notice<'_>);
}

/// How long the steps of a worker's life may take.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Between SIGTERM and SIGKILL when a worker is stopped.
    pub kill_grace: Duration,
    /// The longest a turn may run (time spent waiting for approvals not counted).
    pub turn_timeout: Duration,
    /// How long a turn's process may live on after printing its result.
    pub result_grace: Duration,
    /// How long a tool approval may wait before it is denied (never when None).
    pub approval_timeout: Option<Duration>,
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        processes: Processes,
        timer: Timer,
        timing: Timing,
        feed: FeedConfig,
        workers_dir: PathBuf,
        registry: Arc<Registry>,
        child_env: ChildEnv,
        project_roots: Vec<PathBuf>,
        hosts: Arc<crate::hosts::Hosts>,
    ) -> Engine {
        Engine {
            processes,
            timer,
            kill_grace: timing.kill_grace,
            turn_timeout: timing.turn_timeout,
            result_grace: timing.result_grace,
            approval_timeout: timing.approval_timeout,
            feed,
            workers_dir,
            registry,
            child_env,
            project_roots,
            hosts,
            observers: Mutex::new(Vec::new()),
        }
    }

    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }

    fn tell(&self, worker: &Worker, notice: &Notice<'_>) {
        for observer in self
            .observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            observer.notice(worker, notice);
        }
    }

    /// Refuses a folder outside the project roots, after resolving symlinks (so a
    /// folder swapped for a link to elsewhere is refused too).
    pub fn check_root(&self, folder: &Path) -> Result<PathBuf, Error> {
        let canonical = folder.canonicalize().map_err(|err| {
            Error::new(
                ErrorKind::Invalid,
                ErrorCode::StartFailed,
                format!("the folder {} cannot be used: {err}", folder.display()),
            )
        })?;
        let roots = &self.project_roots;
        if roots.is_empty() || roots.iter().any(|root| canonical.starts_with(root)) {
            return Ok(canonical);
        }
        Err(Error::forbidden(
            ErrorCode::ForbiddenPath,
            format!(
                "{} is outside the allowed project roots (--project-root)",
                canonical.display()
            ),
        ))
    }
}

impl Engine {
    /// Where git runs for a worker on `host` (here when None).
    pub fn git_runner(&self, host: Option<&str>) -> crate::worktree::GitRunner {
        use crate::worktree::GitRunner;
        match host {
            None => GitRunner::Local,
            Some(name) => match self.hosts.find(name) {
                Ok(host) => GitRunner::Remote {
                    hosts: self.hosts.clone(),
                    host,
                },
                Err(err) => GitRunner::Unavailable(err.message),
            },
        }
    }

    /// Where worktrees of workers on host `name` are made there (beside the spools).
    pub fn remote_worktrees_dir(&self, name: &str) -> Result<PathBuf, Error> {
        let host = self.hosts.find(name)?;
        self.hosts
            .remote_base(&host)
            .map(|base| base.join("worktrees"))
            .map_err(|err| err.into_error(name))
    }

    /// A worker's folder on host `name`: it exists there, and is inside the project
    /// roots once its symlinks are resolved there (its start script checks again).
    pub fn remote_folder(&self, name: &str, folder: &Path) -> Result<PathBuf, Error> {
        let host = self.hosts.find(name)?;
        let shown = folder.display().to_string();
        let real = self.hosts.resolve(&host, &shown).map_err(|err| match err {
            crate::hosts::remote::StartError::Failed(_) => Error::invalid(format!(
                "`project_path` {shown} is not a folder on host `{name}`"
            )),
            unreachable => unreachable.into_error(name),
        })?;
        let real = PathBuf::from(real);
        let roots = &self.project_roots;
        if roots.is_empty() || roots.iter().any(|root| real.starts_with(root)) {
            return Ok(real);
        }
        Err(Error::forbidden(
            ErrorCode::ForbiddenPath,
            format!(
                "{} on host `{name}` is outside the allowed project roots (--project-root)",
                real.display()
            ),
        ))
    }
}

/// What is kept in `worker.json` so a worker survives a restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// It was running when the server shut down: its restart policy applies at the
    /// next start.
    #[serde(default)]
    resume: bool,
    /// Approvals that were waiting: after a restart nobody can answer them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending_approvals: Vec<ApprovalRequest>,
    /// Why it is in its state (its last status's `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Its git worktree, when it works in one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    worktree: Option<crate::worktree::Worktree>,
}

struct WorkerState {
    status: Status,
    /// Why it is in this state, when its status said (`stopped on request`, ...).
    reason: Option<String>,
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
    /// Who follows which turn (by message id).
    followers: Vec<(String, Arc<dyn TurnFollower>)>,
    /// Starting the process again after it ends (the `restart` policy).
    restarts: Restarts,
    /// It was running when the server shut down (kept in `worker.json`).
    resume: bool,
    /// Tool approvals waiting, and what the session allowed.
    approvals: approvals::Approvals,
    /// Why its (remote) process cannot be reached now; it is shown as `disconnected`.
    disconnected: Option<String>,
    /// A terminal worker's screen and who sizes it (`terminal.rs`).
    terminal: Option<crate::terminal::TerminalState>,
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
    /// Held while `worker.json` is written: saves happen in the order of their
    /// snapshots.
    saving: Mutex<()>,
    dir: PathBuf,
    me: Weak<Worker>,
    /// Its git worktree, when it works in one of its own (`isolation.rs`).
    worktree: Option<isolation::Isolated>,
}

/// Everything a client may know about a worker.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerView {
    pub id: String,
    #[serde(flatten)]
    pub spec: PublicSpec,
    pub status: Status,
    pub created_at: String,
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<Option<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Option<i32>>,
    pub session_id: Option<String>,
    pub error: Option<String>,
    /// Why it is in its state, as its last status said (`stopped on request`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub has_turns: bool,
    pub takes_messages: bool,
    pub queue: Vec<Queued>,
    pub turn: Option<turns::TurnView>,
    pub turns: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub viewers: usize,
    pub owner: Option<String>,
    /// Tool approvals waiting for an answer.
    pub pending_approvals: Vec<ApprovalRequest>,
    /// What happens when the program asks to use a tool (this worker's policy).
    pub approval: ApprovalPolicy,
    /// Whether one process serves many turns.
    pub live_session: bool,
    /// Its git worktree (path, branch, base commit), when it works in one of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<crate::worktree::Worktree>,
}

impl Worker {
    /// Creates a new worker's folder and feed; `start` runs it.
    pub fn create(
        id: String,
        spec: WorkerSpec,
        adapter: Arc<dyn Adapter>,
        engine: Arc<Engine>,
        owner: Option<String>,
        worktree: Option<crate::worktree::Worktree>,
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
            resume: false,
            pending_approvals: Vec::new(),
            reason: None,
            worktree,
        };
        let worker = Worker::assemble(saved, adapter, engine, feed, dir);
        worker.save();
        Ok(worker)
    }

    /// Loads a worker saved in `dir`. A process that was running when the server stopped
    /// is gone now (`ended`: its group, if it had outlived the server and was ended
    /// now): the worker is shown as interrupted, saying what happened, and keeps its
    /// session id so the next message resumes the CLI's session. A worker whose restart
    /// policy says so is started again.
    pub fn restore(
        dir: &Path,
        engine: Arc<Engine>,
        adapter_for: impl Fn(&str) -> Option<Arc<dyn Adapter>>,
        ended: Option<&Ended>,
    ) -> Result<Arc<Worker>, String> {
        let text = std::fs::read_to_string(dir.join("worker.json")).map_err(|e| e.to_string())?;
        let mut saved: Saved = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let adapter = adapter_for(&saved.spec.ai_cli_type)
            .ok_or_else(|| format!("unknown kind `{}`", saved.spec.ai_cli_type))?;
        let feed = Feed::open(&dir.join("events"), engine.feed).map_err(|e| e.to_string())?;
        let was_running = matches!(
            saved.status,
            Status::Starting | Status::Running | Status::Busy | Status::WaitingApproval
        );
        if was_running {
            saved.status = Status::Interrupted;
        }
        let resume = saved.resume;
        let saved_pending = std::mem::take(&mut saved.pending_approvals);
        let expired = if was_running {
            Worker::waiting_at_restart(&feed, saved_pending)
        } else {
            saved_pending
        };
        let worker = Worker::assemble(saved, adapter, engine, feed, dir.to_path_buf());
        if !expired.is_empty() {
            worker.expire_after_restart(expired);
        }
        let restart = worker.spec.restart.after_server_restart() && !worker.has_turns();
        // A program on another host does not die with this server: what a crash left
        // running there is ended (a start ends it too, first thing).
        // (Whatever its status said: an idle live session is a program too.)
        if worker.spec.host.is_some() && !(resume && restart) {
            let left = worker.clone();
            std::thread::spawn(move || left.clean_remote(false));
        }
        if resume && restart {
            worker.start();
        } else if was_running || ended.is_some() {
            let reason = match ended.and_then(|e| e.signal) {
                Some(signal) => format!(
                    "the server stopped while the process ran; its process group outlived the server and was ended with {} at this start",
                    crate::process::signal_name(signal)
                ),
                None => "the server restarted while the process ran".to_string(),
            };
            let mut st = worker.lock();
            st.status = Status::Interrupted;
            let mut status = worker.status_event(&st);
            status.reason = Some(reason);
            worker.publish_status(&mut st, status);
            drop(st);
            worker.save();
            if restart {
                worker.start();
            }
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
        let terminal = (saved.spec.options.terminal).map(crate::terminal::TerminalState::new);
        let runner = engine.git_runner(saved.spec.host.as_deref());
        let worktree = saved
            .worktree
            .map(|worktree| isolation::Isolated::new(worktree, runner));
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
                reason: saved.reason,
                process: None,
                parser: None,
                exit,
                session_id: saved.session_id,
                error: None,
                deleted: false,
                queue: VecDeque::new(),
                turn: None,
                turns: saved.turns,
                followers: Vec::new(),
                restarts: Restarts::default(),
                resume: saved.resume,
                approvals: approvals::Approvals::default(),
                disconnected: None,
                terminal,
            }),
            dir,
            saving: Mutex::new(()),
            me: me.clone(),
            worktree,
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
        let mut st = self.lock();
        if st.deleted {
            return;
        }
        st.resume = false;
        if self.has_turns() {
            self.set_status(&mut st, Status::Idle);
        } else {
            self.set_status(&mut st, Status::Starting);
            match self.spawn(&mut st, None) {
                Err(err) => self.fail(&mut st, &err),
                Ok(()) => {
                    st.restarts.started();
                    let mut status = self.status_event_as(&st, Status::Running);
                    status.pid = st.process.as_ref().and_then(|p| p.pid());
                    st.status = Status::Running;
                    self.publish_status(&mut st, status);
                }
            }
        }
        drop(st);
        self.save();
    }

    /// Starts the program for a turn (`message`) or for the worker's life (None).
    fn spawn(&self, st: &mut WorkerState, message: Option<&str>) -> Result<(), Error> {
        let start_failed =
            |message: String| Error::new(ErrorKind::Unavailable, ErrorCode::StartFailed, message);
        let host = match &self.spec.host {
            Some(name) => Some(self.engine.hosts.find(name)?),
            // The folder is checked against the project roots every time a process
            // starts in it, symlinks resolved: it may have been swapped for a link since
            // creation. (On another host, its start script checks.)
            None => {
                self.engine.check_root(&self.checked_folder())?;
                None
            }
        };
        let binary = match (self.adapter.binary_name(), &host) {
            (None, _) => String::new(),
            // Found through the host's PATH (and the hosts file's `path`).
            (Some(name), Some(_)) => name.to_string(),
            (Some(_), None) => self
                .engine
                .registry
                .resolve_binary(self.adapter.as_ref())
                .ok_or_else(|| {
                    start_failed(format!(
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
        let spec = self.adapter.command(&launch).map_err(start_failed)?;
        let sink = self
            .me
            .upgrade()
            .ok_or_else(|| start_failed("the worker is gone".into()))?;
        let process = match &host {
            Some(host) => self.spawn_remote(host, &spec, sink)?,
            None => {
                let env = self
                    .engine
                    .child_env
                    .build(&self.adapter.credentials(), &spec.env);
                self.spawn_process(st, &spec, env, sink).map_err(|err| {
                    start_failed(format!(
                        "could not start `{}`: {err}",
                        spec.argv.first().map_or("", |s| s.as_str())
                    ))
                })?
            }
        };
        // A long-running session's handshake goes first (Claude Code's `initialize`, an
        // ACP agent's `initialize`).
        let mut parser = self.adapter.parser(&launch);
        let handshake = parser
            .start()
            .unwrap_or_else(|| self.adapter.session_start(&self.spec));
        if message.is_none() && !handshake.is_empty() && process.write_stdin(handshake).is_err() {
            process.signal(libc::SIGKILL);
            return Err(start_failed("the session refused its handshake".into()));
        }
        st.parser = Some((process.id, parser));
        st.process = Some(process);
        st.exit = None;
        Ok(())
    }

    /// Starts `spec` on `host` over ssh. Only what the kind and the worker add go with
    /// it: the host's own environment (its credentials, its PATH) is the rest.
    fn spawn_remote(
        &self,
        host: &crate::hosts::Host,
        spec: &crate::process::ProcessSpec,
        sink: Arc<Worker>,
    ) -> Result<Arc<Process>, Error> {
        use crate::hosts::remote::RemoteLaunch;
        let launch = RemoteLaunch {
            host,
            worker: &self.id,
            spec,
            // A worktree is made by the server beside the spool, from a repository that
            // was checked against the roots when the worker was created.
            roots: match self.worktree {
                Some(_) => &[],
                None => &self.engine.project_roots,
            },
            sink,
            owner: Owner::Worker(self.id.clone()),
        };
        self.engine
            .hosts
            .spawn(&self.engine.processes, launch)
            .map_err(|err| err.into_error(&host.name))
    }

    fn fail(&self, st: &mut WorkerState, err: &Error) {
        log::warn!("worker {}: {}", self.id, err.message);
        self.publish(st, vec![Event::error(err.code, err.message.clone())]);
        st.error = Some(err.message.clone());
        self.set_status(st, Status::Error);
    }

    /// The worker's state as a `status` event.
    fn status_event(&self, st: &WorkerState) -> StatusEvent {
        self.status_event_as(st, st.status)
    }

    fn status_event_as(&self, st: &WorkerState, status: Status) -> StatusEvent {
        let mut event = StatusEvent::new(status);
        if let Some(reason) = st.disconnected.as_ref().filter(|_| status.is_live()) {
            event.status = Status::Disconnected;
            event.reason = Some(reason.clone());
        }
        match status {
            Status::Exited => {
                if let Some(exit) = &st.exit {
                    event.exit = exit.fields();
                }
            }
            Status::Error => event.error = st.error.clone(),
            _ => {}
        }
        event.message_id = st.turn.as_ref().map(|t| t.message.id.clone());
        event.pending_approvals = st.approvals.pending();
        if self.has_turns() {
            event.queue = Some(turns::queued(&st.queue));
        }
        event
    }

    fn set_status(&self, st: &mut WorkerState, status: Status) {
        st.status = status;
        let event = self.status_event(st);
        self.publish_status(st, event);
    }

    /// Publishes `status` (the worker's state, with extras the caller added) and tells
    /// every observer.
    fn publish_status(&self, st: &mut WorkerState, status: StatusEvent) {
        // Why the worker is in this state, for views (a reload) until the next change.
        st.reason = status.reason.clone();
        // A turn ended, or the program: what it changed, as a `diff` event.
        if status.last_turn.is_some() || status.status == Status::Exited {
            self.diff_soon();
        }
        // A deleted worker's last word to observers was `Deleted`.
        if !st.deleted {
            self.engine.tell(self, &Notice::Status(&status));
            if status.status == Status::Exited && !self.has_turns() {
                self.engine.tell(self, &Notice::Exited(&status.exit));
            }
        }
        self.publish(st, vec![Event::Status(status)]);
    }

    /// Publishes `events` to the feed, and the ones that belong to the running turn to
    /// whoever follows it; returns the seq of the last one.
    fn publish(&self, st: &mut WorkerState, mut events: Vec<Event>) -> u64 {
        // A turn's failure is explained once, however many ways the CLI says it.
        if let Some(turn) = st.turn.as_mut() {
            events.retain(|event| match event {
                Event::Error(e) if e.code.explains_failure() => {
                    !std::mem::replace(&mut turn.explained, true)
                }
                _ => true,
            });
        }
        if events.is_empty() {
            return self.feed.last_seq();
        }
        for event in &events {
            // What a turn showed about the kind's key, for `/api/ai-clis`.
            let used = match event {
                Event::Error(e) if e.code == ErrorCode::CredentialsRejected => {
                    Some(KeyUse::Rejected)
                }
                Event::Error(e) if e.code == ErrorCode::CredentialsMissing => Some(KeyUse::Missing),
                Event::Output {
                    content: crate::event::Content::Agent(crate::event::AgentContent::Result(r)),
                } if !r.is_error => Some(KeyUse::Worked),
                _ => None,
            };
            // (A key on another host says nothing about this machine's.)
            if let Some(used) = used.filter(|_| self.spec.host.is_none()) {
                self.engine.registry.note_key_use(self.adapter.kind(), used);
            }
        }
        let followers: Vec<&Arc<dyn TurnFollower>> = match &st.turn {
            Some(turn) => st
                .followers
                .iter()
                .filter(|(id, _)| *id == turn.message.id)
                .map(|(_, f)| f)
                .collect(),
            None => Vec::new(),
        };
        if followers.is_empty() {
            return self.feed.publish(&events);
        }
        let published = self.feed.publish_events(&events);
        for (event, published) in events.iter().zip(&published) {
            for follower in &followers {
                follower.event(event, published);
            }
        }
        published.last().map_or(self.feed.last_seq(), |p| p.seq)
    }

    /// Tells the followers of the turn that just ended, and forgets them.
    fn turn_ended(&self, st: &mut WorkerState, last: &LastTurn) {
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.followers)
            .into_iter()
            .partition(|(id, _)| *id == last.message_id);
        st.followers = rest;
        for (_, follower) in done {
            follower.ended(last);
        }
    }

    /// Starts a long-running worker's process again (after it exited, was stopped, or
    /// was interrupted by a restart).
    pub fn restart(&self) -> Result<(), Error> {
        if self.has_turns() {
            return Err(Error::conflict(
                ErrorCode::NotRestartable,
                "this worker starts a process for each message; just send one",
            ));
        }
        {
            let st = self.lock();
            if st.process.as_ref().is_some_and(|p| p.is_running()) {
                return Err(Error::conflict(
                    ErrorCode::AlreadyRunning,
                    format!("{} is running already", self.display_name()),
                ));
            }
        }
        if self.spec.host.is_none() {
            self.engine.check_root(&self.checked_folder())?;
        }
        self.lock().restarts.reset();
        self.start();
        Ok(())
    }

    /// Refuses a replay from past the last event: it would wait for events that were
    /// never published (and a wrapped number would replay everything).
    pub fn check_since(&self, since: Option<u64>) -> Result<(), Error> {
        let last = self.feed.last_seq();
        match since {
            Some(since) if since > last => Err(Error::invalid(format!(
                "`since` {since} is after the last event of {} ({last}); use a seq you received, or 0 for everything",
                self.display_name()
            ))
            .with_code(ErrorCode::SinceOutOfRange)),
            _ => Ok(()),
        }
    }

    /// The worker's name for people: its name, or the start of its id.
    pub fn display_name(&self) -> String {
        if self.spec.name.is_empty() {
            format!("worker {}", &self.id[..8.min(self.id.len())])
        } else {
            format!("worker `{}`", self.spec.name)
        }
    }

    /// Whether its program asks before using tools (so a task's stricter policy can hold
    /// it back): a live session whose policy is not `auto`.
    pub fn asks_before_tools(&self) -> bool {
        self.adapter.asks_approval(&self.spec)
            && !matches!(
                crate::adapters::approval_policy(self.adapter.as_ref(), &self.spec),
                crate::approval::ApprovalPolicy::Auto
            )
    }

    /// Everything a client may know about the worker.
    pub fn view(&self) -> WorkerView {
        let st = self.lock();
        let (first_seq, last_seq) = self.feed.bounds();
        WorkerView {
            id: self.id.clone(),
            spec: self.spec.public(),
            status: match st.disconnected {
                Some(_) if st.status.is_live() => Status::Disconnected,
                _ => st.status,
            },
            created_at: self.created_at.clone(),
            pid: st
                .process
                .as_ref()
                .filter(|p| p.is_running())
                .and_then(|p| p.pid()),
            exit_code: st.exit.map(|e| e.code),
            signal: st.exit.map(|e| e.signal),
            session_id: st.session_id.clone(),
            error: st.error.clone(),
            reason: st.reason.clone(),
            has_turns: self.has_turns(),
            takes_messages: self.adapter.takes_messages(&self.spec),
            queue: turns::queued(&st.queue),
            turn: st.turn.as_ref().map(Turn::view),
            turns: st.turns,
            first_seq,
            last_seq,
            viewers: self.feed.subscriber_count(),
            owner: self.owner.clone(),
            pending_approvals: st
                .approvals
                .waiting
                .iter()
                .map(|w| w.request.clone())
                .collect(),
            approval: crate::adapters::approval_policy(self.adapter.as_ref(), &self.spec),
            live_session: self.has_turns() && self.lifecycle() == Lifecycle::LongRunning,
            worktree: self.worktree(),
        }
    }

    fn save(&self) {
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
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
            resume: st.resume,
            reason: st.reason.clone(),
            // What expires at a restart: ids and summaries, not inputs and diffs.
            pending_approvals: st
                .approvals
                .waiting
                .iter()
                .map(|w| ApprovalRequest {
                    input: serde_json::Value::Null,
                    diff: None,
                    options: Vec::new(),
                    ..w.request.clone()
                })
                .collect(),
            worktree: self.worktree(),
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

    /// Marks the worker as being deleted: from now on nothing is written to its folder,
    /// no new turn starts, and observers hear nothing more of it but `Deleted`.
    pub fn mark_deleted(&self) {
        let mut st = self.lock();
        st.deleted = true;
        st.queue.clear();
    }

    /// Tells every observer the worker is gone (after its process was stopped).
    pub fn announce_deleted(&self) {
        let _st = self.lock();
        self.engine.tell(self, &Notice::Deleted);
    }

    /// The worker is gone: whoever followed a turn hears it will not end.
    pub fn abandon_followers(&self, why: &str) {
        let followers = std::mem::take(&mut self.lock().followers);
        for (_, follower) in followers {
            follower.abandoned(why);
        }
    }

    /// Removes the worker's files (after it was stopped and its feed closed).
    /// Ends what runs of it on its host, and with `remove` its spool there too (tried
    /// again until the host answers).
    fn clean_remote(&self, remove: bool) {
        let Some(name) = &self.spec.host else { return };
        let cleaned = self
            .engine
            .hosts
            .find(name)
            .map_err(|err| err.message)
            .and_then(|host| match remove {
                true => self.engine.hosts.forget(&host, &self.id),
                false => self.engine.hosts.end_left(&host, &self.id),
            });
        if let Err(why) = cleaned {
            log::warn!("worker {}: on host `{name}`: {why}", self.id);
        }
    }

    pub fn remove_files(&self) {
        // Its spool on its host goes too (and whatever of it still runs there).
        self.clean_remote(true);
        // No save may be half-way (its file would bring the folder back).
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            log::warn!(
                "worker {}: could not remove {}: {err}",
                self.id,
                self.dir.display()
            );
        }
    }

    /// Parses a process's lines and publishes the events.
    fn on_lines(&self, process: u64, pipe: Pipe, data: &[u8]) {
        let mut st = self.lock();
        let mut parsed = Parsed::default();
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        match st.parser.as_mut().filter(|(id, _)| *id == process) {
            // The hot path of a `command` worker: no per-line copy, no event values.
            Some((_, parser)) if parser.passes_lines_through() => {
                self.feed.publish_lines(pipe, body);
            }
            Some((_, parser)) => {
                for line in body.split(|&b| b == b'\n') {
                    parser.line(pipe, line, &mut parsed);
                }
            }
            None => {
                // Lines of an earlier process, arriving after it was replaced: shown,
                // but nothing it asks or answers can reach it any more.
                let launch = Launch {
                    spec: &self.spec,
                    message: None,
                    session_id: None,
                    binary: "",
                    settings: &self.engine.registry.settings,
                };
                let mut parser = self.adapter.parser(&launch);
                for line in body.split(|&b| b == b'\n') {
                    parser.line(pipe, line, &mut parsed);
                }
                parsed = Parsed {
                    events: std::mem::take(&mut parsed.events),
                    ..Parsed::default()
                };
            }
        }
        let events = std::mem::take(&mut parsed.events);
        if !events.is_empty() {
            self.publish(&mut st, events);
        }
        if !parsed.replies.is_empty()
            && let Some(running) = st.process.clone().filter(|p| p.id == process)
        {
            for reply in std::mem::take(&mut parsed.replies) {
                if running.write_stdin(reply).is_err() {
                    break;
                }
            }
        }
        let mut changed = false;
        if parsed.session_lost {
            self.on_session_lost(&mut st, process);
            changed = true;
        }
        let restarting = st
            .turn
            .as_ref()
            .is_some_and(|t| t.lost_session == Some(process));
        if let Some(session) = parsed.session_id.filter(|_| !restarting)
            && st.session_id.as_deref() != Some(&session)
        {
            st.session_id = Some(session);
            changed = true;
        }
        // Requests and their ends are in the history, which a restart reads: no save of
        // worker.json on this path (it cost the approval round trip its p99).
        if !parsed.asks.is_empty() {
            self.on_asks(&mut st, process, std::mem::take(&mut parsed.asks));
        }
        if !parsed.withdrawn.is_empty() {
            self.on_withdrawn(&mut st, process, &parsed.withdrawn);
        }
        if parsed.stop_process
            && let Some(running) = st.process.clone().filter(|p| p.id == process)
        {
            // The protocol's session cannot start: the next message starts a new process.
            self.end_process(&running);
        }
        if parsed.fail_turn
            && let Some(running) = st.process.clone().filter(|p| p.id == process)
            && st.turn.as_ref().is_some_and(|t| t.ended.is_none())
        {
            self.cut_turn(&mut st, &running, turns::Cause::Failed);
        }
        if let Some(end) = parsed.turn_end.filter(|_| !restarting) {
            self.on_turn_end(&mut st, process, end);
            changed = true;
        }
        drop(st);
        if changed {
            self.save();
        }
    }

    /// Ends `process` (SIGTERM, then SIGKILL after the grace) without waiting.
    fn end_process(&self, process: &Arc<Process>) {
        process.signal(libc::SIGTERM);
        let process = process.clone();
        self.engine.timer.after(self.engine.kill_grace, move || {
            if process.is_running() {
                process.signal(libc::SIGKILL);
            }
        });
    }

    /// The host of its (remote) process stopped answering (`Some(reason)`), or answers
    /// again: viewers see `disconnected`, then the state it was in.
    fn on_link(&self, process: u64, lost: Option<String>) {
        let mut st = self.lock();
        if st.process.as_ref().is_none_or(|p| p.id != process) {
            return;
        }
        st.disconnected = lost;
        let event = self.status_event(&st);
        self.publish_status(&mut st, event);
    }

    /// Input for a worker whose host is not answering.
    fn unreachable(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            ErrorCode::HostUnreachable,
            format!(
                "{} runs on host `{}`, which cannot be reached right now; nothing was sent (it is tried again, watch for the status to change)",
                self.display_name(),
                self.spec.host.as_deref().unwrap_or("?")
            ),
        )
    }

    fn on_exit(&self, process: u64, exit: Exit) {
        let mut st = self.lock();
        if st.process.as_ref().is_none_or(|p| p.id != process) {
            return;
        }
        st.disconnected = None;
        // What "allow for this session" allowed ends with the session's process.
        st.approvals.end_session();
        if let Some((_, mut parser)) = st.parser.take() {
            let mut parsed = Parsed::default();
            parser.finish(&mut parsed);
            if !parsed.events.is_empty() {
                self.publish(&mut st, parsed.events);
            }
        }
        st.exit = Some(exit);
        st.process = None;
        self.end_approvals(
            &mut st,
            Decision::Cancelled,
            "the program",
            "the program ended before anyone answered",
            false,
        );
        self.on_process_gone(&mut st, process, exit);
        // Nothing more comes until the next process: hold no descriptor meanwhile.
        if st.process.is_none() {
            self.feed.release_file();
        }
        drop(st);
        self.save();
    }
}

impl ProcessSink for Worker {
    fn on_process_event(&self, process: u64, event: ProcEvent) {
        match event {
            ProcEvent::Lines { pipe, data } => self.on_lines(process, pipe, &data),
            ProcEvent::Terminal(data) => self.on_terminal(data),
            ProcEvent::Exited(exit) => self.on_exit(process, exit),
            ProcEvent::Disconnected { reason } => self.on_link(process, Some(reason)),
            ProcEvent::Reconnected => self.on_link(process, None),
            ProcEvent::StartFailed(err) => self.on_start_failed(process, &err),
        }
    }
}

/// An error event about message `message_id`.
fn turn_error(code: ErrorCode, message: impl Into<String>, message_id: &str) -> Event {
    let mut error = ErrorEvent::new(code, message);
    error.message_id = Some(message_id.to_string());
    Event::Error(error)
}
