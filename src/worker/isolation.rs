//! A worker in a git worktree of its own (`"isolation": "worktree"`): its worktree's
//! state, what it changed (`diff`, and the `diff` event after every turn), and bringing
//! the work back (commit, merge, discard). The git side is `crate::worktree`; this file
//! is where a worker's lock, feed and `worker.json` meet it.
//!
//! git never runs under the worker's lock: a turn's end only asks for a `diff` event
//! (`diff_soon`), which a `diff-…` thread computes and publishes, one per worker at a
//! time, again once if more turns ended meanwhile. Commit, merge and discard take the
//! worktree's own lock (`ops`), one at a time, and are refused while a turn runs (the
//! worktree is the agent's until the turn ends).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde::Serialize;

use super::Worker;
use crate::error::{Error, ErrorCode};
use crate::event::diff::DiffSummary;
use crate::event::{Event, Status};
use crate::worktree::diff::Diff;
use crate::worktree::merge::{Merged, Strategy};
use crate::worktree::{self, GitRunner, Worktree};

/// The worktree of a worker, and what keeps its git operations in order.
pub struct Isolated {
    state: Mutex<Worktree>,
    /// Held by commit, merge, discard and diff: one git operation at a time.
    ops: Mutex<()>,
    /// A `diff` event is being computed (`running`), and another is wanted (`again`).
    refresh: Mutex<(bool, bool)>,
    runner: GitRunner,
    /// The worktree's git folder, asked of git once (its path never changes).
    git_dir: OnceLock<PathBuf>,
}

impl Isolated {
    pub fn new(worktree: Worktree, runner: GitRunner) -> Isolated {
        Isolated {
            state: Mutex::new(worktree),
            ops: Mutex::new(()),
            refresh: Mutex::new((false, false)),
            runner,
            git_dir: OnceLock::new(),
        }
    }

    pub fn get(&self) -> Worktree {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn ops(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What became of a deleted worker's worktree.
#[derive(Clone, Debug, Serialize)]
pub struct WorktreeRemoved {
    pub path: String,
    pub branch: String,
    pub branch_kept: bool,
    /// Why it could not be removed (the worker is deleted all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a commit made.
#[derive(Clone, Debug, Serialize)]
pub struct Committed {
    pub commit: String,
    pub branch: String,
    pub diff: DiffSummary,
}

impl Worker {
    /// Its worktree, or `not_isolated`.
    fn isolated(&self) -> Result<&Isolated, Error> {
        self.worktree.as_ref().ok_or_else(|| {
            Error::conflict(
                ErrorCode::NotIsolated,
                format!(
                    "{} works in its project folder, not in a worktree of its own (create it with \"isolation\": \"worktree\")",
                    self.display_name()
                ),
            )
        })
    }

    /// Its worktree as it is now (None when it has none).
    pub fn worktree(&self) -> Option<Worktree> {
        self.worktree.as_ref().map(Isolated::get)
    }

    /// Where its processes may run is checked against the project roots: for a worker
    /// in a worktree, the repository it was made from.
    pub(super) fn checked_folder(&self) -> std::path::PathBuf {
        match self.worktree() {
            Some(wt) => wt.repository.join(&wt.subdir),
            None => self.spec.project_path.clone(),
        }
    }

    /// Its changes against its base; the unified diff too when `patch`.
    pub fn diff(&self, patch: bool) -> Result<Diff, Error> {
        let isolated = self.isolated()?;
        let _ops = isolated.ops();
        let current = isolated.get();
        let git_dir = match isolated.git_dir.get() {
            Some(dir) => dir,
            None => {
                let dir = worktree::diff::git_dir(&isolated.runner, &current.path)?;
                isolated.git_dir.get_or_init(|| dir)
            }
        };
        worktree::diff::diff(&isolated.runner, &current, git_dir, patch)
    }

    /// Computes its changes and publishes them as a `diff` event, now.
    pub fn publish_diff(&self) -> Result<DiffSummary, Error> {
        let summary = self.diff(false)?.summary;
        let mut st = self.lock();
        if !st.deleted {
            self.publish(&mut st, vec![Event::Diff(summary.clone())]);
        }
        Ok(summary)
    }

    /// Asks for a `diff` event soon (a turn ended): computed on a thread of its own,
    /// never under the worker's lock.
    pub(super) fn diff_soon(&self) {
        let Some(isolated) = &self.worktree else {
            return;
        };
        {
            let mut refresh = isolated.refresh.lock().unwrap_or_else(|p| p.into_inner());
            if refresh.0 {
                refresh.1 = true;
                return;
            }
            *refresh = (true, false);
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let name = format!("diff-{}", &self.id[..8.min(self.id.len())]);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            loop {
                // A worker being deleted stops (its program's end asked for this diff);
                // its worktree is about to go.
                if me.lock().deleted {
                    if let Some(isolated) = &me.worktree {
                        *isolated.refresh.lock().unwrap_or_else(|p| p.into_inner()) =
                            (false, false);
                    }
                    return;
                }
                if let Err(err) = me.publish_diff() {
                    log::warn!("worker {}: no diff: {}", me.id, err.message);
                }
                let Some(isolated) = &me.worktree else { return };
                let mut refresh = isolated.refresh.lock().unwrap_or_else(|p| p.into_inner());
                if !std::mem::take(&mut refresh.1) {
                    refresh.0 = false;
                    return;
                }
            }
        });
        if let Err(err) = spawned {
            log::warn!("worker {}: cannot start a diff thread: {err}", self.id);
            if let Some(isolated) = &self.worktree {
                *isolated.refresh.lock().unwrap_or_else(|p| p.into_inner()) = (false, false);
            }
        }
    }

    /// Refuses while a turn runs: the worktree is the agent's until it ends.
    fn check_not_busy(&self) -> Result<(), Error> {
        let status = self.status();
        if self.has_turns() && matches!(status, Status::Busy | Status::WaitingApproval) {
            return Err(Error::conflict(
                ErrorCode::WorkerBusy,
                format!(
                    "{} {}: wait for its turn to end (or interrupt it)",
                    self.display_name(),
                    status.phrase()
                ),
            ));
        }
        Ok(())
    }

    /// Commits everything in its worktree on its branch.
    pub fn commit(&self, message: Option<&str>) -> Result<Committed, Error> {
        let isolated = self.isolated()?;
        self.check_not_busy()?;
        let message = self.message_or_default(message);
        let commit = {
            let _ops = isolated.ops();
            worktree::merge::commit_all(&isolated.runner, &isolated.get(), &message)?
        };
        let Some(commit) = commit else {
            return Err(Error::conflict(
                ErrorCode::NothingToCommit,
                format!(
                    "{}'s worktree has no changes to commit",
                    self.display_name()
                ),
            ));
        };
        let diff = self.publish_diff()?;
        Ok(Committed {
            commit,
            branch: isolated.get().branch,
            diff,
        })
    }

    /// Merges its branch into `into` (its base branch when None); see
    /// `worktree::merge`.
    pub fn merge(
        &self,
        strategy: Strategy,
        into: Option<&str>,
        message: Option<&str>,
    ) -> Result<Merged, Error> {
        let isolated = self.isolated()?;
        self.check_not_busy()?;
        let message = self.message_or_default(message);
        let merged = {
            let _ops = isolated.ops();
            let mut worktree = isolated.get();
            let merged =
                worktree::merge::merge(&isolated.runner, &mut worktree, strategy, into, &message);
            // A merge that failed may still have committed the worktree's changes.
            *isolated.state.lock().unwrap_or_else(|p| p.into_inner()) = worktree;
            merged?
        };
        self.save();
        if let Err(err) = self.publish_diff() {
            log::warn!(
                "worker {}: no diff after the merge: {}",
                self.id,
                err.message
            );
        }
        Ok(merged)
    }

    /// Throws away every change of its worktree: it is its base again.
    pub fn discard(&self) -> Result<DiffSummary, Error> {
        let isolated = self.isolated()?;
        self.check_not_busy()?;
        {
            let _ops = isolated.ops();
            worktree::merge::discard(&isolated.runner, &isolated.get())?;
        }
        self.publish_diff()
    }

    /// Removes its worktree (the worker is being deleted, its process stopped), and its
    /// branch unless `keep_branch`.
    pub fn remove_worktree(&self, keep_branch: bool) -> Option<WorktreeRemoved> {
        let isolated = self.worktree.as_ref()?;
        let _ops = isolated.ops();
        let worktree = isolated.get();
        let result = worktree::remove(&isolated.runner, &worktree, keep_branch);
        if let Err(err) = &result {
            log::warn!(
                "worker {}: could not remove its worktree {}: {}",
                self.id,
                worktree.path.display(),
                err.message
            );
        }
        Some(WorktreeRemoved {
            path: worktree.path.display().to_string(),
            branch: worktree.branch,
            branch_kept: keep_branch || result.is_err(),
            error: result.err().map(|e| e.message),
        })
    }

    /// The message a client gave, or when it gave none (or a blank one) the default.
    fn message_or_default(&self, message: Option<&str>) -> String {
        if let Some(message) = message.filter(|m| !m.trim().is_empty()) {
            return message.to_string();
        }
        let name = if self.spec.name.is_empty() {
            &self.id[..8.min(self.id.len())]
        } else {
            &self.spec.name
        };
        format!("workerhub: the work of {name}")
    }
}
