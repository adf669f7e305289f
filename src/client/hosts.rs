//! `workerhub hosts` and `workerhub hosts check NAME`: the machines of the server's
//! `--hosts FILE` and what their checks found (the API is `GET /api/hosts` and
//! `POST /api/hosts/{name}/check`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ClientError;
use super::cli::ClientArgs;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub command: Option<HostsCommand>,
    /// The server's answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand, Debug)]
pub enum HostsCommand {
    /// Connect to a host now over ssh: reachable or why not, the round trip, its OS and
    /// which AI CLIs answer there (exits 1 when it cannot be reached).
    Check {
        /// The host, as the hosts file names it.
        name: String,
        /// The server's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn hosts(args: &HostsArgs) -> Result<ExitCode, ClientError> {
    match &args.command {
        None => list(&args.client, args.json),
        Some(HostsCommand::Check { name, json, client }) => check(client, name, *json),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The AI CLIs a check found: `claude 2.1.197, codex 0.169.0`, `-` when none answered.
fn clis(host: &Value) -> String {
    let Some(map) = host["clis"].as_object() else {
        return "-".into();
    };
    let found: Vec<String> = map
        .iter()
        .filter_map(|(name, version)| version.as_str().map(|v| format!("{name} {v}")))
        .collect();
    if found.is_empty() {
        "-".into()
    } else {
        found.join(", ")
    }
}

/// Its workers' connections: `2 connected`, `1 connected, 1 disconnected`.
fn workers(host: &Value) -> String {
    let w = &host["workers"];
    let connected = w["connected"].as_u64().unwrap_or(0);
    let mut out = format!("{connected} connected");
    if let Some(down) = w["disconnected"].as_u64().filter(|n| *n > 0) {
        out.push_str(&format!(", {down} disconnected"));
    }
    out
}

fn latency(host: &Value) -> String {
    host["latency_ms"]
        .as_u64()
        .map(|ms| format!("{ms} ms"))
        .unwrap_or_else(|| "-".into())
}

/// One line a host, and under it why it cannot be used or reached.
fn list(args: &ClientArgs, json: bool) -> Result<ExitCode, ClientError> {
    let answer = args.client().get("/api/hosts")?;
    if json {
        println!("{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    let hosts = answer["hosts"].as_array().cloned().unwrap_or_default();
    if hosts.is_empty() {
        println!("no hosts (the server names them with --hosts FILE); workers run on the server");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<12} {:>8}  {:<28} {:<28} WORKERS",
        "NAME", "STATE", "LATENCY", "OS", "CLIS"
    );
    for host in &hosts {
        println!(
            "{:<16} {:<12} {:>8}  {:<28} {:<28} {}",
            text(host, "name"),
            text(host, "state"),
            latency(host),
            short(host["os"].as_str().unwrap_or("-"), 28),
            clis(host),
            workers(host)
        );
        if let Some(error) = host["error"].as_str() {
            println!("  {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks one host; exits 1 when it cannot be reached.
fn check(args: &ClientArgs, name: &str, json: bool) -> Result<ExitCode, ClientError> {
    let path = format!(
        "/api/hosts/{}/check",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    let host = args.client().post(&path, &json!({}))?;
    let reachable = host["state"] == "reachable";
    if json {
        println!("{host}");
    } else if reachable {
        println!("{name}: reachable in {}", latency(&host));
        println!("  os       {}", host["os"].as_str().unwrap_or("-"));
        let map = host["clis"].as_object().cloned().unwrap_or_default();
        for (cli, version) in map {
            println!("  {cli:<8} {}", version.as_str().unwrap_or("not found"));
        }
        println!("  workers  {}", workers(&host));
    } else {
        println!(
            "{name}: {} ({})",
            text(&host, "state"),
            host["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(if reachable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// At most `max` characters of `text`'s first line.
fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
