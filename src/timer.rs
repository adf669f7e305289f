//! One thread that runs short jobs at given times: close deadlines, turn timeouts,
//! kill escalations, scheduled tasks. Jobs must be quick (a signal, a shutdown, a
//! channel send); anything longer spawns its own thread.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{RecvTimeoutError, Sender, unbounded};

type Job = Box<dyn FnOnce() + Send>;

/// A message for the timer thread.
enum Message {
    At(Instant, Job),
    Stop,
}

struct Entry {
    at: Instant,
    order: u64,
    job: Job,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.order == other.order
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed, so the heap's top is the earliest entry.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .cmp(&self.at)
            .then_with(|| other.order.cmp(&self.order))
    }
}

#[derive(Clone)]
pub struct Timer {
    tx: Sender<Message>,
    /// The thread, joined by `stop` (whichever clone calls it first).
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Timer {
    pub fn start() -> Timer {
        let (tx, rx) = unbounded::<Message>();
        let spawned = std::thread::Builder::new()
            .name("timer".into())
            .spawn(move || {
                let mut heap = BinaryHeap::new();
                let mut order = 0u64;
                loop {
                    let now = Instant::now();
                    while heap.peek().is_some_and(|e: &Entry| e.at <= now) {
                        if let Some(entry) = heap.pop() {
                            // One failing job must not stop every later one (timeouts,
                            // kill escalations, schedules) for good.
                            let ran =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(entry.job));
                            if ran.is_err() {
                                log::error!("a timer job panicked; the timer goes on");
                            }
                        }
                    }
                    let next = match heap.peek() {
                        Some(e) => rx.recv_timeout(e.at.saturating_duration_since(now)),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(Message::At(at, job)) => {
                            order += 1;
                            heap.push(Entry { at, order, job });
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            });
        let thread = match spawned {
            Ok(thread) => Some(thread),
            Err(err) => {
                log::error!("could not start the timer thread: {err}");
                None
            }
        };
        Timer {
            tx,
            thread: Arc::new(Mutex::new(thread)),
        }
    }

    /// Stops the thread (jobs not yet due never run) and waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(Message::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Runs `job` on the timer thread after `delay` (a delay past what an `Instant` can
    /// hold means about never: a century).
    pub fn after(&self, delay: Duration, job: impl FnOnce() + Send + 'static) {
        let now = Instant::now();
        let at = now
            .checked_add(delay)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(now);
        let _ = self.tx.send(Message::At(at, Box::new(job)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_deadline_order() {
        let timer = Timer::start();
        let (tx, rx) = unbounded();
        for (ms, n) in [(60u64, 3), (20, 1), (40, 2)] {
            let tx = tx.clone();
            timer.after(Duration::from_millis(ms), move || {
                let _ = tx.send(n);
            });
        }
        let got: Vec<i32> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(2)).unwrap())
            .collect();
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[test]
    fn a_huge_delay_or_a_panicking_job_does_not_stop_the_timer() {
        let timer = Timer::start();
        timer.after(Duration::MAX, || {});
        timer.after(Duration::from_millis(5), || panic!("job fails"));
        let (tx, rx) = unbounded();
        timer.after(Duration::from_millis(20), move || {
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(Duration::from_secs(2)).is_ok());
    }
}
