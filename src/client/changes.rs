//! `workerhub diff WORKER` and `workerhub merge WORKER`: a worker's worktree from the
//! command line (the API is `/api/workers/{id}/diff` and `/merge`).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::ClientError;
use super::cli::{ClientArgs, encode};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The worker (id or name).
    pub worker: String,
    /// The changed files and their lines, without the diff itself.
    #[arg(long)]
    pub stat: bool,
    /// The server's answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
#[group(id = "how", multiple = false)]
pub struct MergeArgs {
    /// The worker (id or name).
    pub worker: String,
    /// One new commit with all the changes (the default).
    #[arg(long, group = "how")]
    pub squash: bool,
    /// A merge commit.
    #[arg(long, group = "how")]
    pub merge: bool,
    /// The worker's commits replayed on the target.
    #[arg(long, group = "how")]
    pub rebase: bool,
    /// The branch to merge into [default: the one the worktree was made from].
    #[arg(long)]
    pub into: Option<String>,
    /// The commit message.
    #[arg(long, short)]
    pub message: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn path(worker: &str, tail: &str) -> String {
    format!("/api/workers/{}/{tail}", encode(worker))
}

/// Prints the worker's changes: the unified diff (`--stat`: one line a file).
pub fn diff(args: &DiffArgs) -> Result<ExitCode, ClientError> {
    let tail = if args.stat { "diff?stat=1" } else { "diff" };
    let answer = args.client.client().get(&path(&args.worker, tail))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.stat {
        for file in answer["files"].as_array().into_iter().flatten() {
            let name = match file["old_path"].as_str() {
                Some(old) => format!("{old} -> {}", file["path"].as_str().unwrap_or("")),
                None => file["path"].as_str().unwrap_or("").to_string(),
            };
            let _ = writeln!(
                out,
                "{:<9} +{:<5} -{:<5} {name}",
                file["status"].as_str().unwrap_or(""),
                file["added"],
                file["removed"]
            );
        }
        let files = answer["files"].as_array().map_or(0, Vec::len);
        let _ = writeln!(
            out,
            "{files} file(s) changed, +{} -{} against {} on {}",
            answer["added"],
            answer["removed"],
            short(&answer["base_commit"]),
            answer["branch"].as_str().unwrap_or("")
        );
    } else {
        let _ = out.write_all(answer["diff"].as_str().unwrap_or("").as_bytes());
        if answer["truncated"] == true {
            let _ = writeln!(
                out,
                "[the diff is longer than the server sends; see the worktree itself]"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Merges the worker's branch; a conflict says which files and changes nothing.
pub fn merge(args: &MergeArgs) -> Result<ExitCode, ClientError> {
    let strategy = if args.merge {
        "merge"
    } else if args.rebase {
        "rebase"
    } else {
        "squash"
    };
    let mut body = json!({"strategy": strategy});
    if let Some(into) = &args.into {
        body["into"] = json!(into);
    }
    if let Some(message) = &args.message {
        body["message"] = json!(message);
    }
    let merged = args
        .client
        .client()
        .post(&path(&args.worker, "merge"), &body)?;
    println!(
        "merged {} into {} ({strategy}): {} -> {}, {} file(s)",
        args.worker,
        merged["into"].as_str().unwrap_or(""),
        short(&merged["previous"]),
        short(&merged["commit"]),
        merged["files"].as_array().map_or(0, Vec::len)
    );
    Ok(ExitCode::SUCCESS)
}

fn short(commit: &Value) -> String {
    commit.as_str().unwrap_or("").chars().take(10).collect()
}
