//! approval-cli: a stand-in for Claude Code that times workerhub's approval path
//! (`workerhub-bench supervision approvals`, docs/BENCHMARKS.md). It is not product code
//! and nothing in workerhub uses it.
//!
//! It speaks just enough of Claude Code's live stream-json session for workerhub to run
//! it as a `claude` worker (`--claude-binary`): `--version` prints a version; with
//! `--input-format stream-json` it reads one JSON object a line on stdin, answers every
//! control request (`initialize`, `interrupt`) with a success, and for each user message
//! `asks=K`:
//!
//! 1. prints a `system` `init` line;
//! 2. K times, one after another: prints a `can_use_tool` control request whose `input`
//!    carries `sent_ns`, its CLOCK_MONOTONIC time just before the write, and waits for
//!    the `control_response` to it; the client that denies it puts its own
//!    CLOCK_MONOTONIC time at sending in the deny message (`answered_ns=N`), so the time
//!    from the client's answer to this process reading it is the read time minus N;
//! 3. ends the turn with a `result` line whose `result` is
//!    `{"answer_ns": [...], "unstamped": U}`: those times, and how many answers carried
//!    no stamp (an allow, or a deny by someone else).
//!
//! Both ends run on the same machine, so their CLOCK_MONOTONIC readings are comparable.
//! Anything else on stdin is ignored. Without `--input-format` (a per-turn run) it says
//! that it only runs live sessions, and fails.

use std::io::{self, BufRead, Write};

use serde_json::{Value, json};

/// CLOCK_MONOTONIC in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes to the local, initialized timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The prefix of the stamp a client puts in its deny message.
const STAMP: &str = "answered_ns=";

struct Session<R, W> {
    input: R,
    out: W,
    session_id: String,
    /// Requests sent so far (their ids stay unique over the session).
    asked: u64,
}

impl<R: BufRead, W: Write> Session<R, W> {
    fn emit(&mut self, value: &Value) -> io::Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()
    }

    /// The next line that is a JSON object, and the time it was read; None at the end
    /// of stdin.
    fn next(&mut self) -> io::Result<Option<(Value, u64)>> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.input.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let read_ns = monotonic_ns();
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(line.trim()) {
                return Ok(Some((v, read_ns)));
            }
        }
    }

    /// Answers a control request of the server's (initialize, interrupt): success.
    fn answer_control(&mut self, request: &Value) -> io::Result<()> {
        let id = request["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.emit(&json!({
            "type": "control_response",
            "response": {"subtype": "success", "request_id": id, "response": {}},
        }))
    }

    fn run(&mut self) -> io::Result<()> {
        while let Some((msg, _)) = self.next()? {
            match msg["type"].as_str() {
                Some("control_request") => self.answer_control(&msg)?,
                Some("user") => {
                    let content = &msg["message"]["content"];
                    let text = content
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| content[0]["text"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    if !self.turn(&text)? {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One turn; false when stdin ended in the middle of it.
    fn turn(&mut self, text: &str) -> io::Result<bool> {
        let asks: u64 = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("asks=")?.parse().ok())
            .unwrap_or(1);
        let started = monotonic_ns();
        self.emit(&json!({
            "type": "system", "subtype": "init", "session_id": self.session_id,
            "model": "approval-cli", "tools": ["Bash"],
        }))?;
        let mut answer_ns: Vec<u64> = Vec::with_capacity(asks as usize);
        let mut unstamped = 0u64;
        for _ in 0..asks {
            self.asked += 1;
            let id = format!("approval-cli-{}", self.asked);
            let sent_ns = monotonic_ns();
            self.emit(&json!({
                "type": "control_request",
                "request_id": id,
                "request": {
                    "subtype": "can_use_tool",
                    "tool_name": "Bash",
                    "input": {"command": "true", "sent_ns": sent_ns},
                    "tool_use_id": format!("toolu_{}", self.asked),
                },
            }))?;
            // Wait for its answer, answering the server's own requests meanwhile.
            loop {
                let Some((msg, read_ns)) = self.next()? else {
                    return Ok(false);
                };
                match msg["type"].as_str() {
                    Some("control_request") => self.answer_control(&msg)?,
                    Some("control_response")
                        if msg["response"]["request_id"].as_str() == Some(id.as_str()) =>
                    {
                        let stamp = msg["response"]["response"]["message"]
                            .as_str()
                            .and_then(|m| m.trim().strip_prefix(STAMP))
                            .and_then(|n| n.parse::<u64>().ok());
                        match stamp {
                            Some(t) => answer_ns.push(read_ns.saturating_sub(t)),
                            None => unstamped += 1,
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
        self.emit(&json!({
            "type": "result",
            "subtype": "success",
            "is_error": false,
            "result": {"answer_ns": answer_ns, "unstamped": unstamped},
            "session_id": self.session_id,
            "num_turns": 1,
            "duration_ms": (monotonic_ns() - started) / 1_000_000,
            "total_cost_usd": 0,
        }))?;
        Ok(true)
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("1.0.0 (approval-cli)");
        return std::process::ExitCode::SUCCESS;
    }
    let session_id = args
        .iter()
        .position(|a| a == "--resume")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| format!("approval-cli-{}", std::process::id()));
    if !args.iter().any(|a| a == "--input-format") {
        println!(
            "{}",
            json!({"type": "result", "subtype": "error_during_execution", "is_error": true,
                   "result": "approval-cli only runs live sessions (--input-format stream-json)",
                   "session_id": session_id})
        );
        return std::process::ExitCode::from(2);
    }
    let stdin = io::stdin();
    let mut session = Session {
        input: stdin.lock(),
        out: io::stdout().lock(),
        session_id,
        asked: 0,
    };
    match session.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("approval-cli: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
