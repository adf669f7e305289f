//! Drives the four real AI CLIs (installed with `npm install --prefix tests/clis`)
//! fully offline against the mock model API in `support::mock_llm`, and checks their
//! JSON-lines output: a plain answer, a turn where the CLI really runs a shell
//! command the mock asks for, a resumed second turn, an API error and an
//! interrupted (SIGINT) hanging turn. Claude Code is also driven in its
//! long-running `--input-format stream-json` mode.
//!
//! A CLI that is not installed is skipped with one printed line.
//!
//! With `WORKERHUB_CAPTURE_FIXTURES=1` the tests also write what the CLIs printed
//! to `tests/fixtures/CLI/NAME.jsonl`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::mock_llm::{Behaviour, GEMINI_MODEL, MockLlm, cli_path};
use support::{CliProcess, RunOutput, TempDir, parse_json_lines};

/// The longest a single CLI run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// The shell command the mock asks every CLI to run.
const TOOL_COMMAND: &str = "echo hello-from-tool > proof.txt; cat proof.txt";
const TOOL_OUTPUT: &str = "hello-from-tool";

const PLAIN_PROMPT: &str = "Say hello (plain-marker)";
const PLAIN_ANSWER: &str = "Hello from the mock model.";
const TOOL_PROMPT: &str = "Create the proof file (tool-marker)";
const TOOL_THINKING: &str = "The user wants the proof file; I will run the command.";
const TOOL_FINAL: &str = "The command printed: {tool_output}";
const RESUME_PROMPT: &str = "What did the command print? (resume-marker)";
const RESUME_ANSWER: &str = "It printed hello-from-tool, as before.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cli {
    Claude,
    Codex,
    Gemini,
    OpenCode,
}

impl Cli {
    fn name(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
            Cli::OpenCode => "opencode",
        }
    }

    /// The arguments for one headless turn, continuing `session` if given.
    fn args(self, prompt: &str, session: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        match self {
            Cli::Claude => {
                push(&["-p", prompt, "--output-format", "stream-json", "--verbose"]);
                push(&["--allowedTools", "Bash"]);
                if let Some(id) = session {
                    push(&["--resume", id]);
                }
            }
            Cli::Codex => {
                push(&["exec", "--json", "--skip-git-repo-check"]);
                if let Some(id) = session {
                    push(&["resume", id]);
                }
                push(&[prompt]);
            }
            Cli::Gemini => {
                push(&["-m", GEMINI_MODEL, "-p", prompt]);
                push(&["--output-format", "stream-json", "--approval-mode", "yolo"]);
                if let Some(id) = session {
                    push(&["--resume", id]);
                }
            }
            Cli::OpenCode => {
                push(&["run", "--format", "json"]);
                if let Some(id) = session {
                    push(&["--session", id]);
                }
                push(&[prompt]);
            }
        }
        args
    }

    /// The session id in the CLI's JSON lines.
    fn session_id(self, lines: &[Value]) -> Option<String> {
        let field =
            |line: &Value, key: &str| line.get(key).and_then(Value::as_str).map(String::from);
        lines.iter().find_map(|line| match self {
            Cli::Claude => field(line, "session_id"),
            Cli::Codex => (line["type"] == "thread.started")
                .then(|| field(line, "thread_id"))
                .flatten(),
            Cli::Gemini => (line["type"] == "init")
                .then(|| field(line, "session_id"))
                .flatten(),
            Cli::OpenCode => field(line, "sessionID"),
        })
    }

    /// The assistant text of the turn (all text pieces joined).
    fn answer_text(self, lines: &[Value]) -> String {
        let mut text = String::new();
        for line in lines {
            match self {
                Cli::Claude => {
                    if line["type"] == "result"
                        && let Some(result) = line["result"].as_str()
                    {
                        text.push_str(result);
                    }
                }
                Cli::Codex => {
                    if line["type"] == "item.completed"
                        && line["item"]["type"] == "agent_message"
                        && let Some(piece) = line["item"]["text"].as_str()
                    {
                        text.push_str(piece);
                    }
                }
                Cli::Gemini => {
                    if line["type"] == "message"
                        && line["role"] == "assistant"
                        && let Some(piece) = line["content"].as_str()
                    {
                        text.push_str(piece);
                    }
                }
                Cli::OpenCode => {
                    if line["type"] == "text"
                        && let Some(piece) = line["part"]["text"].as_str()
                    {
                        text.push_str(piece);
                    }
                }
            }
        }
        text
    }

    /// The output of the shell tool as the CLI reported it.
    fn tool_output(self, lines: &[Value]) -> Option<String> {
        lines.iter().find_map(|line| {
            let text = match self {
                Cli::Claude => {
                    if line["type"] != "user" {
                        return None;
                    }
                    line["message"]["content"]
                        .as_array()?
                        .iter()
                        .find(|block| block["type"] == "tool_result")?["content"]
                        .clone()
                }
                Cli::Codex => {
                    if line["type"] != "item.completed"
                        || line["item"]["type"] != "command_execution"
                    {
                        return None;
                    }
                    line["item"]["aggregated_output"].clone()
                }
                Cli::Gemini => {
                    if line["type"] != "tool_result" {
                        return None;
                    }
                    line["output"].clone()
                }
                Cli::OpenCode => {
                    if line["type"] != "tool_use" {
                        return None;
                    }
                    line["part"]["state"]["output"].clone()
                }
            };
            match text {
                Value::String(s) => Some(s),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        })
    }
}

/// One test's isolated world: a temp folder with `home/` and `project/`, a mock,
/// and the CLI's environment.
struct Case {
    cli: Cli,
    program: PathBuf,
    mock: MockLlm,
    env: Vec<(String, String)>,
    home: PathBuf,
    project: PathBuf,
    _tmp: TempDir,
}

impl Case {
    /// `None` (after printing why) if the CLI is not installed.
    fn new(cli: Cli, behaviour: Behaviour) -> Option<Case> {
        let Some(program) = cli_path(cli.name()) else {
            println!(
                "SKIP: {} is not installed (run `npm install --prefix tests/clis`)",
                cli.name()
            );
            return None;
        };
        let tmp = TempDir::new(cli.name()).expect("create temp dir");
        let home = tmp.subdir("home").expect("create home");
        let project = tmp.subdir("project").expect("create project");
        let mock = MockLlm::start(behaviour).expect("start mock");
        let env = match cli {
            Cli::Claude => mock.claude_env(&home),
            Cli::Codex => mock.codex_env(&home),
            Cli::Gemini => mock.gemini_env(&home),
            Cli::OpenCode => mock.opencode_env(&home, &project),
        }
        .expect("prepare CLI environment");
        Some(Case {
            cli,
            program,
            mock,
            env,
            home,
            project,
            _tmp: tmp,
        })
    }

    fn spawn(&self, args: &[String], pipe_stdin: bool) -> CliProcess {
        CliProcess::spawn(&self.program, args, &self.project, &self.env, pipe_stdin)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()))
    }

    /// Runs one headless turn and returns its output (killed after RUN_TIMEOUT).
    fn turn(&self, prompt: &str, session: Option<&str>) -> RunOutput {
        let output = self
            .spawn(&self.cli.args(prompt, session), false)
            .finish(RUN_TIMEOUT);
        assert!(
            !output.timed_out,
            "{} did not finish within {RUN_TIMEOUT:?}\n{}",
            self.cli.name(),
            output.describe()
        );
        output
    }

    fn report(&self, what: &str, output: &RunOutput) {
        let last_line = output.line_times.last().copied().unwrap_or_default();
        println!(
            "TIMING {} {what}: {:.2}s (exit {:?}, last stdout line at {:.2}s)",
            self.cli.name(),
            output.elapsed.as_secs_f64(),
            output.status,
            last_line.as_secs_f64()
        );
    }

    fn capture(&self, name: &str, output: &RunOutput) {
        capture(self.cli.name(), name, &output.stdout());
    }
}

/// Writes `tests/fixtures/CLI/NAME.jsonl` when WORKERHUB_CAPTURE_FIXTURES is set.
fn capture(cli: &str, name: &str, contents: &str) {
    if std::env::var_os("WORKERHUB_CAPTURE_FIXTURES").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(cli);
    fs::create_dir_all(&dir).expect("create fixture dir");
    fs::write(dir.join(format!("{name}.jsonl")), contents).expect("write fixture");
}

fn tool_behaviour() -> Behaviour {
    Behaviour::ToolThenText {
        command: TOOL_COMMAND.to_string(),
        final_text: TOOL_FINAL.to_string(),
        thinking: Some(TOOL_THINKING.to_string()),
    }
}

// ------------------------------------------------------------------ scenarios

fn plain_answer(cli: Cli) {
    let Some(case) = Case::new(cli, Behaviour::text(PLAIN_ANSWER)) else {
        return;
    };
    let output = case.turn(PLAIN_PROMPT, None);
    case.report("plain", &output);
    case.capture("plain", &output);
    let lines = output.json_lines();
    assert_eq!(output.code(), Some(0), "{}", output.describe());
    assert_eq!(
        cli.answer_text(&lines),
        PLAIN_ANSWER,
        "{}",
        output.describe()
    );
    assert!(cli.session_id(&lines).is_some(), "{}", output.describe());
    let agent = case.mock.agent_requests();
    assert!(!agent.is_empty(), "no agent request reached the mock");
    assert!(agent[0].body_contains("plain-marker"));
}

fn tool_turn_then_resume(cli: Cli) {
    let Some(case) = Case::new(cli, tool_behaviour()) else {
        return;
    };

    // Turn 1: the mock asks for the shell command, the CLI runs it, the mock
    // answers with text quoting the result.
    let first = case.turn(TOOL_PROMPT, None);
    case.report("tool", &first);
    case.capture("tool", &first);
    let lines = first.json_lines();
    assert_eq!(first.code(), Some(0), "{}", first.describe());
    let proof = case.project.join("proof.txt");
    let written = fs::read_to_string(&proof).unwrap_or_default();
    assert_eq!(
        written.trim(),
        TOOL_OUTPUT,
        "proof.txt\n{}",
        first.describe()
    );
    let tool_output = cli.tool_output(&lines).unwrap_or_default();
    assert!(
        tool_output.contains(TOOL_OUTPUT),
        "tool output {tool_output:?}\n{}",
        first.describe()
    );
    let answer = cli.answer_text(&lines);
    assert!(
        answer.starts_with("The command printed:") && answer.contains(TOOL_OUTPUT),
        "answer {answer:?}\n{}",
        first.describe()
    );
    let agent = case.mock.agent_requests();
    assert_eq!(
        agent.len(),
        2,
        "expected a tool request and a final request"
    );
    assert!(agent[0].latest_tool_result().is_none());
    let result = agent[1].latest_tool_result().unwrap_or_default();
    assert!(result.contains(TOOL_OUTPUT), "tool result sent: {result:?}");
    let session = cli
        .session_id(&lines)
        .unwrap_or_else(|| panic!("no session id\n{}", first.describe()));

    if cli == Cli::Claude {
        check_claude_transcript(&case, &session);
    }

    // Turn 2: resume the session; the mock must see the earlier conversation.
    case.mock.set_behaviour(Behaviour::text(RESUME_ANSWER));
    case.mock.clear_requests();
    let second = case.turn(RESUME_PROMPT, Some(&session));
    case.report("resume", &second);
    case.capture("resume", &second);
    let lines = second.json_lines();
    assert_eq!(second.code(), Some(0), "{}", second.describe());
    assert_eq!(
        cli.answer_text(&lines),
        RESUME_ANSWER,
        "{}",
        second.describe()
    );
    let agent = case.mock.agent_requests();
    let last = agent.last().expect("the resumed turn reached the mock");
    for needle in ["tool-marker", "resume-marker", TOOL_OUTPUT] {
        assert!(
            last.body_contains(needle),
            "resumed request lacks {needle:?}: {}",
            last.raw_body
        );
    }
    let resumed_session = cli.session_id(&lines);
    println!(
        "SESSION {}: first {session}, resumed {resumed_session:?}",
        cli.name()
    );
    assert!(resumed_session.is_some(), "{}", second.describe());
}

/// Checks (and captures) the transcript Claude Code wrote for the tool turn.
fn check_claude_transcript(case: &Case, session: &str) {
    let projects = case.home.join(".claude/projects");
    let transcript = fs::read_dir(&projects)
        .unwrap_or_else(|e| panic!("{}: {e}", projects.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(format!("{session}.jsonl")))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no transcript for {session} under {}", projects.display()));
    println!("TRANSCRIPT claude: {}", transcript.display());
    let text = fs::read_to_string(&transcript).expect("read transcript");
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let values = parse_json_lines(&lines);
    assert!(
        values
            .iter()
            .any(|v| v["type"] == "user"
                && v["message"]["content"].to_string().contains("tool_result")),
        "transcript has no tool_result:\n{text}"
    );
    capture("claude", "transcript_tool", &text);
}

fn api_error(cli: Cli, status: u16) {
    let Some(case) = Case::new(cli, Behaviour::Error(status)) else {
        return;
    };
    let output = case.turn(PLAIN_PROMPT, None);
    case.report(&format!("error {status}"), &output);
    case.capture("error", &output);
    println!(
        "STDERR {} error {status}:\n{}",
        cli.name(),
        output.stderr.trim_end()
    );
    assert_ne!(output.code(), Some(0), "{}", output.describe());
    let lines = output.json_lines();
    let reported = lines.iter().any(|line| match cli {
        Cli::Claude => line["type"] == "result" && line["is_error"] == true,
        Cli::Codex => line["type"] == "turn.failed",
        Cli::Gemini => line["type"] == "result" && line["status"] == "error",
        Cli::OpenCode => line["type"] == "error",
    });
    assert!(reported, "no error line\n{}", output.describe());
    // Codex replaces a 5xx body with its own "high demand" message.
    if cli != Cli::Codex {
        assert!(
            output
                .stdout()
                .contains(&format!("mock error with status {status}")),
            "{}",
            output.describe()
        );
    }
}

fn interrupt_hanging_turn(cli: Cli) {
    let Some(case) = Case::new(cli, Behaviour::Hang) else {
        return;
    };
    let process = case.spawn(&cli.args(PLAIN_PROMPT, None), false);
    assert!(
        case.mock
            .wait_for_agent_requests(1, Duration::from_secs(30)),
        "{} never sent its request",
        cli.name()
    );
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    process.signal(libc::SIGINT);
    let output = process.finish(Duration::from_secs(15));
    let exit_after = signalled.elapsed();
    println!(
        "SIGINT {}: exited {:.2}s after SIGINT with {:?} (code {:?}, signal {:?}); stderr: {}",
        cli.name(),
        exit_after.as_secs_f64(),
        output.status,
        output.code(),
        output.signal(),
        output.stderr.trim_end()
    );
    case.capture("interrupt", &output);
    assert!(
        !output.timed_out,
        "{} ignored SIGINT\n{}",
        cli.name(),
        output.describe()
    );
}

// ----------------------------------------------------------------- Claude Code

#[test]
fn claude_plain_answer() {
    plain_answer(Cli::Claude);
}

#[test]
fn claude_tool_turn_then_resume() {
    tool_turn_then_resume(Cli::Claude);
}

#[test]
fn claude_api_error() {
    api_error(Cli::Claude, 500);
}

#[test]
fn claude_interrupt_hanging_turn() {
    interrupt_hanging_turn(Cli::Claude);
}

/// The long-running mode: one JSON user message per stdin line, one `result` per
/// turn, the process stays up until stdin closes.
#[test]
fn claude_stream_json_input_two_turns() {
    let Some(case) = Case::new(Cli::Claude, tool_behaviour()) else {
        return;
    };
    let args: Vec<String> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--allowedTools",
        "Bash",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut process = case.spawn(&args, true);
    let message = |text: &str| {
        serde_json::json!({"type": "user", "message": {"role": "user", "content": text}})
            .to_string()
    };
    let is_result = |line: &Value| line["type"] == "result";
    let stdin_lines = [message(TOOL_PROMPT), message(RESUME_PROMPT)];

    process.write_line(&stdin_lines[0]).expect("write turn 1");
    let first = process
        .wait_for_json(RUN_TIMEOUT, is_result)
        .unwrap_or_else(|| panic!("no result for turn 1: {:?}", process.lines_seen()));
    let first_at = process.started().elapsed();
    assert_eq!(first["is_error"], false, "{first}");
    assert!(
        first["result"]
            .as_str()
            .unwrap_or_default()
            .contains(TOOL_OUTPUT),
        "{first}"
    );
    assert!(case.project.join("proof.txt").exists());

    // Still running between turns.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(process.is_running(), "claude exited after the first result");

    case.mock.set_behaviour(Behaviour::text(RESUME_ANSWER));
    process.write_line(&stdin_lines[1]).expect("write turn 2");
    let second = process
        .wait_for_json(RUN_TIMEOUT, is_result)
        .unwrap_or_else(|| panic!("no result for turn 2: {:?}", process.lines_seen()));
    assert_eq!(second["result"], RESUME_ANSWER, "{second}");
    assert_eq!(first["session_id"], second["session_id"]);
    let last = case.mock.agent_requests();
    let last = last.last().expect("turn 2 reached the mock");
    assert!(last.body_contains("tool-marker") && last.body_contains(TOOL_OUTPUT));
    assert!(
        process.is_running(),
        "claude exited after the second result"
    );

    // End of input: it exits.
    let closed = Instant::now();
    let output = process.finish(Duration::from_secs(15));
    println!(
        "TIMING claude stream-json: turn 1 result at {:.2}s, exit {:.2}s after stdin closed ({:?}), total {:.2}s",
        first_at.as_secs_f64(),
        closed.elapsed().as_secs_f64(),
        output.status,
        output.elapsed.as_secs_f64()
    );
    assert_eq!(output.code(), Some(0), "{}", output.describe());
    capture("claude", "stream_input", &output.stdout());
    capture(
        "claude",
        "stream_input.stdin",
        &(stdin_lines.join("\n") + "\n"),
    );
    let results = output
        .json_lines()
        .iter()
        .filter(|line| line["type"] == "result")
        .count();
    assert_eq!(results, 2, "{}", output.describe());
}

/// In the long-running mode a `control_request` with subtype `interrupt` on stdin
/// aborts the running turn (its `result` is an error) and the process stays up
/// for the next message.
#[test]
fn claude_stream_json_interrupt_then_continue() {
    let Some(case) = Case::new(Cli::Claude, Behaviour::Hang) else {
        return;
    };
    let args: Vec<String> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut process = case.spawn(&args, true);
    let stdin_lines = [
        r#"{"type":"user","message":{"role":"user","content":"This turn will hang"}}"#,
        r#"{"type":"control_request","request_id":"req_interrupt_1","request":{"subtype":"interrupt"}}"#,
        r#"{"type":"user","message":{"role":"user","content":"And this one is answered"}}"#,
    ];
    process.write_line(stdin_lines[0]).expect("write turn 1");
    assert!(
        case.mock
            .wait_for_agent_requests(1, Duration::from_secs(30)),
        "turn 1 never reached the mock"
    );
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Instant::now();
    process.write_line(stdin_lines[1]).expect("write interrupt");
    let first = process
        .wait_for_json(RUN_TIMEOUT, |line| line["type"] == "result")
        .unwrap_or_else(|| panic!("no result after interrupt: {:?}", process.lines_seen()));
    println!(
        "TIMING claude interrupt: result {:.2}s after the control_request",
        interrupted.elapsed().as_secs_f64()
    );
    assert_eq!(first["is_error"], true, "{first}");
    assert_eq!(first["subtype"], "error_during_execution", "{first}");
    assert!(process.is_running(), "claude exited after the interrupt");

    case.mock.set_behaviour(Behaviour::text(PLAIN_ANSWER));
    process.write_line(stdin_lines[2]).expect("write turn 2");
    let second = process
        .wait_for_json(RUN_TIMEOUT, |line| line["type"] == "result")
        .unwrap_or_else(|| panic!("no result for turn 2: {:?}", process.lines_seen()));
    assert_eq!(second["result"], PLAIN_ANSWER, "{second}");
    let output = process.finish(Duration::from_secs(15));
    assert_eq!(output.code(), Some(0), "{}", output.describe());
    assert!(
        output
            .json_lines()
            .iter()
            .any(|line| line["type"] == "control_response"),
        "{}",
        output.describe()
    );
    capture("claude", "stream_interrupt", &output.stdout());
    capture(
        "claude",
        "stream_interrupt.stdin",
        &(stdin_lines.join("\n") + "\n"),
    );
}

// ------------------------------------------------------------------- Codex CLI

#[test]
fn codex_plain_answer() {
    plain_answer(Cli::Codex);
}

#[test]
fn codex_tool_turn_then_resume() {
    tool_turn_then_resume(Cli::Codex);
}

#[test]
fn codex_api_error() {
    api_error(Cli::Codex, 500);
}

#[test]
fn codex_interrupt_hanging_turn() {
    interrupt_hanging_turn(Cli::Codex);
}

// ------------------------------------------------------------------ Gemini CLI

#[test]
fn gemini_plain_answer() {
    plain_answer(Cli::Gemini);
}

#[test]
fn gemini_tool_turn_then_resume() {
    tool_turn_then_resume(Cli::Gemini);
}

#[test]
fn gemini_api_error() {
    api_error(Cli::Gemini, 500);
}

#[test]
fn gemini_interrupt_hanging_turn() {
    interrupt_hanging_turn(Cli::Gemini);
}

// -------------------------------------------------------------------- OpenCode

#[test]
fn opencode_plain_answer() {
    plain_answer(Cli::OpenCode);
}

#[test]
fn opencode_tool_turn_then_resume() {
    tool_turn_then_resume(Cli::OpenCode);
}

/// With `--thinking`, OpenCode also prints the model's reasoning as `reasoning`
/// lines (without it, reasoning is not printed at all).
#[test]
fn opencode_tool_turn_with_thinking() {
    let Some(case) = Case::new(Cli::OpenCode, tool_behaviour()) else {
        return;
    };
    let mut args = Cli::OpenCode.args(TOOL_PROMPT, None);
    args.insert(3, "--thinking".to_string());
    let output = case.spawn(&args, false).finish(RUN_TIMEOUT);
    case.report("tool --thinking", &output);
    case.capture("tool_thinking", &output);
    assert_eq!(output.code(), Some(0), "{}", output.describe());
    let lines = output.json_lines();
    assert!(
        lines
            .iter()
            .any(|line| line["type"] == "reasoning" && line["part"]["text"] == TOOL_THINKING),
        "{}",
        output.describe()
    );
    assert!(case.project.join("proof.txt").exists());
}

/// OpenCode retries 5xx answers without limit (and prints nothing meanwhile), so
/// the error case uses a status it does not retry.
#[test]
fn opencode_api_error() {
    api_error(Cli::OpenCode, 400);
}

#[test]
fn opencode_interrupt_hanging_turn() {
    interrupt_hanging_turn(Cli::OpenCode);
}

// ------------------------------------------------------------------ the mock

/// The mock's own contract, without any CLI: recording, behaviour switching,
/// Hang released by drop, unknown paths.
#[test]
fn mock_answers_and_stops() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn post(port: u16, path: &str, body: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    let mock = MockLlm::start(Behaviour::text("hi there")).expect("start mock");
    let port = mock.port();
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"Bash"}]}"#;
    let answer = post(port, "/v1/messages?beta=true", body).expect("post");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The text comes in two deltas: "hi t" + "here".
    assert!(answer.contains("event: message_start") && answer.contains(r#""text":"here""#));
    assert!(answer.contains("event: message_stop"), "{answer}");
    let other = post(port, "/whatever", "").expect("post");
    assert!(
        other.starts_with("HTTP/1.1 200") && other.ends_with("{}"),
        "{other}"
    );

    mock.set_behaviour(Behaviour::tool_then_text("ls", "done"));
    let answer = post(port, "/v1/chat/completions", r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"bash"}}]}"#).expect("post");
    assert!(
        answer.contains("tool_calls") && answer.contains("[DONE]"),
        "{answer}"
    );
    let answer = post(port, "/v1beta/models/g:generateContent", r#"{"contents":[{"role":"user","parts":[{"text":"q"}]},{"role":"model","parts":[{"functionCall":{"name":"run_shell_command","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"run_shell_command","response":{"output":"out"}}}]}],"tools":[{"functionDeclarations":[{"name":"run_shell_command"}]}]}"#).expect("post");
    assert!(answer.contains("done"), "{answer}");

    mock.set_behaviour(Behaviour::Delay(
        Duration::from_millis(300),
        Box::new(Behaviour::text("late")),
    ));
    let asked = Instant::now();
    let answer = post(
        port,
        "/v1/chat/completions",
        r#"{"stream":false,"messages":[]}"#,
    )
    .expect("post");
    assert!(asked.elapsed() >= Duration::from_millis(300));
    assert!(answer.contains(r#""content":"late""#), "{answer}");

    mock.set_behaviour(Behaviour::Error(503));
    let answer = post(port, "/v1/responses", r#"{"stream":true,"input":[]}"#).expect("post");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    let requests = mock.requests();
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].query, "beta=true");
    assert_eq!(requests[0].body["model"], "m");
    assert_eq!(mock.model_requests().len(), 5);

    // A hanging request is released (with a 500) when the mock is dropped, and
    // the drop itself does not wait for it.
    mock.set_behaviour(Behaviour::Hang);
    let waiter = std::thread::spawn(move || post(port, "/v1/responses", "{}"));
    assert!(mock.wait_for_model_requests(6, Duration::from_secs(10)));
    let dropped = Instant::now();
    drop(mock);
    assert!(dropped.elapsed() < Duration::from_secs(2));
    let answer = waiter.join().expect("join").unwrap_or_default();
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}
