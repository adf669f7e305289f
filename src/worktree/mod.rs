//! A git worktree per worker (`"isolation": "worktree"`): several agents on one
//! repository, each on a branch of its own in a folder of its own, so they never write
//! over each other's files. This file creates and removes worktrees and holds the one
//! function every git command goes through ([`git`]); what a worktree changed is
//! `diff.rs`, bringing it back (commit, merge, discard) is `merge.rs`, copying the files
//! git ignores (`copy_files`) is `copy.rs`.
//!
//! Not here: when a worktree is made or removed (the hub, at creation and deletion) and
//! the `diff` event (the worker, after a turn).
//!
//! git runs as a program, never through a shell, with its arguments as a list, bounded
//! in time (`process::bounded`), without a terminal to prompt on, an editor or a pager,
//! and without the `GIT_DIR`-like variables the server itself may have been given.

pub mod copy;
pub mod diff;
pub mod merge;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, ErrorKind};
use crate::process::bounded::{self, Options, RawOutput};

/// Where git runs: here, or on a worker's host over ssh (the same argument lists, run
/// there by `Hosts::git`).
#[derive(Clone, Default)]
pub enum GitRunner {
    /// On this machine.
    #[default]
    Local,
    /// On a host of `--hosts`.
    Remote {
        hosts: std::sync::Arc<crate::hosts::Hosts>,
        host: crate::hosts::Host,
    },
    /// On a host that is no longer usable (its entry left the hosts file): why.
    Unavailable(String),
}

impl GitRunner {
    pub fn is_remote(&self) -> bool {
        !matches!(self, GitRunner::Local)
    }
}

impl std::fmt::Debug for GitRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitRunner::Local => f.write_str("Local"),
            GitRunner::Remote { host, .. } => write!(f, "Remote({})", host.name),
            GitRunner::Unavailable(why) => write!(f, "Unavailable({why})"),
        }
    }
}

/// The variables every git command gets (no prompt, no editor or pager, plain output).
const GIT_ENV: &[(&str, &str)] = &[
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_EDITOR", "true"),
    ("GIT_SEQUENCE_EDITOR", "true"),
    ("GIT_PAGER", "cat"),
    ("PAGER", "cat"),
    ("GIT_OPTIONAL_LOCKS", "0"),
    ("LC_ALL", "C"),
];

/// How long a git command may take by default, and at most for the slow ones (a
/// worktree's checkout, adding every file of a large tree to an index).
pub const GIT_TIMEOUT: Duration = Duration::from_secs(60);
pub const SLOW_GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables the server may have been started with that would point git elsewhere.
const GIT_LOCATION_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
];

/// One git command: its arguments, and what it runs with besides the defaults.
pub struct GitCall<'a> {
    pub args: Vec<String>,
    pub env: Vec<(OsString, OsString)>,
    pub timeout: Duration,
    pub max_output: u64,
    /// Exit codes that are answers, not failures (`merge-tree`'s 1: it conflicts).
    pub ok_codes: &'a [i32],
}

impl GitCall<'_> {
    pub fn new<S: AsRef<str>>(args: &[S]) -> GitCall<'static> {
        GitCall {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            env: Vec::new(),
            timeout: GIT_TIMEOUT,
            max_output: 16 << 20,
            ok_codes: &[0],
        }
    }
}

/// What a git command printed.
pub struct GitOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub truncated: bool,
}

impl GitOutput {
    /// Its output as one trimmed line of text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// Runs `git ARGS` in `dir`: the one place git is started. A code not in `ok_codes`,
/// a git that cannot start or does not end in time is a `git_failed` error with what
/// git said.
pub fn git_call(runner: &GitRunner, dir: &Path, call: GitCall<'_>) -> Result<GitOutput, Error> {
    let shown = || format!("git {}", call.args.join(" "));
    // No hook of the repository runs in the server's git commands (an agent can
    // write them).
    let mut args = vec!["-c".to_string(), "core.hooksPath=/dev/null".to_string()];
    args.extend(call.args.iter().cloned());
    let git_env = GIT_ENV
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let output: RawOutput = match runner {
        GitRunner::Local => {
            // The server's environment without its own settings (a token is a shell: a
            // hook in the repository must not read it), then git's.
            let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
                .filter(|(name, _)| {
                    name.to_str().is_none_or(|name| {
                        !name.starts_with("WORKERHUB_")
                            && !crate::process::env::CONSUMED.contains(&name)
                    })
                })
                .collect();
            env.extend(git_env);
            env.retain(|(name, _)| !GIT_LOCATION_VARS.iter().any(|v| name == v));
            env.extend(call.env.iter().cloned());
            let options = Options {
                timeout: call.timeout,
                cwd: Some(dir),
                env,
                clear_env: true,
                stdin: &[],
                env_remove: &[],
                max_output: call.max_output,
            };
            bounded::run_with(Path::new("git"), &args, &options)
                .map_err(|err| Error::new(ErrorKind::Internal, ErrorCode::GitFailed, err))?
        }
        GitRunner::Remote { hosts, host } => {
            let env: Vec<(String, String)> = git_env
                .chain(call.env.iter().cloned())
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect();
            hosts
                .git(host, dir, &env, &args, call.timeout, call.max_output)
                .map_err(|err| err.into_error(&host.name))?
        }
        GitRunner::Unavailable(why) => {
            return Err(Error::new(
                ErrorKind::Unavailable,
                ErrorCode::HostUnreachable,
                why.clone(),
            ));
        }
    };
    match output.code {
        Some(code) if call.ok_codes.contains(&code) => Ok(GitOutput {
            code,
            stdout: output.stdout,
            truncated: output.truncated,
        }),
        code => Err(Error::new(
            ErrorKind::Internal,
            ErrorCode::GitFailed,
            format!(
                "`{}` in {} failed ({}): {}",
                shown(),
                dir.display(),
                code.map_or("killed".to_string(), |c| format!("exit {c}")),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        )),
    }
}

/// `git ARGS` in `dir`, with the defaults.
pub fn git<S: AsRef<str>>(runner: &GitRunner, dir: &Path, args: &[S]) -> Result<GitOutput, Error> {
    git_call(runner, dir, GitCall::new(args))
}

/// Whether `git ARGS` succeeds (exit 0) rather than answering no (exit 1); other exits
/// are errors.
fn git_yes<S: AsRef<str>>(runner: &GitRunner, dir: &Path, args: &[S]) -> Result<bool, Error> {
    let call = GitCall {
        ok_codes: &[0, 1, 128],
        ..GitCall::new(args)
    };
    Ok(git_call(runner, dir, call)?.code == 0)
}

/// The identity commits are made with, when git has none configured: `-c` options to
/// put before the subcommand (empty when the user's own is set).
pub fn identity_args(runner: &GitRunner, dir: &Path) -> Result<Vec<String>, Error> {
    // Both keys in one run: `user.name VALUE` lines for those set (exit 1: none is).
    let call = GitCall {
        ok_codes: &[0, 1],
        ..GitCall::new(&["config", "--get-regexp", r"^user\.(name|email)$"])
    };
    let out = git_call(runner, dir, call)?;
    let set = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut args = Vec::new();
    for (key, fallback) in [
        ("user.name", "workerhub"),
        ("user.email", "workerhub@localhost"),
    ] {
        if !set.lines().any(|line| line.split(' ').next() == Some(key)) {
            args.push("-c".to_string());
            args.push(format!("{key}={fallback}"));
        }
    }
    Ok(args)
}

/// A worker's worktree, as kept in its `worker.json` and shown in its view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Worktree {
    /// The top of the checkout the worker was created in (the user's).
    pub repository: PathBuf,
    /// The worktree's folder.
    pub path: PathBuf,
    /// Where in the worktree the worker runs (the `project_path`'s place in the
    /// repository; empty for its top).
    #[serde(default)]
    pub subdir: PathBuf,
    /// The worker's branch, `workerhub/NAME-SHORTID`.
    pub branch: String,
    /// The commit changes are counted from (moves to the merged commit after a merge).
    pub base_commit: String,
    /// The branch merges go into by default: the one checked out when the worktree was
    /// made (or `base_ref`, when it is a branch). None for a detached base.
    #[serde(default)]
    pub base_branch: Option<String>,
}

impl Worktree {
    /// The folder the worker's programs run in.
    pub fn workdir(&self) -> PathBuf {
        if self.subdir.as_os_str().is_empty() {
            return self.path.clone();
        }
        self.path.join(&self.subdir)
    }
}

/// What a new worktree is made from.
pub struct NewWorktree<'a> {
    /// The folder the client named (canonical): in a git repository.
    pub project: &'a Path,
    pub base_ref: Option<&'a str>,
    pub copy_files: &'a [String],
    /// The worker's name (may be empty) and the start of its id.
    pub name: &'a str,
    pub short_id: &'a str,
    /// Where worktrees are made (`DATA_DIR/worktrees` unless `--worktrees-dir`).
    pub base_dir: &'a Path,
}

/// Makes a worktree on a new branch for a worker, with its ignored files copied; a
/// clear error when the folder is not in a repository, the base is unknown, or the
/// branch exists.
pub fn create(runner: &GitRunner, new: &NewWorktree<'_>) -> Result<Worktree, Error> {
    let project = new.project;
    let top = git(runner, project, &["rev-parse", "--show-toplevel"])
        .map_err(|err| {
            Error::new(
                ErrorKind::Invalid,
                ErrorCode::NotARepository,
                format!(
                    "`project_path` {} is not in a git repository, and `\"isolation\": \"worktree\"` needs one (`git init` it and commit something first): {}",
                    project.display(),
                    err.message
                ),
            )
        })?
        .text();
    let repository = PathBuf::from(&top);
    let subdir = project
        .strip_prefix(&repository)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let base_ref = new.base_ref.unwrap_or("HEAD");
    let unknown = |what: String| Error::new(ErrorKind::Invalid, ErrorCode::UnknownRef, what);
    let base_commit = git(
        runner,
        &repository,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{base_ref}^{{commit}}"),
        ],
    )
    .map_err(|_| match new.base_ref {
        Some(name) => unknown(format!(
            "`base_ref` {name:?} names no commit in {}",
            repository.display()
        )),
        None => unknown(format!(
            "{} has no commit yet: commit something first, so the worktree has a base",
            repository.display()
        )),
    })?
    .text();
    let base_branch = match new.base_ref {
        None => {
            let call = GitCall {
                ok_codes: &[0, 1, 128],
                ..GitCall::new(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            };
            let out = git_call(runner, &repository, call)?;
            (out.code == 0).then(|| out.text())
        }
        Some(name) => is_branch(runner, &repository, name)?.then(|| name.to_string()),
    };
    let label = if new.name.is_empty() {
        "worker"
    } else {
        new.name
    };
    let mut branch = format!("workerhub/{label}-{}", new.short_id);
    if !git_yes(
        runner,
        &repository,
        &["check-ref-format", &format!("refs/heads/{branch}")],
    )? {
        branch = format!("workerhub/worker-{}", new.short_id);
    }
    if is_branch(runner, &repository, &branch)? {
        return Err(Error::conflict(
            ErrorCode::BranchExists,
            format!(
                "the branch {branch} exists already in {}: delete it (`git branch -D {branch}`) or give the worker another name",
                repository.display()
            ),
        ));
    }
    // On a host, git makes the folders it needs, and refuses a path that is taken.
    if !runner.is_remote() {
        crate::private_files::create_dir(new.base_dir).map_err(|err| {
            Error::internal(format!(
                "cannot create the worktrees folder {}: {err}",
                new.base_dir.display()
            ))
        })?;
    }
    let path = new.base_dir.join(format!("{label}-{}", new.short_id));
    if !runner.is_remote() && path.exists() {
        return Err(Error::conflict(
            ErrorCode::BranchExists,
            format!("the folder {} exists already", path.display()),
        ));
    }
    let path_arg = path.display().to_string();
    let call = GitCall {
        timeout: SLOW_GIT_TIMEOUT,
        ..GitCall::new(&[
            "worktree",
            "add",
            "--quiet",
            "-b",
            &branch,
            &path_arg,
            &base_commit,
        ])
    };
    git_call(runner, &repository, call)?;
    let path = match runner.is_remote() {
        true => path,
        false => path.canonicalize().unwrap_or(path),
    };
    let worktree = Worktree {
        repository,
        path,
        subdir,
        branch,
        base_commit,
        base_branch,
    };
    if runner.is_remote() {
        // Its folder there is the one git made (checked on every start by the host).
        return Ok(worktree);
    }
    if let Err(err) = copy::copy_files(&worktree.repository, &worktree.path, new.copy_files) {
        // Half a worker is no worker: the worktree goes again.
        let _ = remove(runner, &worktree, false);
        return Err(err);
    }
    if !worktree.workdir().is_dir() {
        // The folder the client named is not in the base commit (untracked, or
        // ignored): the worker runs at the worktree's top instead.
        log::warn!(
            "{} is not in the commit {}; the worker runs at the top of its worktree",
            worktree.subdir.display(),
            worktree.base_commit
        );
        return Ok(Worktree {
            subdir: PathBuf::new(),
            ..worktree
        });
    }
    Ok(worktree)
}

/// Whether `name` is a local branch of the repository in `dir`.
pub fn is_branch(runner: &GitRunner, dir: &Path, name: &str) -> Result<bool, Error> {
    git_yes(
        runner,
        dir,
        &[
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{name}"),
        ],
    )
}

/// Removes a worker's worktree (`git worktree remove`, then `prune`), and its branch
/// unless `keep_branch`. A worktree already gone is pruned.
pub fn remove(runner: &GitRunner, worktree: &Worktree, keep_branch: bool) -> Result<(), Error> {
    let repo = &worktree.repository;
    if runner.is_remote() || worktree.path.exists() {
        let path = worktree.path.display().to_string();
        // Twice forced: modified and untracked files go too, and so does a lock. (On a
        // host it is asked for whether or not it is still there: 128 when it is not.)
        let call = GitCall {
            timeout: SLOW_GIT_TIMEOUT,
            ok_codes: if runner.is_remote() { &[0, 128] } else { &[0] },
            ..GitCall::new(&["worktree", "remove", "--force", "--force", &path])
        };
        git_call(runner, repo, call)?;
    }
    git(runner, repo, &["worktree", "prune"])?;
    if !keep_branch && is_branch(runner, repo, &worktree.branch)? {
        git(
            runner,
            repo,
            &["branch", "-D", "--end-of-options", &worktree.branch],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worktree_runs_its_worker_in_the_project_paths_place() {
        let worktree = Worktree {
            repository: "/r".into(),
            path: "/d/worktrees/a-1".into(),
            subdir: "pkg/x".into(),
            branch: "workerhub/a-1".into(),
            base_commit: "0".repeat(40),
            base_branch: Some("main".into()),
        };
        assert_eq!(worktree.workdir(), Path::new("/d/worktrees/a-1/pkg/x"));
    }

    #[test]
    fn a_second_worktree_on_the_same_branch_is_refused_as_branch_exists() {
        let tmp = std::env::temp_dir().join(format!("workerhub-wt-unit-{}", std::process::id()));
        let repo = tmp.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let runner = GitRunner::Local;
        git(&runner, &repo, &["init", "--quiet"]).unwrap();
        std::fs::write(repo.join("f"), "x").unwrap();
        git(&runner, &repo, &["add", "f"]).unwrap();
        let mut commit = identity_args(&runner, &repo).unwrap();
        commit.extend(["commit", "--quiet", "-m", "base"].map(String::from));
        git(&runner, &repo, &commit).unwrap();
        let (one, two) = (tmp.join("one"), tmp.join("two"));
        let new = |dir: &'static str| NewWorktree {
            project: &repo,
            base_ref: None,
            copy_files: &[],
            name: "same",
            short_id: "0123abcd",
            base_dir: if dir == "one" { &one } else { &two },
        };
        let first = create(&runner, &new("one")).unwrap();
        assert_eq!(first.branch, "workerhub/same-0123abcd");
        let err = create(&runner, &new("two")).unwrap_err();
        assert_eq!(err.code, ErrorCode::BranchExists, "{}", err.message);
        remove(&runner, &first, false).unwrap();
        assert!(!is_branch(&runner, &repo, &first.branch).unwrap());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
