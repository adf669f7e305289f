//! Tool approvals on a worker. When its program asks to use a tool, the worker's policy
//! decides what it can (`approval::ApprovalPolicy`); the rest becomes an
//! `approval_request` event, the worker is `waiting_approval`, and the first answer
//! from anyone who may drive the worker wins: the program gets it on its stdin, every
//! viewer sees one `approval_resolved`, and a later answer is told who won
//! (`already_decided`). A request the program withdraws, or that outlives its turn or
//! its process, is resolved too, so nothing waits forever.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Status, Worker, WorkerState};
use crate::adapters::{Ask, approval_policy};
use crate::approval::{Answer, Rule, summarize};
use crate::error::{Error, ErrorCode};
use crate::event::{
    ApprovalOption, ApprovalRequest, ApprovalResolved, Decision, Event, PendingApproval,
};

/// Answered requests remembered, to tell a late answer who won.
const REMEMBERED: usize = 200;
/// The most requests that may wait at once on one worker: a program that asks more is
/// denied the rest (nobody answers a thousand cards, and each costs memory).
const MAX_WAITING: usize = 64;

/// A request waiting for an answer.
pub(super) struct Waiting {
    pub request: ApprovalRequest,
    pub ask: Ask,
    /// The process that asked (an answer goes to it, or nowhere).
    pub process: u64,
}

#[derive(Default)]
pub(super) struct Approvals {
    pub waiting: Vec<Waiting>,
    /// Requests already resolved: approval id, how, by whom.
    decided: VecDeque<(String, Decision, String)>,
    /// What `allow_session` answers allowed, for the rest of the session.
    session_rules: Vec<Rule>,
}

impl Approvals {
    pub fn pending(&self) -> Vec<PendingApproval> {
        self.waiting
            .iter()
            .map(|w| PendingApproval {
                approval_id: w.request.approval_id.clone(),
                tool_name: w.request.tool_name.clone(),
                summary: w.request.summary.clone(),
            })
            .collect()
    }

    /// The session's process is gone: its "allow for this session" rules go with it.
    pub fn end_session(&mut self) {
        self.session_rules.clear();
    }

    fn remember(&mut self, id: &str, decision: Decision, by: &str) {
        if self.decided.len() >= REMEMBERED {
            self.decided.pop_front();
        }
        self.decided
            .push_back((id.to_string(), decision, by.to_string()));
    }
}

impl Worker {
    /// The program asked: decide by policy, or publish the request and wait.
    pub(super) fn on_asks(&self, st: &mut WorkerState, process: u64, asks: Vec<Ask>) {
        // The turn's own policy (a task's), else the worker's.
        let own = st.turn.as_ref().and_then(|t| t.message.approval.clone());
        // A turn with its own policy (a task's) is decided by it alone: what someone
        // allowed for the session before does not carry into an unattended turn.
        let by_session_rules = own.is_none();
        let policy = own.unwrap_or_else(|| approval_policy(self.adapter.as_ref(), &self.spec));
        for ask in asks {
            let session_rules: &[Rule] = if by_session_rules {
                &st.approvals.session_rules
            } else {
                &[]
            };
            let mut verdict = policy.decide(session_rules, &ask.tool_name, &ask.input);
            if verdict.is_none() && st.approvals.waiting.len() >= MAX_WAITING {
                verdict = Some(crate::approval::Verdict {
                    decision: Decision::Deny,
                    by: crate::approval::Decider::Limit,
                    message: Some(format!(
                        "{MAX_WAITING} requests already wait for an answer; this one was denied"
                    )),
                });
            }
            // Allowed with no one asked (auto): the program just goes on.
            if let Some(v) = &verdict
                && v.by == crate::approval::Decider::Auto
            {
                self.write_answer(st, process, &ask, &answer(Decision::Allow, None));
                continue;
            }
            let request = self.request_for(st, &ask);
            let approval_id = request.approval_id.clone();
            self.publish(st, vec![Event::ApprovalRequest(request.clone())]);
            st.approvals.waiting.push(Waiting {
                request,
                ask,
                process,
            });
            match verdict {
                Some(v) => {
                    let index = st.approvals.waiting.len() - 1;
                    let answer = answer(v.decision, v.message);
                    self.resolve(st, index, &answer, v.by.as_str(), true);
                }
                None => {
                    self.arm_approval_timeout(&approval_id);
                    self.waiting_changed(st);
                }
            }
        }
    }

    /// The program withdrew requests (by its own ids, which only mean something for the
    /// process that asked).
    pub(super) fn on_withdrawn(&self, st: &mut WorkerState, process: u64, keys: &[String]) {
        for key in keys {
            if let Some(index) = st
                .approvals
                .waiting
                .iter()
                .position(|w| &w.ask.key == key && w.process == process)
            {
                let answer = answer(
                    Decision::Cancelled,
                    Some("the program withdrew its request".into()),
                );
                self.resolve(st, index, &answer, "the program", false);
            }
        }
    }

    /// Ends every waiting request that nobody answered: denied or cancelled by an
    /// interrupt or a stop (the program is told: `tell`), cancelled because its turn or
    /// process ended, or expired.
    pub(super) fn end_approvals(
        &self,
        st: &mut WorkerState,
        decision: Decision,
        by: &str,
        why: &str,
        tell: bool,
    ) {
        while !st.approvals.waiting.is_empty() {
            self.resolve(st, 0, &answer(decision, Some(why.to_string())), by, tell);
        }
    }

    /// Answers request `approval_id` (or the start of it) for `by`: the first answer
    /// wins.
    pub fn answer_approval(
        &self,
        approval_id: &str,
        answer: Answer,
        by: &str,
    ) -> Result<ApprovalResolved, Error> {
        if !answer.decision.is_answer() {
            return Err(Error::invalid(
                "`decision` must be \"allow\", \"allow_session\" or \"deny\"",
            ));
        }
        let mut st = self.lock();
        let found = st
            .approvals
            .waiting
            .iter()
            .position(|w| w.request.approval_id == approval_id);
        let index = match found {
            Some(index) => Some(index),
            None => {
                let ids: Vec<(usize, String)> = st
                    .approvals
                    .waiting
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (i, w.request.approval_id.clone()))
                    .collect();
                crate::spec::unique_prefix(
                    ids,
                    approval_id,
                    |(_, id)| id.as_str(),
                    |(_, id)| id.clone(),
                    "approvals",
                )?
                .map(|(i, _)| i)
            }
        };
        let Some(index) = index else {
            let decided = st.approvals.decided.iter().find(|(id, _, _)| {
                id == approval_id || (approval_id.len() >= 4 && id.starts_with(approval_id))
            });
            return Err(match decided {
                Some((_, decision, who)) => Error::conflict(
                    ErrorCode::AlreadyDecided,
                    format!(
                        "approval {approval_id} was already decided: {} by {who}",
                        decision.as_str()
                    ),
                ),
                None => Error::not_found(format!(
                    "{} has no approval `{approval_id}` waiting",
                    self.display_name()
                )),
            });
        };
        check_answer(&st.approvals.waiting[index].ask, &answer)?;
        let resolved = self.resolve(&mut st, index, &answer, by, true);
        Ok(resolved)
    }

    /// Requests that waited when the server went down: the program that asked is gone,
    /// so they expire, and their turns failed; the next message resumes the session.
    pub(super) fn expire_after_restart(&self, expired: Vec<ApprovalRequest>) {
        let mut st = self.lock();
        for request in expired {
            let resolved = ApprovalResolved {
                approval_id: request.approval_id.clone(),
                decision: Decision::Expired,
                by: "server restart".into(),
                message: Some(
                    "the server restarted while this waited; the program that asked is gone".into(),
                ),
                tool_name: Some(request.tool_name.clone()),
            };
            st.approvals
                .remember(&resolved.approval_id, Decision::Expired, "server restart");
            let mut failed = crate::event::ErrorEvent::new(
                ErrorCode::TurnFailed,
                "the turn waited for an approval when the server restarted, and ended there; send a message to go on (the session resumes)",
            );
            failed.message_id = request.message_id.clone();
            self.publish(
                &mut st,
                vec![Event::ApprovalResolved(resolved), Event::Error(failed)],
            );
        }
    }

    /// What waited when the server died: the history is the record (every request and
    /// resolution is an event; `worker.json` is saved lazily); requests `worker.json`
    /// lists that the history's tail no longer shows count too, unless resolved there.
    pub(super) fn waiting_at_restart(
        feed: &crate::feed::Feed,
        saved: Vec<ApprovalRequest>,
    ) -> Vec<ApprovalRequest> {
        let (mut open, resolved) = Worker::unanswered_in_history(feed);
        for request in saved {
            let known = open.iter().any(|r| r.approval_id == request.approval_id)
                || resolved.contains(&request.approval_id);
            if !known {
                open.push(request);
            }
        }
        open
    }

    /// The requests of the history's tail that were never resolved, and the ids of
    /// those that were.
    fn unanswered_in_history(
        feed: &crate::feed::Feed,
    ) -> (Vec<ApprovalRequest>, std::collections::HashSet<String>) {
        const TAIL: u64 = 2000;
        let page = feed.page(
            feed.last_seq().saturating_sub(TAIL),
            TAIL as usize,
            16 << 20,
        );
        let mut open: Vec<ApprovalRequest> = Vec::new();
        let mut resolved_ids = std::collections::HashSet::new();
        for published in &page.events {
            match serde_json::from_slice::<Event>(published.json()) {
                Ok(Event::ApprovalRequest(request)) => open.push(request),
                Ok(Event::ApprovalResolved(resolved)) => {
                    open.retain(|r| r.approval_id != resolved.approval_id);
                    resolved_ids.insert(resolved.approval_id);
                }
                _ => {}
            }
        }
        (open, resolved_ids)
    }

    /// How many requests wait for an answer.
    pub fn pending_count(&self) -> usize {
        self.lock().approvals.waiting.len()
    }

    /// The requests waiting for an answer, whole.
    pub fn pending_approvals(&self) -> Vec<ApprovalRequest> {
        self.lock()
            .approvals
            .waiting
            .iter()
            .map(|w| w.request.clone())
            .collect()
    }

    /// Resolves waiting request `index`: tells the program (when `tell`), publishes
    /// `approval_resolved`, and puts the worker back to work when nothing else waits.
    fn resolve(
        &self,
        st: &mut WorkerState,
        index: usize,
        answer: &Answer,
        by: &str,
        tell: bool,
    ) -> ApprovalResolved {
        let waiting = st.approvals.waiting.remove(index);
        if tell {
            self.write_answer(st, waiting.process, &waiting.ask, answer);
        }
        if answer.decision == Decision::AllowSession {
            let rule = waiting
                .ask
                .session_rule
                .as_deref()
                .and_then(|r| Rule::parse(r).ok())
                .unwrap_or_else(|| exact_rule(&waiting.ask));
            // The same rule twice would only be matched twice, at every later ask.
            if !st.approvals.session_rules.contains(&rule) {
                st.approvals.session_rules.push(rule);
            }
        }
        let resolved = ApprovalResolved {
            approval_id: waiting.request.approval_id.clone(),
            decision: answer.decision,
            by: by.to_string(),
            message: answer.message.clone(),
            tool_name: Some(waiting.request.tool_name.clone()),
        };
        st.approvals
            .remember(&resolved.approval_id, resolved.decision, by);
        self.publish(st, vec![Event::ApprovalResolved(resolved.clone())]);
        self.waiting_changed(st);
        resolved
    }

    /// Writes an answer to the process that asked, if it still runs.
    fn write_answer(&self, st: &mut WorkerState, process: u64, ask: &Ask, answer: &Answer) {
        let own = match st.parser.as_mut().filter(|(id, _)| *id == process) {
            Some((_, parser)) => parser.answer(ask, answer),
            None => None,
        };
        let bytes = own.unwrap_or_else(|| self.adapter.answer_approval(ask, answer));
        if bytes.is_empty() {
            return;
        }
        match st.process.as_ref().filter(|p| p.id == process) {
            Some(p) => {
                if let Err(err) = p.write_stdin(bytes) {
                    log::warn!(
                        "worker {}: could not give the program its approval answer: {err:?}",
                        self.id
                    );
                }
            }
            None => log::info!(
                "worker {}: the process that asked is gone; the answer goes nowhere",
                self.id
            ),
        }
    }

    /// `busy` and `waiting_approval` follow the waiting requests.
    fn waiting_changed(&self, st: &mut WorkerState) {
        let want = match (st.status, st.approvals.waiting.is_empty()) {
            (Status::Busy, false) => Status::WaitingApproval,
            (Status::WaitingApproval, true) => Status::Busy,
            (Status::WaitingApproval, false) => Status::WaitingApproval,
            _ => return,
        };
        if let Some(turn) = st.turn.as_mut() {
            match (want, turn.waiting_since) {
                (Status::WaitingApproval, None) => {
                    turn.waiting_since = Some(std::time::Instant::now());
                }
                (Status::Busy, Some(since)) => {
                    turn.waited += since.elapsed();
                    turn.waiting_since = None;
                }
                _ => {}
            }
        }
        st.status = want;
        let status = self.status_event(st);
        self.publish_status(st, status);
    }

    /// The request an ask becomes.
    fn request_for(&self, st: &WorkerState, ask: &Ask) -> ApprovalRequest {
        let (summary, diff) = match &ask.summary {
            Some(summary) => (summary.clone(), ask.diff.clone()),
            None => summarize(&ask.tool_name, &ask.input),
        };
        // Status events list every waiting summary: each is kept short. A diff is for
        // reading: past 256 KiB it is cut (the program's own request keeps it whole).
        let summary = crate::approval::shorten(&summary, 300);
        let diff = diff.map(|d| crate::approval::shorten(&d, 256 << 10));
        let session_rule = ask
            .session_rule
            .clone()
            .unwrap_or_else(|| exact_rule(ask).to_string());
        ApprovalRequest {
            approval_id: uuid::Uuid::new_v4().to_string(),
            tool_name: ask.tool_name.clone(),
            input: ask.input.clone(),
            summary,
            diff,
            options: vec![
                ApprovalOption {
                    decision: Decision::Allow,
                    label: "Allow once".into(),
                    rule: None,
                },
                ApprovalOption {
                    decision: Decision::AllowSession,
                    label: "Allow for this session".into(),
                    rule: Some(session_rule),
                },
                ApprovalOption {
                    decision: Decision::Deny,
                    label: "Deny".into(),
                    rule: None,
                },
            ],
            message_id: st.turn.as_ref().map(|t| t.message.id.clone()),
            tool_use_id: ask.tool_use_id.clone(),
            reason: ask.reason.clone(),
        }
    }

    /// Denies a request nobody answered within `--approval-timeout`.
    fn arm_approval_timeout(&self, approval_id: &str) {
        let Some(limit) = self.engine.approval_timeout else {
            return;
        };
        let worker = self.me.clone();
        let id = approval_id.to_string();
        self.engine.timer.after(limit, move || {
            let Some(worker) = worker.upgrade() else {
                return;
            };
            let mut st = worker.lock();
            if let Some(index) = st
                .approvals
                .waiting
                .iter()
                .position(|w| w.request.approval_id == id)
            {
                let message = format!(
                    "nobody answered within {} (--approval-timeout)",
                    seconds(limit)
                );
                worker.resolve(
                    &mut st,
                    index,
                    &answer(Decision::Deny, Some(message)),
                    "timeout",
                    true,
                );
            }
        });
    }
}

/// Refuses an answer the program could not take as meant: an input to run instead
/// where the protocol carries none, or an option the program did not offer or that says
/// the opposite of the decision.
fn check_answer(ask: &Ask, answer: &Answer) -> Result<(), Error> {
    if answer.updated_input.is_some() && !ask.takes_new_input {
        return Err(Error::invalid(
            "this program cannot be given another input to run (`updated_input`): allow or deny the call as it is",
        ));
    }
    let Some(option) = &answer.option_id else {
        return Ok(());
    };
    let offered = ask.extra["options"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let kind = offered
        .iter()
        .find(|o| o["optionId"].as_str() == Some(option.as_str()))
        .and_then(|o| o["kind"].as_str());
    let consistent = match (kind, answer.decision) {
        (Some(kind), Decision::Allow | Decision::AllowSession) => kind.starts_with("allow"),
        (Some(kind), Decision::Deny) => kind.starts_with("reject"),
        _ => false,
    };
    if consistent {
        return Ok(());
    }
    let ids: Vec<&str> = offered
        .iter()
        .filter_map(|o| o["optionId"].as_str())
        .collect();
    Err(Error::invalid(match kind {
        None if ids.is_empty() => {
            "this program offers no options of its own: answer with `decision` alone".to_string()
        }
        None => format!(
            "`option_id` {option:?} is not one of the program's options ({})",
            ids.join(", ")
        ),
        Some(kind) => format!(
            "`option_id` {option:?} is a `{kind}` option, which contradicts the decision `{}`",
            answer.decision.as_str()
        ),
    }))
}

fn answer(decision: Decision, message: Option<String>) -> Answer {
    Answer {
        decision,
        message,
        updated_input: None,
        option_id: None,
    }
}

/// A rule for exactly this call: the tool and what it acts on.
fn exact_rule(ask: &Ask) -> Rule {
    Rule::exactly(&ask.tool_name, crate::approval::subject(&ask.input))
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs())
}
