//! Starting a long-running worker's process again after it ends, as its `restart` policy
//! says (like systemd's `Restart=`): `on-failure` when it failed (an exit code other than
//! 0, or a signal), `always` whatever the exit, never after a stop on purpose. Restarts
//! back off (1 s, 2 s, 4 s, ... at most a minute) and give up after five in a row; a run of
//! a minute or more counts as healthy and starts the count again.

use std::time::{Duration, Instant};

use super::{Worker, WorkerState};
use crate::process::Exit;
use crate::spec::RestartPolicy;

/// Restarts in a row after which they stop.
const LIMIT: u32 = 5;
/// A run at least this long resets the count.
const HEALTHY: Duration = Duration::from_secs(60);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Restarts {
    /// Restarts in a row without a healthy run.
    in_a_row: u32,
    /// When the running process started.
    started: Option<Instant>,
    /// Stopped on purpose (a user, the server shutting down): not restarted.
    stopped: bool,
}

/// What to do after an exit.
enum Decision {
    Leave,
    Restart(Duration),
    GiveUp,
}

impl Restarts {
    pub(super) fn started(&mut self) {
        self.started = Some(Instant::now());
        self.stopped = false;
    }

    pub(super) fn stopped_on_purpose(&mut self) {
        self.stopped = true;
    }

    /// Whether the process was stopped on purpose.
    pub(super) fn was_stopped(&self) -> bool {
        self.stopped
    }

    pub(super) fn reset(&mut self) {
        self.in_a_row = 0;
        self.stopped = false;
    }

    fn decide(&mut self, policy: RestartPolicy, exit: &Exit) -> Decision {
        let wanted = match policy {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure => !exit.success(),
            RestartPolicy::Always => true,
        };
        if !wanted || self.stopped {
            return Decision::Leave;
        }
        if self.started.is_some_and(|at| at.elapsed() >= HEALTHY) {
            self.in_a_row = 0;
        }
        if self.in_a_row >= LIMIT {
            return Decision::GiveUp;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << self.in_a_row.min(16))
            .min(MAX_DELAY);
        self.in_a_row += 1;
        Decision::Restart(delay)
    }
}

impl Worker {
    /// The process of a long-running worker ended: start it again if its policy says so.
    pub(super) fn after_exit(&self, st: &mut WorkerState, exit: &Exit) {
        if st.deleted {
            return;
        }
        match st.restarts.decide(self.spec.restart, exit) {
            Decision::Leave => {}
            Decision::GiveUp => {
                let mut status = self.status_event(st);
                status.reason = Some(format!(
                    "not restarted: it failed {LIMIT} times in a row (restart policy {})",
                    self.spec.restart.as_str()
                ));
                self.publish_status(st, status);
                log::warn!("worker {}: restart limit reached", self.id);
            }
            Decision::Restart(delay) => {
                log::info!(
                    "worker {}: restarting in {:.0}s ({} policy)",
                    self.id,
                    delay.as_secs_f64(),
                    self.spec.restart.as_str()
                );
                let worker = self.me.clone();
                self.engine.timer.after(delay, move || {
                    let Some(worker) = worker.upgrade() else {
                        return;
                    };
                    // Started meanwhile, stopped on purpose or deleted: leave it.
                    let go = {
                        let st = worker.lock();
                        !st.deleted && !st.restarts.stopped && !st.status.is_live()
                    };
                    if go {
                        // A timer job must be quick: a process start is not.
                        let spawned = std::thread::Builder::new()
                            .name("restart".into())
                            .spawn(move || worker.start());
                        if let Err(err) = spawned {
                            log::error!("could not restart a worker: {err}");
                        }
                    }
                });
            }
        }
    }
}

impl RestartPolicy {
    /// Whether a worker that was running when the server went down starts again.
    pub fn after_server_restart(self) -> bool {
        !matches!(self, RestartPolicy::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> Exit {
        Exit {
            code: Some(code),
            signal: None,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn restarts_follow_the_policy_back_off_and_give_up() {
        let mut r = Restarts::default();
        assert!(matches!(
            r.decide(RestartPolicy::No, &exit(1)),
            Decision::Leave
        ));
        assert!(matches!(
            r.decide(RestartPolicy::OnFailure, &exit(0)),
            Decision::Leave
        ));
        let delays: Vec<u64> = (0..LIMIT)
            .map(|_| match r.decide(RestartPolicy::Always, &exit(0)) {
                Decision::Restart(d) => d.as_secs(),
                _ => panic!("expected a restart"),
            })
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16]);
        assert!(matches!(
            r.decide(RestartPolicy::Always, &exit(0)),
            Decision::GiveUp
        ));
        r.reset();
        r.stopped_on_purpose();
        assert!(matches!(
            r.decide(RestartPolicy::Always, &exit(1)),
            Decision::Leave
        ));
    }
}
