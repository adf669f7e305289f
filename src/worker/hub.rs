//! The hub: every worker of this server, by id and by name, and the rules for creating
//! and removing them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::{Engine, Status, Worker, WorkerSpec};
use crate::adapters::Registry;
use crate::auth::{Access, Caller};
use crate::error::{Error, ErrorCode};
use crate::process::ledger::{Ended, Owner};

pub struct HubConfig {
    pub max_workers: usize,
    /// Most workers kept at all (running or not): each holds its history and settings.
    pub max_stored_workers: usize,
    /// Most live workers created with one token.
    pub max_workers_per_token: usize,
    /// Relative `project_path`s are taken from here.
    pub base_dir: PathBuf,
    pub default_kind: String,
    /// Where workers with `"isolation": "worktree"` get their worktrees.
    pub worktrees_dir: PathBuf,
}

pub struct Hub {
    workers: RwLock<Vec<Arc<Worker>>>,
    pub engine: Arc<Engine>,
    pub registry: Arc<Registry>,
    config: HubConfig,
    /// Serializes creation so the worker limit holds under concurrent requests.
    creating: Mutex<()>,
}

impl Hub {
    pub fn new(engine: Arc<Engine>, config: HubConfig) -> Hub {
        Hub {
            workers: RwLock::new(Vec::new()),
            registry: engine.registry.clone(),
            engine,
            config,
            creating: Mutex::new(()),
        }
    }

    /// Loads every worker saved under the data folder; `ended` are the process groups
    /// a previous server left running and that were ended at this start.
    pub fn restore(&self, ended: &[Ended]) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.engine.workers_dir) else {
            return 0;
        };
        let mut restored = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            if !path.join("worker.json").is_file() {
                continue;
            }
            let id = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let left = ended
                .iter()
                .find(|e| e.entry.owner == Owner::Worker(id.to_string()));
            match Worker::restore(
                &path,
                self.engine.clone(),
                |kind| self.registry.get(kind),
                left,
            ) {
                Ok(worker) => restored.push(worker),
                Err(err) => log::warn!("could not restore the worker in {}: {err}", path.display()),
            }
        }
        restored.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let count = restored.len();
        self.write().extend(restored);
        count
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Worker>>> {
        self.workers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Worker>>> {
        self.workers.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn list(&self) -> Vec<Arc<Worker>> {
        self.read().clone()
    }

    /// The workers `caller` may see.
    pub fn list_for(&self, caller: &Caller) -> Vec<Arc<Worker>> {
        self.read()
            .iter()
            .filter(|w| caller.may(Access::Read, w.owner.as_deref()))
            .cloned()
            .collect()
    }

    /// A worker by id or name, for `caller` to `access`: one it may not see is not
    /// found (its existence is not revealed); one it may see but not change is 403.
    pub fn require_for(
        &self,
        caller: &Caller,
        id_or_name: &str,
        access: Access,
    ) -> Result<Arc<Worker>, Error> {
        let worker = self.resolve(id_or_name, |w| caller.may(Access::Read, w.owner.as_deref()))?;
        if !caller.may(access, worker.owner.as_deref()) {
            return Err(Error::forbidden(
                ErrorCode::Forbidden,
                format!(
                    "the token `{}` ({}) may watch {} but not change it",
                    caller.name,
                    caller.role.as_str(),
                    worker.display_name()
                ),
            ));
        }
        Ok(worker)
    }

    /// A worker by id, or else by name (exactly).
    pub fn get(&self, id_or_name: &str) -> Option<Arc<Worker>> {
        let workers = self.read();
        workers
            .iter()
            .find(|w| w.id == id_or_name)
            .or_else(|| {
                workers
                    .iter()
                    .find(|w| !w.spec.name.is_empty() && w.spec.name == id_or_name)
            })
            .cloned()
    }

    /// A worker by id, name, or the start of its id (as with git: at least
    /// `MIN_PREFIX` characters, and only one worker may match), among those `visible`.
    pub fn resolve(
        &self,
        id_or_name: &str,
        visible: impl Fn(&Worker) -> bool,
    ) -> Result<Arc<Worker>, Error> {
        if let Some(worker) = self.get(id_or_name).filter(|w| visible(w)) {
            return Ok(worker);
        }
        let visible_ones: Vec<Arc<Worker>> =
            self.read().iter().filter(|w| visible(w)).cloned().collect();
        crate::spec::unique_prefix(
            visible_ones,
            id_or_name,
            |w| w.id.as_str(),
            |w| w.display_name(),
            "workers",
        )?
        .ok_or_else(|| Error::not_found(format!("no worker `{id_or_name}`")))
    }

    pub fn require(&self, id_or_name: &str) -> Result<Arc<Worker>, Error> {
        self.resolve(id_or_name, |_| true)
    }

    /// The kind of workers created without one.
    pub fn default_kind(&self) -> &str {
        &self.config.default_kind
    }

    pub fn live_count(&self) -> usize {
        self.read().iter().filter(|w| w.status().is_live()).count()
    }

    /// Refuses a folder outside the configured project roots (after resolving symlinks).
    pub fn check_root(&self, folder: &std::path::Path) -> Result<std::path::PathBuf, Error> {
        self.engine.check_root(folder)
    }

    /// A worker's folder here: it exists, is a folder, and is inside the project roots
    /// once its symlinks are resolved.
    fn local_folder(&self, folder: &std::path::Path) -> Result<std::path::PathBuf, Error> {
        let shown = folder.display().to_string();
        let real = folder.canonicalize().map_err(|err| {
            Error::invalid(format!("`project_path` {shown} cannot be used: {err}"))
        })?;
        if !real.is_dir() {
            return Err(Error::invalid(format!(
                "`project_path` {shown} is not a directory"
            )));
        }
        self.check_root(&real)?;
        Ok(real)
    }

    /// Creates and starts a worker from a create request made by `caller`, who owns it.
    pub fn create(&self, body: &Value, caller: &Caller) -> Result<Arc<Worker>, Error> {
        if !caller.may_create() {
            return Err(Error::forbidden(
                ErrorCode::Forbidden,
                format!(
                    "the token `{}` is a viewer: it may not create workers",
                    caller.name
                ),
            ));
        }
        let owner = Some(caller.name.to_string());
        let mut spec =
            WorkerSpec::from_json(body, &self.config.default_kind, &self.config.base_dir)?;
        let adapter = self.registry.get(&spec.ai_cli_type).ok_or_else(|| {
            let kinds: Vec<&str> = self.registry.kinds().map(|a| a.kind()).collect();
            Error::invalid(format!(
                "unknown `ai_cli_type` `{}`; this server offers: {}",
                spec.ai_cli_type,
                kinds.join(", ")
            ))
        })?;
        match spec.host.clone() {
            None => self.registry.check_usable(adapter.as_ref())?,
            Some(name) => {
                let host = self.engine.hosts.find(&name)?;
                if !host.kinds.is_empty() && !host.kinds.contains(&spec.ai_cli_type) {
                    return Err(Error::invalid(format!(
                        "host `{name}` runs {} (its `kinds` in the hosts file), not `{}`",
                        host.kinds.join(", "),
                        spec.ai_cli_type
                    )));
                }
            }
        }
        adapter.validate(&spec).map_err(Error::invalid)?;
        if let Some(session) = spec.options.session {
            let name = match session {
                crate::spec::SessionKind::Live => "live",
                crate::spec::SessionKind::PerTurn => "per-turn",
            };
            if !adapter.session_modes().contains(&name) {
                return Err(Error::invalid(format!(
                    "`{}` workers take no `session` \"{name}\" (they take: {})",
                    adapter.kind(),
                    match adapter.session_modes() {
                        [] => "none".to_string(),
                        modes => modes.join(", "),
                    }
                )));
            }
        }
        spec.project_path = match &spec.host {
            None => self.local_folder(&spec.project_path)?,
            Some(name) => self.engine.remote_folder(name, &spec.project_path)?,
        };

        let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if !spec.name.is_empty() && self.get(&spec.name).is_some() {
            return Err(Error::conflict(
                ErrorCode::NameTaken,
                format!("a worker named `{}` exists already", spec.name),
            ));
        }
        let stored = self.read().len();
        if stored >= self.config.max_stored_workers {
            return Err(Error::limit(
                ErrorCode::TooManyWorkers,
                format!(
                    "{stored} workers are kept, the limit (--max-stored-workers) is {}; delete some first",
                    self.config.max_stored_workers
                ),
            ));
        }
        let live = self.live_count();
        if live >= self.config.max_workers {
            return Err(Error::limit(
                ErrorCode::TooManyWorkers,
                format!(
                    "{live} workers are running, the limit (--max-workers) is {}; stop or delete one first",
                    self.config.max_workers
                ),
            ));
        }
        if owner.is_some() {
            let mine = self
                .read()
                .iter()
                .filter(|w| w.owner == owner && w.status().is_live())
                .count();
            if mine >= self.config.max_workers_per_token {
                return Err(Error::limit(
                    ErrorCode::TooManyWorkers,
                    format!(
                        "this token has {mine} workers running, its limit (--max-workers-per-token) is {}",
                        self.config.max_workers_per_token
                    ),
                ));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let worktree = self.make_worktree(&mut spec, &id)?;
        let runner = self.engine.git_runner(spec.host.as_deref());
        let worker = Worker::create(
            id,
            spec,
            adapter,
            self.engine.clone(),
            owner,
            worktree.clone(),
        )
        .map_err(|err| {
            if let Some(worktree) = &worktree {
                let _ = crate::worktree::remove(&runner, worktree, false);
            }
            Error::internal(format!("could not create the worker's files: {err}"))
        })?;
        self.write().push(worker.clone());
        drop(_creating);
        worker.start();
        Ok(worker)
    }

    /// Starts a stopped long-running worker's process again. A start counts against
    /// `--max-workers` exactly as a creation does.
    pub fn start(&self, worker: &Arc<Worker>) -> Result<(), Error> {
        let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if !worker.status().is_live() {
            let live = self.live_count();
            if live >= self.config.max_workers {
                return Err(Error::limit(
                    ErrorCode::TooManyWorkers,
                    format!(
                        "{live} workers are running, the limit (--max-workers) is {}; stop one first",
                        self.config.max_workers
                    ),
                ));
            }
        }
        worker.restart()
    }

    /// A new worker's worktree, when it asks for one (`"isolation": "worktree"`): made
    /// from its `project_path`, which then becomes the worktree's folder.
    fn make_worktree(
        &self,
        spec: &mut WorkerSpec,
        id: &str,
    ) -> Result<Option<crate::worktree::Worktree>, Error> {
        if spec.isolation != crate::spec::Isolation::Worktree {
            return Ok(None);
        }
        let runner = self.engine.git_runner(spec.host.as_deref());
        // On a host, git runs there and the worktree is made there, beside the worker's
        // spool (`~/.cache/workerhub/SERVER/worktrees`).
        let base_dir = match &spec.host {
            None => self.config.worktrees_dir.clone(),
            Some(name) => self.engine.remote_worktrees_dir(name)?,
        };
        if spec.host.is_some() && !spec.copy_files.is_empty() {
            return Err(Error::invalid(
                "`copy_files` is for worktrees on this machine: on a host, put what the worktree needs there yourself",
            ));
        }
        let worktree = crate::worktree::create(
            &runner,
            &crate::worktree::NewWorktree {
                project: &spec.project_path,
                base_ref: spec.base_ref.as_deref(),
                copy_files: &spec.copy_files,
                name: &spec.name,
                short_id: &id[..8.min(id.len())],
                base_dir: &base_dir,
            },
        )?;
        spec.project_path = worktree.workdir();
        Ok(Some(worktree))
    }

    /// Stops a worker, tells its viewers, and removes it and its files (and its
    /// worktree, keeping its branch).
    pub fn delete(&self, id_or_name: &str) -> Result<(), Error> {
        self.delete_keeping(id_or_name, true).map(|_| ())
    }

    /// Deletes a worker as `delete` does; its worktree is removed, and its branch too
    /// unless `keep_branch`. Says what became of the worktree.
    pub fn delete_keeping(
        &self,
        id_or_name: &str,
        keep_branch: bool,
    ) -> Result<Option<super::isolation::WorktreeRemoved>, Error> {
        let worker = self.require(id_or_name)?;
        self.write().retain(|w| !Arc::ptr_eq(w, &worker));
        worker.mark_deleted();
        worker.stop();
        worker.announce_deleted();
        worker.abandon_followers("the worker was deleted");
        for subscriber in worker.feed.close() {
            subscriber.feed_closed("worker deleted");
        }
        let removed = worker.remove_worktree(keep_branch);
        worker.remove_files();
        log::info!("worker {} deleted", worker.id);
        Ok(removed)
    }

    /// Stops every worker's process, all at once (server shutdown).
    pub fn stop_all(&self) {
        let workers = self.list();
        let stoppers: Vec<_> = workers
            .into_iter()
            .filter(|w| w.status() != Status::Exited)
            .map(|w| {
                std::thread::spawn(move || {
                    w.stop_for_shutdown();
                })
            })
            .collect();
        for stopper in stoppers {
            let _ = stopper.join();
        }
        for worker in self.list() {
            worker.feed.sync();
        }
    }
}
