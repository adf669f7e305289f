//! Following one turn of a worker: every event of it and how it ended, as types. Used by
//! `command:execute` on an agent and by tasks.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::event::{AgentContent, Content, Event, LastTurn, Outcome, Published, TurnResult};

/// Someone who follows one turn (registered with `Worker::follow`). Called under the
/// worker's lock: it must not call back into the worker.
pub trait TurnFollower: Send + Sync {
    /// An event of the turn, as a type and as published.
    fn event(&self, event: &Event, published: &Arc<Published>);
    /// The turn ended.
    fn ended(&self, turn: &LastTurn);
    /// The worker went away before the turn ended.
    fn abandoned(&self, why: &str);
}

/// How a followed turn ended.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOutcome {
    /// `stopped` too when the worker went away.
    pub outcome: Outcome,
    pub success: bool,
    /// The turn's `result`, if the program reported one.
    pub result: Option<AgentContent>,
    /// The assistant text of the turn (the result's text when there is one).
    pub text: String,
    pub events: usize,
    pub duration_ms: Option<u64>,
}

impl TurnOutcome {
    /// A message given to a program without turns: nothing more will mark its end.
    pub fn delivered() -> TurnOutcome {
        TurnOutcome {
            outcome: Outcome::Completed,
            success: true,
            result: None,
            text: String::new(),
            events: 0,
            duration_ms: None,
        }
    }
}

type OnEvent = Box<dyn Fn(&Arc<Published>) + Send + Sync>;
type OnDone = Box<dyn FnOnce(TurnOutcome) + Send>;

/// Collects a turn's text and result, hands each of its output and error events on,
/// and reports how it ended, once.
pub struct TurnWatch {
    state: Mutex<WatchState>,
    on_event: OnEvent,
    on_done: Mutex<Option<OnDone>>,
}

#[derive(Default)]
struct WatchState {
    text: String,
    result: Option<TurnResult>,
    events: usize,
}

/// The most assistant text kept.
const MAX_TEXT: usize = 1 << 20;

impl TurnWatch {
    pub fn new(
        on_event: impl Fn(&Arc<Published>) + Send + Sync + 'static,
        on_done: impl FnOnce(TurnOutcome) + Send + 'static,
    ) -> Arc<TurnWatch> {
        Arc::new(TurnWatch {
            state: Mutex::new(WatchState::default()),
            on_event: Box::new(on_event),
            on_done: Mutex::new(Some(Box::new(on_done))),
        })
    }

    fn finish(&self, outcome: Outcome, duration_ms: Option<u64>, why: Option<&str>) {
        let Some(on_done) = self
            .on_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let st = std::mem::take(&mut *self.state.lock().unwrap_or_else(|p| p.into_inner()));
        let text = match (why, &st.result) {
            (Some(why), _) => why.to_string(),
            (None, Some(result)) => result
                .result
                .as_ref()
                .and_then(|r| r.as_str())
                .map_or_else(|| st.text.clone(), str::to_string),
            (None, None) => st.text.clone(),
        };
        let failed = st.result.as_ref().is_some_and(|r| r.is_error);
        on_done(TurnOutcome {
            outcome,
            success: outcome == Outcome::Completed && !failed,
            result: st.result.map(|r| AgentContent::Result(Box::new(r))),
            text,
            events: st.events,
            duration_ms,
        });
    }
}

impl TurnFollower for TurnWatch {
    fn event(&self, event: &Event, published: &Arc<Published>) {
        match event {
            Event::Output { content } => {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.events += 1;
                match content {
                    Content::Agent(AgentContent::Text { text, .. }) if st.text.len() < MAX_TEXT => {
                        st.text.push_str(text);
                    }
                    Content::Agent(AgentContent::Result(result)) => {
                        st.result = Some((**result).clone())
                    }
                    _ => {}
                }
            }
            // What the turn asks and how it was answered are part of it (a batch run
            // answers them itself).
            Event::Error(_) | Event::ApprovalRequest(_) | Event::ApprovalResolved(_) => {
                self.state.lock().unwrap_or_else(|p| p.into_inner()).events += 1
            }
            _ => return,
        }
        (self.on_event)(published);
    }

    fn ended(&self, turn: &LastTurn) {
        self.finish(turn.outcome, Some(turn.duration_ms), None);
    }

    fn abandoned(&self, why: &str) {
        self.finish(Outcome::Stopped, None, Some(why));
    }
}
