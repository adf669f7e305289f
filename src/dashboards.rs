//! Every `/ws` connection, for what is pushed to all of them: agents' status changes,
//! task updates, batch progress, periodic system status. A push about a worker or a
//! task reaches only the connections whose token may see it.

use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;

use crate::auth::{Access, Caller};
use crate::event::{Published, Status};
use crate::tasks::{Task, TaskNotice, TaskObserver};
use crate::wire::envelope::{ServerType, envelope};
use crate::wire::frame;
use crate::worker::{Notice, Observer, Worker};
use crate::ws::conn::Conn;

/// Who a push is for.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    /// Every connection (server-wide figures).
    Everyone,
    /// Connections that may read what `owner` owns (a worker's or a task's owner).
    ReadersOf(Option<&'a str>),
}

#[derive(Default)]
pub struct Dashboards {
    conns: Mutex<Vec<(Weak<Conn>, Caller)>>,
}

impl Dashboards {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Weak<Conn>, Caller)>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, conn: &Arc<Conn>, caller: &Caller) {
        let mut conns = self.lock();
        conns.retain(|(c, _)| c.strong_count() > 0);
        conns.push((Arc::downgrade(conn), caller.clone()));
    }

    pub fn remove(&self, id: u64) {
        self.lock()
            .retain(|(c, _)| c.upgrade().is_some_and(|c| c.id != id));
    }

    pub fn count(&self) -> usize {
        self.lock()
            .iter()
            .filter(|(c, _)| c.strong_count() > 0)
            .count()
    }

    /// Sends one envelope to every `/ws` client of `audience`. It is framed once; a
    /// client too far behind misses the push (it can ask for the state).
    pub fn push(
        &self,
        kind: ServerType,
        payload: Value,
        source: Option<&str>,
        audience: Audience<'_>,
    ) {
        let conns: Vec<Arc<Conn>> = self
            .lock()
            .iter()
            .filter(|(_, caller)| match audience {
                Audience::Everyone => true,
                Audience::ReadersOf(owner) => caller.may(Access::Read, owner),
            })
            .filter_map(|(c, _)| c.upgrade())
            .collect();
        if conns.is_empty() {
            return;
        }
        let bytes: Arc<[u8]> =
            frame::text(envelope(kind, payload, source, None).to_string().as_bytes()).into();
        for conn in conns {
            conn.push_shared(bytes.clone());
        }
    }
}

/// Dashboards hear of every worker's changes: `agent:status` for each status, and
/// `agent:stopped` when its process ended or it was deleted.
impl Observer for Dashboards {
    fn notice(&self, worker: &Worker, notice: &Notice<'_>) {
        let audience = Audience::ReadersOf(worker.owner.as_deref());
        let with_worker = |fields: Value| {
            let mut payload = match fields {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            payload.insert("worker_id".into(), worker.id.clone().into());
            payload.insert("name".into(), worker.spec.name.clone().into());
            Value::Object(payload)
        };
        match notice {
            Notice::Status(status) => {
                let fields = serde_json::to_value(status).unwrap_or(Value::Null);
                self.push(
                    ServerType::AgentStatus,
                    with_worker(fields),
                    Some(&worker.id),
                    audience,
                );
            }
            Notice::Exited(exit) => {
                let mut fields = serde_json::to_value(exit).unwrap_or(Value::Null);
                fields["status"] = Status::Exited.as_str().into();
                self.push(
                    ServerType::AgentStopped,
                    with_worker(fields),
                    Some(&worker.id),
                    audience,
                );
            }
            Notice::Deleted => {
                let fields = serde_json::json!({"status": Status::Exited, "deleted": true});
                self.push(
                    ServerType::AgentStopped,
                    with_worker(fields),
                    Some(&worker.id),
                    audience,
                );
            }
        }
    }
}

/// Dashboards hear of tasks: `task:update` when one is created, starts, is cancelled,
/// and for each event of a running one; `task:complete` / `task:failed` when a run ends.
impl TaskObserver for Dashboards {
    fn task_changed(&self, task: &Task, notice: TaskNotice) {
        let kind = match notice {
            TaskNotice::Updated => ServerType::TaskUpdate,
            TaskNotice::Completed => ServerType::TaskComplete,
            TaskNotice::Failed => ServerType::TaskFailed,
        };
        self.push(
            kind,
            serde_json::json!({"task": task.json()}),
            None,
            Audience::ReadersOf(task.owner.as_deref()),
        );
    }

    fn task_event(&self, task: &Task, worker_id: &str, event: &Published) {
        self.push(
            ServerType::TaskUpdate,
            serde_json::json!({"task_id": task.id, "worker_id": worker_id, "event": event.to_value()}),
            Some(worker_id),
            Audience::ReadersOf(task.owner.as_deref()),
        );
    }
}
