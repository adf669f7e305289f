//! Tasks: instructions for agents, queued, run on a worker, followed to their end, and
//! optionally repeated on a schedule. A task goes `pending`, `running`, then
//! `completed`, `failed` or `cancelled`; it runs on the named worker, or on an idle
//! worker of the requested kind, or on a new worker created for it. Its live events are
//! pushed to every `/ws` client as `task:update`. Tasks and schedules are kept in
//! `DATA_DIR/tasks.json` and survive a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::approval::ApprovalPolicy;
use crate::auth::{Access, Caller, Role};
use crate::clock;
use crate::error::{Error, ErrorCode};
use crate::event::{Outcome, Published, Status};
use crate::timer::Timer;
use crate::worker::Worker;
use crate::worker::follow::{TurnOutcome, TurnWatch};
use crate::worker::hub::Hub;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// A task status as a client names it (`?status=`, `task:list`).
pub fn parse_status(text: &str) -> Result<TaskStatus, Error> {
    serde_json::from_value(Value::String(text.to_string())).map_err(|_| {
        Error::invalid(format!(
            "`status` must be one of pending, running, completed, failed, cancelled, not `{text}`"
        ))
    })
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schedule {
    pub every_seconds: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub instruction: String,
    #[serde(default)]
    pub worker_id: Option<String>,
    #[serde(default)]
    pub ai_cli_type: Option<String>,
    #[serde(default)]
    pub project_path: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// How its turns' tool calls are decided (`"ask"`, `"auto"` or rules), when not by
    /// the worker's own policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    pub status: TaskStatus,
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub next_run_at: Option<String>,
    #[serde(default)]
    pub runs: u64,
    /// The worker the latest run went to, and its message.
    #[serde(default)]
    pub assigned_worker: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// The name of the token that created it, and its role: the task runs as it.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub owner_role: Option<Role>,
    /// `worktree`: the task gets a worker of its own, in a git worktree of its own
    /// (never an idle worker picked from others).
    #[serde(default, skip_serializing_if = "crate::spec::Isolation::is_none")]
    pub isolation: crate::spec::Isolation,
}

impl Task {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Who the task acts as: the token that created it (an admin for tasks from before
    /// tokens had names).
    fn acting_as(&self) -> Caller {
        match (&self.owner, self.owner_role) {
            (Some(name), Some(role)) => Caller {
                name: name.as_str().into(),
                role,
            },
            _ => Caller::local(),
        }
    }
}

/// The longest interval a schedule may have: a year.
pub const MAX_EVERY_SECONDS: u64 = 366 * 24 * 3600;

/// Parses a schedule: a number of seconds, `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"1w"`, or
/// `{"every_seconds": N}` / `{"every": "5m"}`; from 1 s to a year.
pub fn parse_schedule(value: &Value) -> Result<Option<Schedule>, Error> {
    let seconds = |text: &str| -> Option<u64> {
        let text = text.trim();
        let (num, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let n: u64 = num.parse().ok()?;
        match unit.trim() {
            "" | "s" | "sec" | "seconds" => Some(n),
            "m" | "min" | "minutes" => n.checked_mul(60),
            "h" | "hours" => n.checked_mul(3600),
            "d" | "days" => n.checked_mul(86_400),
            "w" | "weeks" => n.checked_mul(7 * 86_400),
            _ => None,
        }
    };
    let every = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => seconds(s),
        Value::Object(map) => match (map.get("every_seconds"), map.get("every")) {
            (Some(v), _) => v.as_u64(),
            (None, Some(Value::String(s))) => seconds(s),
            (None, Some(v)) => v.as_u64(),
            _ => None,
        },
        _ => None,
    };
    match every {
        Some(n) if (1..=MAX_EVERY_SECONDS).contains(&n) => Ok(Some(Schedule { every_seconds: n })),
        _ => Err(Error::invalid(
            "`schedule` must be an interval from 1 s to a year: seconds, \"30s\", \"5m\", \"2h\", \"1d\", \"1w\" or {\"every_seconds\": N}",
        )),
    }
}

/// What happened to a task, for those who watch tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskNotice {
    /// Created, started, cancelled.
    Updated,
    /// A run ended well.
    Completed,
    /// A run failed.
    Failed,
}

/// Someone who watches tasks (the agent protocol's dashboards).
pub trait TaskObserver: Send + Sync {
    fn task_changed(&self, task: &Task, notice: TaskNotice);
    /// An event of a task's running turn, on worker `worker_id`.
    fn task_event(&self, task: &Task, worker_id: &str, event: &Published);
}

pub struct Tasks {
    tasks: Mutex<Vec<Task>>,
    path: PathBuf,
    hub: Arc<Hub>,
    observer: Arc<dyn TaskObserver>,
    timer: Timer,
    me: Weak<Tasks>,
}

const TEXT_FIELDS: &[&str] = &[
    "instruction",
    "worker_id",
    "ai_cli_type",
    "project_path",
    "schedule",
    "approval",
    "isolation",
];

impl Tasks {
    /// Loads the tasks kept in `path`. A task that was running when the server stopped
    /// has failed; pending ones run now and schedules carry on.
    pub fn open(
        path: PathBuf,
        hub: Arc<Hub>,
        observer: Arc<dyn TaskObserver>,
        timer: Timer,
    ) -> Arc<Tasks> {
        let mut tasks: Vec<Task> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        for task in &mut tasks {
            if task.status == TaskStatus::Running {
                task.status = TaskStatus::Failed;
                task.error = Some("the server restarted while the task ran".into());
                task.finished_at = Some(clock::now_rfc3339());
            }
        }
        let tasks = Arc::new_cyclic(|me| Tasks {
            tasks: Mutex::new(tasks),
            path,
            hub,
            observer,
            timer,
            me: me.clone(),
        });
        let (pending, scheduled): (Vec<String>, Vec<(String, Duration)>) = {
            let all = tasks.lock();
            let pending = all
                .iter()
                .filter(|t| t.status == TaskStatus::Pending && t.schedule.is_none())
                .map(|t| t.id.clone())
                .collect();
            let now = clock::now_micros();
            let scheduled = all
                .iter()
                .filter(|t| t.schedule.is_some() && t.status != TaskStatus::Cancelled)
                .map(|t| {
                    let at = t
                        .next_run_at
                        .as_deref()
                        .and_then(clock::parse_rfc3339)
                        .unwrap_or(now);
                    (
                        t.id.clone(),
                        Duration::from_micros(at.saturating_sub(now).max(0) as u64),
                    )
                })
                .collect();
            (pending, scheduled)
        };
        tasks.save();
        for id in pending {
            tasks.dispatch_soon(id);
        }
        for (id, delay) in scheduled {
            tasks.arm(id, delay);
        }
        tasks
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Task>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self) {
        let bytes = match serde_json::to_vec_pretty(&*self.lock()) {
            Ok(b) => b,
            Err(err) => return log::warn!("could not serialize tasks: {err}"),
        };
        if let Err(err) = crate::private_files::write(&self.path, &bytes) {
            log::warn!("could not save tasks to {}: {err}", self.path.display());
        }
    }

    fn get(&self, id: &str) -> Result<Task, Error> {
        self.lock()
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no task `{id}`")))
    }

    /// A task `caller` may `access`, by id or the start of it (one it may not see is
    /// not found).
    pub fn get_for(&self, caller: &Caller, id: &str, access: Access) -> Result<Task, Error> {
        let visible: Vec<Task> = self
            .lock()
            .iter()
            .filter(|t| caller.may(Access::Read, t.owner.as_deref()))
            .cloned()
            .collect();
        let exact = visible.iter().find(|t| t.id == id).cloned();
        let task = match exact {
            Some(task) => task,
            None => crate::spec::unique_prefix(
                visible,
                id,
                |t| t.id.as_str(),
                |t| t.id.chars().take(8).collect(),
                "tasks",
            )?
            .ok_or_else(|| Error::not_found(format!("no task `{id}`")))?,
        };
        if !caller.may(access, task.owner.as_deref()) {
            return Err(Error::forbidden(
                ErrorCode::Forbidden,
                format!(
                    "the token `{}` may see this task but not change it",
                    caller.name
                ),
            ));
        }
        Ok(task)
    }

    /// The tasks `caller` may see, with `status` if given.
    pub fn list(&self, caller: &Caller, status: Option<TaskStatus>) -> Vec<Task> {
        self.lock()
            .iter()
            .filter(|t| status.is_none_or(|s| t.status == s))
            .filter(|t| caller.may(Access::Read, t.owner.as_deref()))
            .cloned()
            .collect()
    }

    /// Every task (for counts).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn count_by_status(&self) -> Map<String, Value> {
        let mut counts = Map::new();
        for task in self.lock().iter() {
            let n = counts
                .get(task.status.as_str())
                .and_then(Value::as_u64)
                .unwrap_or(0);
            counts.insert(task.status.as_str().into(), (n + 1).into());
        }
        counts
    }

    /// Creates a task from `{"instruction", "worker_id"?, "ai_cli_type"?,
    /// "project_path"?, "schedule"?, "approval"?}`; an unscheduled one starts at once.
    pub fn create(&self, body: &Map<String, Value>, caller: &Caller) -> Result<Task, Error> {
        if !caller.may_create() {
            return Err(Error::forbidden(
                ErrorCode::Forbidden,
                format!(
                    "the token `{}` is a viewer: it may not create tasks",
                    caller.name
                ),
            ));
        }
        if let Some(unknown) = body.keys().find(|k| !TEXT_FIELDS.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown field `{unknown}`; known fields: {}",
                TEXT_FIELDS.join(", ")
            )));
        }
        let text = |key: &str| -> Result<Option<String>, Error> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(Error::invalid(format!(
                    "`{key}` must be a non-empty string"
                ))),
            }
        };
        let instruction = text("instruction")?
            .ok_or_else(|| Error::invalid("`instruction` is required: what the agent should do"))?;
        let worker_id = text("worker_id")?;
        let ai_cli_type = text("ai_cli_type")?;
        if worker_id.is_none() && ai_cli_type.is_none() {
            return Err(Error::invalid(
                "a task needs `worker_id`, or `ai_cli_type` to pick or create a worker",
            ));
        }
        let approval = match body.get("approval") {
            None | Some(Value::Null) => None,
            Some(value) => {
                ApprovalPolicy::from_field(value)?;
                Some(value.clone())
            }
        };
        // The worker it names, by id, name or the start of its id: kept by id.
        let worker_id = match &worker_id {
            Some(name) => {
                let worker = self.hub.require_for(caller, name, Access::Change)?;
                // A program that asks nothing cannot be held back by the task's policy.
                if approval.is_some() && !worker.asks_before_tools() {
                    return Err(Error::invalid(format!(
                        "{} runs every tool without asking (its approval is auto, or its program cannot ask): a task's `approval` could not hold it back",
                        worker.display_name()
                    )));
                }
                Some(worker.id.clone())
            }
            None => None,
        };
        if let Some(kind) = &ai_cli_type {
            // A kind this server cannot run now is refused now, not at the first run.
            let adapter = self
                .hub
                .registry
                .get(kind)
                .ok_or_else(|| Error::invalid(format!("unknown `ai_cli_type` `{kind}`")))?;
            self.hub.registry.check_usable(adapter.as_ref())?;
        }
        let schedule = parse_schedule(body.get("schedule").unwrap_or(&Value::Null))?;
        let now = clock::now_rfc3339();
        let next_run_at = schedule.as_ref().map(|s| {
            clock::rfc3339_micros(clock::now_micros() + s.every_seconds as i64 * 1_000_000)
        });
        let task = Task {
            id: uuid::Uuid::new_v4().to_string(),
            instruction,
            worker_id,
            ai_cli_type,
            project_path: text("project_path")?,
            schedule: schedule.clone(),
            approval,
            status: TaskStatus::Pending,
            created_at: now,
            started_at: None,
            finished_at: None,
            next_run_at,
            runs: 0,
            assigned_worker: None,
            message_id: None,
            result: None,
            error: None,
            owner: Some(caller.name.to_string()),
            owner_role: Some(caller.role),
            isolation: crate::spec::Isolation::from_field(body.get("isolation"))?,
        };
        self.lock().push(task.clone());
        self.save();
        self.observer.task_changed(&task, TaskNotice::Updated);
        match &schedule {
            None => self.dispatch_soon(task.id.clone()),
            Some(s) => self.arm(task.id.clone(), Duration::from_secs(s.every_seconds)),
        }
        Ok(task)
    }

    /// Runs a task now (a scheduled one between its runs, or one that ended).
    pub fn run_now(&self, caller: &Caller, id: &str) -> Result<Task, Error> {
        let id = self.get_for(caller, id, Access::Change)?.id;
        let id = id.as_str();
        {
            let mut tasks = self.lock();
            let task = tasks
                .iter_mut()
                .find(|t| t.id == id)
                .ok_or_else(|| Error::not_found(format!("no task `{id}`")))?;
            if task.status == TaskStatus::Running {
                return Err(Error::conflict(
                    ErrorCode::TaskRunning,
                    "the task is running already",
                ));
            }
            task.status = TaskStatus::Pending;
            task.error = None;
        }
        self.save();
        self.dispatch_soon(id.to_string());
        self.get(id)
    }

    /// Cancels a task: it will not run again, and a running turn is interrupted.
    pub fn cancel(&self, caller: &Caller, id: &str) -> Result<Task, Error> {
        let id = self.get_for(caller, id, Access::Change)?.id;
        let id = id.as_str();
        let (worker, message) = {
            let mut tasks = self.lock();
            let task = tasks
                .iter_mut()
                .find(|t| t.id == id)
                .ok_or_else(|| Error::not_found(format!("no task `{id}`")))?;
            let was_running = task.status == TaskStatus::Running;
            task.status = TaskStatus::Cancelled;
            task.next_run_at = None;
            task.finished_at = Some(clock::now_rfc3339());
            (
                was_running.then(|| task.assigned_worker.clone()).flatten(),
                task.message_id.clone(),
            )
        };
        if let (Some(worker), Some(message)) = (worker.and_then(|w| self.hub.get(&w)), message)
            && worker.current_message().as_deref() == Some(message.as_str())
        {
            let _ = worker.interrupt();
        }
        self.save();
        let task = self.get(id)?;
        self.observer.task_changed(&task, TaskNotice::Updated);
        Ok(task)
    }

    fn arm(&self, id: String, delay: Duration) {
        let tasks = self.me.clone();
        self.timer.after(delay, move || {
            if let Some(tasks) = tasks.upgrade() {
                tasks.due(id);
            }
        });
    }

    /// A scheduled task's time has come.
    fn due(&self, id: String) {
        let run = {
            let tasks = self.lock();
            tasks.iter().find(|t| t.id == id).is_some_and(|t| {
                t.schedule.is_some()
                    && t.status != TaskStatus::Cancelled
                    && t.status != TaskStatus::Running
                    && t.next_run_at
                        .as_deref()
                        .and_then(clock::parse_rfc3339)
                        .is_some_and(|at| at <= clock::now_micros() + 50_000)
            })
        };
        if run {
            self.dispatch_soon(id);
        }
    }

    /// Dispatching may create a worker (a process start), so it runs on its own thread.
    fn dispatch_soon(&self, id: String) {
        let tasks = self.me.clone();
        let spawned = std::thread::Builder::new()
            .name("task-dispatch".into())
            .spawn(move || {
                if let Some(tasks) = tasks.upgrade() {
                    tasks.dispatch(&id);
                }
            });
        if let Err(err) = spawned {
            log::error!("could not start a task: {err}");
        }
    }

    fn dispatch(&self, id: &str) {
        let Ok(task) = self.get(id) else { return };
        if task.status == TaskStatus::Running || task.status == TaskStatus::Cancelled {
            return;
        }
        let worker = match self.pick_worker(&task) {
            Ok(w) => w,
            Err(err) => return self.fail(id, &err.message),
        };
        let message_id = uuid::Uuid::new_v4().to_string();
        // A program without turns (a `command` worker): the run is the line reaching it,
        // decided before the task is shown running (a stopped worker fails it at once).
        let delivered = (!worker.has_turns()).then(|| {
            let by = task.owner.clone().unwrap_or_else(|| "task".into());
            worker.send_message(&task.instruction, &by)
        });
        {
            let mut tasks = self.lock();
            let Some(task) = tasks.iter_mut().find(|t| t.id == id) else {
                return;
            };
            task.status = if delivered.is_some() {
                task.status
            } else {
                TaskStatus::Running
            };
            task.runs += 1;
            task.started_at = Some(clock::now_rfc3339());
            task.finished_at = None;
            task.assigned_worker = Some(worker.id.clone());
            task.message_id = Some(message_id.clone());
            task.error = None;
            task.result = None;
        }
        self.save();
        let Ok(task) = self.get(id) else { return };
        self.observer.task_changed(&task, TaskNotice::Updated);
        let observer = self.observer.clone();
        let (seen, worker_id) = (task.clone(), worker.id.clone());
        let me = self.me.clone();
        let done_id = id.to_string();
        let watch = TurnWatch::new(
            move |event| observer.task_event(&seen, &worker_id, event),
            move |outcome| {
                if let Some(tasks) = me.upgrade() {
                    tasks.finish(&done_id, outcome);
                }
            },
        );
        let by = task.owner.clone().unwrap_or_else(|| "task".into());
        if let Some(delivered) = delivered {
            return match delivered {
                Ok(_) => self.end(id, TurnOutcome::delivered(), None),
                Err(err) => self.fail(id, &err.message),
            };
        }
        worker.follow(&message_id, watch);
        let approval = task
            .approval
            .as_ref()
            .and_then(|a| ApprovalPolicy::from_value(a).ok());
        if let Err(err) =
            worker.send_message_with(&task.instruction, message_id.clone(), &by, approval)
        {
            worker.unfollow(&message_id);
            self.fail(id, &err.message);
        }
    }

    /// The worker a task runs on: the one it names, an idle one of its kind (in its
    /// folder, if it names one), or a new one.
    fn pick_worker(&self, task: &Task) -> Result<Arc<Worker>, Error> {
        let owner = task.acting_as();
        if let Some(id) = &task.worker_id {
            return self.hub.require_for(&owner, id, Access::Change);
        }
        let kind = task.ai_cli_type.clone().unwrap_or_default();
        let isolated = task.isolation == crate::spec::Isolation::Worktree;
        let idle = self.hub.list_for(&owner).into_iter().find(|w| {
            !isolated
                && owner.may(Access::Change, w.owner.as_deref())
                && w.spec.ai_cli_type == kind
                && w.status() == Status::Idle
                && w.accepts_tasks()
                // A task with its own policy needs a worker whose program asks.
                && (task.approval.is_none() || w.asks_before_tools())
                && task.project_path.as_ref().is_none_or(|p| {
                    std::path::Path::new(p).canonicalize().ok().as_deref()
                        == Some(&w.spec.project_path)
                })
        });
        if let Some(worker) = idle {
            return Ok(worker);
        }
        let project = task.project_path.clone().ok_or_else(|| {
            Error::invalid(format!(
                "no idle `{kind}` worker, and no `project_path` to create one in"
            ))
        })?;
        let short: String = task.id.chars().take(8).collect();
        let mut body =
            json!({"name": format!("task-{short}"), "ai_cli_type": kind, "project_path": project});
        if isolated {
            body["isolation"] = json!(task.isolation);
        }
        self.hub.create(&body, &owner)
    }

    fn fail(&self, id: &str, error: &str) {
        log::warn!("task {id} failed: {error}");
        let outcome = TurnOutcome {
            outcome: Outcome::Failed,
            success: false,
            result: None,
            text: error.to_string(),
            events: 0,
            duration_ms: None,
        };
        self.end(id, outcome, Some(error.to_string()));
    }

    fn finish(&self, id: &str, outcome: TurnOutcome) {
        let error =
            (!outcome.success).then(|| format!("the turn ended: {}", outcome.outcome.as_str()));
        self.end(id, outcome, error);
    }

    fn end(&self, id: &str, outcome: TurnOutcome, error: Option<String>) {
        let (task, rearm) = {
            let mut tasks = self.lock();
            let Some(task) = tasks.iter_mut().find(|t| t.id == id) else {
                return;
            };
            if task.status != TaskStatus::Cancelled {
                task.status = if error.is_none() {
                    TaskStatus::Completed
                } else {
                    TaskStatus::Failed
                };
                task.error = error;
            }
            task.finished_at = Some(clock::now_rfc3339());
            task.result = serde_json::to_value(&outcome).ok();
            let rearm = match (&task.schedule, task.status) {
                (Some(s), status) if status != TaskStatus::Cancelled => {
                    task.next_run_at = Some(clock::rfc3339_micros(
                        clock::now_micros() + s.every_seconds as i64 * 1_000_000,
                    ));
                    Some(Duration::from_secs(s.every_seconds))
                }
                _ => None,
            };
            (task.clone(), rearm)
        };
        self.save();
        let notice = match task.status {
            TaskStatus::Completed => TaskNotice::Completed,
            TaskStatus::Cancelled => TaskNotice::Updated,
            _ => TaskNotice::Failed,
        };
        self.observer.task_changed(&task, notice);
        if let Some(delay) = rearm {
            self.arm(task.id.clone(), delay);
        }
    }
}
