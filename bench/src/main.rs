//! workerhub-bench: the load generator and benchmark suite of workerhub (issue 3).
//!
//! It drives any WebSocket server that runs a program per connection or per worker:
//! workerhub (`--proto hub`), websocketd and the limit reference `ws-reference`
//! (`--proto raw`). Each scenario prints one JSON object on stdout:
//!
//! * `echo`: one client, a line to `cat` and back, N times: round trip p50/p99/max;
//! * `stream`: one client, the program prints N lines: events/s and MB/s;
//! * `fanout`: C clients, the program prints N lines: delivered events/s, the slowest
//!   client's completion, one-way delivery latency p50/p99 (from the emitter's stamps);
//! * `conns`: C idle connections: how many hold, the server's memory, threads, idle CPU;
//! * `http`: `GET /api/workers` with keep-alive from several threads: requests/s, p99;
//! * `agent`: the agent protocol on `/ws` (when the server has it);
//! * `supervision approvals`: tool approval round trips of a `claude` worker, timed by
//!   the fake CLI `approval-cli`; `supervision turn-start`: the time to a turn's first
//!   event with the real Claude Code, live session against a process per turn;
//! * `terminal`: terminal workers' keystroke echo against a `command` worker's, and
//!   `yes | head -c 200M` to 1 and 100 viewers with the server's CPU;
//! * `emit`: the program of `stream` and `fanout` (waits for `go`, prints stamped lines);
//! * `suite`: runs everything against workerhub, websocketd and the reference and
//!   writes docs/BENCHMARKS.md (what `make bench` runs, through benches/run.sh).

mod agent;
mod client;
mod emit;
// The mock model API of the integration tests, for `supervision turn-start` (it allows
// its own dead code: the bench uses its Anthropic side only).
#[path = "../../tests/support/mock_llm.rs"]
mod mock_llm;
mod multi;
mod procfs;
mod remote;
mod scenarios;
mod stats;
mod suite;
mod supervision;
mod sys;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "workerhub-bench",
    about = "Load generator and benchmark suite for workerhub, websocketd and the limit reference"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print N stamped lines (`SEQ MICROS`), optionally after a `go` line on stdin.
    Emit(emit::EmitArgs),
    /// Round trips of a line through `cat`.
    Echo(scenarios::EchoArgs),
    /// One client receiving N lines as fast as they come.
    Stream(scenarios::StreamArgs),
    /// C clients receiving N lines each.
    Fanout(multi::FanoutArgs),
    /// C idle connections held open; the server's cost.
    Conns(multi::ConnsArgs),
    /// Keep-alive `GET` requests from several threads.
    Http(scenarios::HttpArgs),
    /// The agent protocol on `/ws`: mixed requests from many clients.
    Agent(agent::AgentArgs),
    /// Supervised Claude Code: approval round trips, and turn start live vs per-turn.
    Supervision(supervision::SupervisionArgs),
    /// Workers on another host over ssh against local ones (starts its own sshd).
    Remote(remote::RemoteArgs),
    /// Terminal workers: keystroke echo, and a burst to 1 and 100 viewers.
    Terminal(terminal::TerminalArgs),
    /// Every scenario against every server, several runs; writes the report.
    Suite(Box<suite::SuiteArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Emit(a) => {
            return match emit::run(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("workerhub-bench emit: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Cmd::Suite(a) => {
            return match suite::run(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("workerhub-bench suite: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Cmd::Echo(a) => scenarios::echo(a),
        Cmd::Stream(a) => scenarios::stream(a),
        Cmd::Fanout(a) => multi::fanout(a),
        Cmd::Conns(a) => multi::conns(a),
        Cmd::Http(a) => scenarios::http(a),
        Cmd::Remote(a) => remote::run(a),
        Cmd::Agent(a) => agent::run(a),
        Cmd::Supervision(a) => supervision::run(a),
        Cmd::Terminal(a) => terminal::run(a),
    };
    match result {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({ "error": e }));
            eprintln!("workerhub-bench: {e}");
            ExitCode::from(1)
        }
    }
}
