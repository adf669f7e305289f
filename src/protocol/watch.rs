//! Following one turn of a worker: from the moment its message starts to the `idle`
//! status that ends it, handing each event on and reporting how it ended. Used by
//! `command:execute` on an agent and by tasks.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::event::Event;
use crate::feed::Subscriber;
use crate::worker::Worker;

/// How a turn ended.
#[derive(Debug, Clone)]
pub struct TurnOutcome {
    /// completed, failed, interrupted, timeout or stopped (`stopped` too when the
    /// worker went away).
    pub outcome: String,
    /// The turn's `result` content, if the program reported one.
    pub result: Option<Value>,
    /// The assistant text of the turn (the result's text when there is one).
    pub text: String,
    pub events: usize,
    pub duration_ms: Option<u64>,
}

impl TurnOutcome {
    pub fn success(&self) -> bool {
        self.outcome == "completed" && !self.result.as_ref().is_some_and(|r| r["is_error"] == true)
    }

    pub fn json(&self) -> Value {
        json!({
            "outcome": self.outcome,
            "success": self.success(),
            "result": self.result,
            "text": self.text,
            "events": self.events,
            "duration_ms": self.duration_ms,
        })
    }
}

type OnEvent = Box<dyn Fn(&Arc<Event>) + Send + Sync>;
type OnDone = Box<dyn FnOnce(TurnOutcome) + Send>;

pub struct TurnWatch {
    id: u64,
    message_id: String,
    state: Mutex<WatchState>,
    on_event: OnEvent,
    on_done: Mutex<Option<OnDone>>,
}

#[derive(Default)]
struct WatchState {
    started: bool,
    done: bool,
    text: String,
    result: Option<Value>,
    events: usize,
}

const MAX_TEXT: usize = 1 << 20;

impl TurnWatch {
    /// Starts following the turn of message `message_id` on `worker` (subscribe before
    /// sending the message, so nothing is missed).
    pub fn start(
        worker: &Worker,
        message_id: &str,
        on_event: impl Fn(&Arc<Event>) + Send + Sync + 'static,
        on_done: impl FnOnce(TurnOutcome) + Send + 'static,
    ) -> Arc<TurnWatch> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
        let watch = Arc::new(TurnWatch {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            message_id: message_id.to_string(),
            state: Mutex::new(WatchState::default()),
            on_event: Box::new(on_event),
            on_done: Mutex::new(Some(Box::new(on_done))),
        });
        worker.feed.subscribe(watch.clone());
        watch
    }

    fn finish(&self, st: &mut WatchState, outcome: String, duration_ms: Option<u64>) {
        st.done = true;
        let text = st
            .result
            .as_ref()
            .and_then(|r| r["result"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| st.text.clone());
        let done = TurnOutcome {
            outcome,
            result: st.result.clone(),
            text,
            events: st.events,
            duration_ms,
        };
        if let Some(on_done) = self
            .on_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            on_done(done);
        }
    }

    /// The worker went away before the turn ended.
    pub fn abandon(&self, why: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.done {
            st.text = why.to_string();
            self.finish(&mut st, "stopped".into(), None);
        }
    }
}

impl Subscriber for TurnWatch {
    fn id(&self) -> u64 {
        self.id
    }

    fn deliver(&self, events: &[Arc<Event>]) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            if st.done {
                break;
            }
            let value = event.to_value();
            let ours = |v: &Value| v.as_str() == Some(self.message_id.as_str());
            match value["type"].as_str() {
                Some("status") if value["status"] == "busy" && ours(&value["message_id"]) => {
                    st.started = true
                }
                Some("status")
                    if value["status"] == "idle" && ours(&value["last_turn"]["message_id"]) =>
                {
                    let outcome = value["last_turn"]["outcome"]
                        .as_str()
                        .unwrap_or("failed")
                        .to_string();
                    let duration = value["last_turn"]["duration_ms"].as_u64();
                    self.finish(&mut st, outcome, duration);
                }
                Some("error") if ours(&value["message_id"]) => {
                    st.events += 1;
                    (self.on_event)(event);
                }
                Some("output") if st.started => {
                    st.events += 1;
                    let content = &value["content"];
                    match content["kind"].as_str() {
                        Some("text") if st.text.len() < MAX_TEXT => {
                            st.text.push_str(content["text"].as_str().unwrap_or(""));
                        }
                        Some("result") => st.result = Some(content.clone()),
                        _ => {}
                    }
                    (self.on_event)(event);
                }
                _ => {}
            }
        }
        !st.done
    }

    fn feed_closed(&self, reason: &str) {
        self.abandon(reason);
    }
}
