//! The hub: every worker of this server, by id and by name, and the rules for creating
//! and removing them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::{Engine, Status, Worker, WorkerSpec};
use crate::adapters::Registry;
use crate::error::ApiError;

pub struct HubConfig {
    pub max_workers: usize,
    /// Most live workers created with one token.
    pub max_workers_per_token: usize,
    /// Folders workers may run in (canonical); anywhere when empty.
    pub project_roots: Vec<PathBuf>,
    /// Relative `project_path`s are taken from here.
    pub base_dir: PathBuf,
    pub default_kind: String,
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

    /// Loads every worker saved under the data folder.
    pub fn restore(&self) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.engine.workers_dir) else {
            return 0;
        };
        let mut restored = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            if !path.join("worker.json").is_file() {
                continue;
            }
            match Worker::restore(&path, self.engine.clone(), |kind| self.registry.get(kind)) {
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

    /// A worker by id, or else by name.
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

    pub fn require(&self, id_or_name: &str) -> Result<Arc<Worker>, ApiError> {
        self.get(id_or_name)
            .ok_or_else(|| ApiError::not_found(format!("no worker `{id_or_name}`")))
    }

    pub fn live_count(&self) -> usize {
        self.read().iter().filter(|w| w.status().is_live()).count()
    }

    /// Refuses a folder outside the configured project roots (after resolving symlinks).
    pub fn check_root(&self, canonical: &std::path::Path) -> Result<(), ApiError> {
        let roots = &self.config.project_roots;
        if roots.is_empty() || roots.iter().any(|root| canonical.starts_with(root)) {
            return Ok(());
        }
        Err(ApiError::new(
            403,
            "forbidden_path",
            format!(
                "{} is outside the allowed project roots (--project-root)",
                canonical.display()
            ),
        ))
    }

    /// Creates and starts a worker from a create request made with token `owner`.
    pub fn create(&self, body: &Value, owner: Option<usize>) -> Result<Arc<Worker>, ApiError> {
        let mut spec =
            WorkerSpec::from_json(body, &self.config.default_kind, &self.config.base_dir)?;
        let adapter = self.registry.get(&spec.ai_cli_type).ok_or_else(|| {
            let kinds: Vec<&str> = self.registry.kinds().map(|a| a.kind()).collect();
            ApiError::bad_request(format!(
                "unknown `ai_cli_type` `{}`; this server offers: {}",
                spec.ai_cli_type,
                kinds.join(", ")
            ))
        })?;
        self.registry.check_usable(adapter.as_ref())?;
        adapter.validate(&spec).map_err(ApiError::bad_request)?;
        let shown = spec.project_path.display().to_string();
        spec.project_path = spec.project_path.canonicalize().map_err(|err| {
            ApiError::bad_request(format!("`project_path` {shown} cannot be used: {err}"))
        })?;
        if !spec.project_path.is_dir() {
            return Err(ApiError::bad_request(format!(
                "`project_path` {shown} is not a directory"
            )));
        }

        let _creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if !spec.name.is_empty() && self.get(&spec.name).is_some() {
            return Err(ApiError::conflict(
                "name_taken",
                format!("a worker named `{}` exists already", spec.name),
            ));
        }
        let live = self.live_count();
        if live >= self.config.max_workers {
            return Err(ApiError::new(
                429,
                "too_many_workers",
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
                return Err(ApiError::new(
                    429,
                    "too_many_workers",
                    format!(
                        "this token has {mine} workers running, its limit (--max-workers-per-token) is {}",
                        self.config.max_workers_per_token
                    ),
                ));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let worker =
            Worker::create(id, spec, adapter, self.engine.clone(), owner).map_err(|err| {
                ApiError::internal(format!("could not create the worker's files: {err}"))
            })?;
        self.write().push(worker.clone());
        drop(_creating);
        worker.start();
        Ok(worker)
    }

    /// Stops a worker, tells its viewers, and removes it and its files.
    pub fn delete(&self, id_or_name: &str) -> Result<(), ApiError> {
        let worker = self.require(id_or_name)?;
        self.write().retain(|w| !Arc::ptr_eq(w, &worker));
        worker.mark_deleted();
        worker.stop();
        for subscriber in worker.feed.close() {
            subscriber.feed_closed("worker deleted");
        }
        worker.remove_files();
        log::info!("worker {} deleted", worker.id);
        Ok(())
    }

    /// Stops every worker's process, all at once (server shutdown).
    pub fn stop_all(&self) {
        let workers = self.list();
        let stoppers: Vec<_> = workers
            .into_iter()
            .filter(|w| w.status() != Status::Exited)
            .map(|w| {
                std::thread::spawn(move || {
                    w.stop();
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
