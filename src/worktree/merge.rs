//! Bringing a worktree's work back: commit it on its branch, merge it into the branch
//! it came from, or throw it away.
//!
//! A merge never leaves anyone's checkout half-merged. It is first made entirely in
//! git's object store, touching no checkout and no index: `git merge-tree --write-tree`
//! says whether it conflicts (then nothing has changed, and the conflicting paths are
//! the answer) and gives the merged tree, `git commit-tree` makes the commit (a squash,
//! a merge, or each commit replayed for a rebase). Only then does the target branch
//! move: a fast-forward of the checkout where it is checked out (`git merge
//! --ff-only`, which git does all or nothing, refusing when the user's own changes are
//! in the way), or a compare-and-swap of the ref (`git update-ref NEW OLD`) where it is
//! not. Afterwards the worker's branch and base move to the merged commit, so its diff
//! starts again from what is now in.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{GitCall, GitRunner, Worktree, git, git_call, identity_args};
use crate::error::{Error, ErrorCode, ErrorKind};

/// How a worktree's branch goes into its target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// One new commit on the target with all the changes.
    #[default]
    Squash,
    /// A merge commit with both branches as parents.
    Merge,
    /// Each of the branch's commits replayed on the target.
    Rebase,
}

/// What a merge did.
#[derive(Clone, Debug, Serialize)]
pub struct Merged {
    pub strategy: Strategy,
    /// The branch merged into.
    pub into: String,
    /// The target's commit before and after.
    pub previous: String,
    pub commit: String,
    /// The files the merge changed on the target.
    pub files: Vec<String>,
}

/// Commits everything in the worktree (new, changed and deleted files) on its branch;
/// None when there is nothing to commit.
pub fn commit_all(
    runner: &GitRunner,
    worktree: &Worktree,
    message: &str,
) -> Result<Option<String>, Error> {
    let dir = &worktree.path;
    git(runner, dir, &["add", "--all", "--", "."])?;
    let call = GitCall {
        ok_codes: &[0, 1],
        ..GitCall::new(&["diff", "--cached", "--quiet", "--no-ext-diff"])
    };
    if git_call(runner, dir, call)?.code == 0 {
        return Ok(None);
    }
    let mut args = identity_args(runner, dir)?;
    // The user's hooks are theirs to run on their own commits; a worker's commit must
    // not wait on one (or on an editor).
    args.extend(
        [
            "commit",
            "--quiet",
            "--no-verify",
            "--no-edit",
            "-m",
            message,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    git(runner, dir, &args)?;
    Ok(Some(rev(runner, dir, "HEAD")?))
}

/// Throws away every change of the worktree, committed or not (untracked files too;
/// ignored ones, such as copied `copy_files`, stay): it is its base again.
pub fn discard(runner: &GitRunner, worktree: &Worktree) -> Result<(), Error> {
    let dir = &worktree.path;
    git(
        runner,
        dir,
        &["reset", "--hard", "--quiet", &worktree.base_commit],
    )?;
    git(runner, dir, &["clean", "-d", "--force", "--quiet"])?;
    Ok(())
}

/// Merges the worktree's branch (its changes committed first, with `message`) into
/// `into` (its base branch when None), as `strategy` says; `worktree`'s base moves to
/// the result. A conflict is a `conflict` error naming the paths, with nothing changed.
pub fn merge(
    runner: &GitRunner,
    worktree: &mut Worktree,
    strategy: Strategy,
    into: Option<&str>,
    message: &str,
) -> Result<Merged, Error> {
    let repo = worktree.repository.clone();
    let target = match into.or(worktree.base_branch.as_deref()) {
        Some(target) => target.to_string(),
        None => {
            return Err(Error::invalid(
                "the worktree was made from a detached HEAD: say which branch to merge into (`into`)",
            ));
        }
    };
    crate::spec::check_ref(&target, "into")?;
    // The target's commit, read once: it is checked again as the target moves
    // (`update-ref NEW OLD`, or HEAD in its checkout).
    let Some(theirs) = branch_commit(runner, &repo, &target)? else {
        return Err(Error::new(
            ErrorKind::Invalid,
            ErrorCode::UnknownRef,
            format!("{} has no branch {target:?}", repo.display()),
        ));
    };
    commit_all(runner, worktree, message)?;
    let branch_ref = format!("refs/heads/{}", worktree.branch);
    let ours = rev(runner, &repo, &branch_ref)?;
    let already = GitCall {
        ok_codes: &[0, 1],
        ..GitCall::new(&["merge-base", "--is-ancestor", &ours, &theirs])
    };
    if git_call(runner, &repo, already)?.code == 0 {
        return Err(Error::conflict(
            ErrorCode::NothingToMerge,
            format!("{target} has everything of {} already", worktree.branch),
        ));
    }
    // Whether it conflicts, before anything is touched.
    let tree = merged_tree(runner, &repo, &theirs, &ours, None, &target)?;
    let identity = identity_args(runner, &repo)?;
    let commit = match strategy {
        Strategy::Squash => commit_tree(runner, &repo, &identity, &tree, &[&theirs], message, &[])?,
        Strategy::Merge => commit_tree(
            runner,
            &repo,
            &identity,
            &tree,
            &[&theirs, &ours],
            message,
            &[],
        )?,
        Strategy::Rebase => replay(runner, &repo, &identity, &theirs, &ours, &target)?,
    };
    move_target(runner, &repo, &target, &theirs, &commit)?;
    let files = git(
        runner,
        &repo,
        &[
            "diff",
            "--name-only",
            "-z",
            "--no-ext-diff",
            &theirs,
            &commit,
            "--",
        ],
    )?
    .stdout
    .split(|&b| b == 0)
    .filter(|p| !p.is_empty())
    .map(|p| String::from_utf8_lossy(p).into_owned())
    .collect();
    // The worker goes on from what is now in (its own commits are in the target, or
    // squashed into one there): its branch and base are the merged commit.
    git(
        runner,
        &worktree.path,
        &["reset", "--hard", "--quiet", &commit],
    )?;
    worktree.base_commit = commit.clone();
    Ok(Merged {
        strategy,
        into: target,
        previous: theirs,
        commit,
        files,
    })
}

/// The tree of merging `theirs` into `base_tip` (with `merge_base` as the base, when
/// given), or a `conflict` error naming the files.
fn merged_tree(
    runner: &GitRunner,
    repo: &Path,
    base_tip: &str,
    theirs: &str,
    merge_base: Option<&str>,
    target: &str,
) -> Result<String, Error> {
    let mut args = vec![
        "merge-tree".to_string(),
        "--write-tree".into(),
        "--no-messages".into(),
        "--name-only".into(),
        "-z".into(),
    ];
    if let Some(base) = merge_base {
        args.push(format!("--merge-base={base}"));
    }
    args.push(base_tip.into());
    args.push(theirs.into());
    let call = GitCall {
        ok_codes: &[0, 1],
        ..GitCall::new(&args)
    };
    let out = git_call(runner, repo, call)?;
    let mut fields = out
        .stdout
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).trim().to_string());
    let tree = fields.next().unwrap_or_default();
    if out.code == 0 {
        return Ok(tree);
    }
    let mut paths: Vec<String> = fields.filter(|p| !p.is_empty()).collect();
    paths.sort();
    paths.dedup();
    Err(Error::conflict(
        ErrorCode::Conflict,
        format!(
            "merging into {target} conflicts in {}: nothing was changed; merge {target} into the worker's branch (or change it) first",
            paths.join(", ")
        ),
    )
    .with_paths(paths))
}

/// A commit of `tree` with `parents` and `message`.
fn commit_tree(
    runner: &GitRunner,
    repo: &Path,
    identity: &[String],
    tree: &str,
    parents: &[&str],
    message: &str,
    env: &[(OsString, OsString)],
) -> Result<String, Error> {
    let mut args = identity.to_vec();
    args.push("commit-tree".into());
    args.push(tree.into());
    for parent in parents {
        args.push("-p".into());
        args.push(parent.to_string());
    }
    args.push("-m".into());
    args.push(message.into());
    let call = GitCall {
        env: env.to_vec(),
        ..GitCall::new(&args)
    };
    Ok(git_call(runner, repo, call)?.text())
}

/// Each commit of `theirs` that `onto` lacks, replayed on `onto` in order, keeping its
/// author and message; the last one made.
fn replay(
    runner: &GitRunner,
    repo: &Path,
    identity: &[String],
    onto: &str,
    theirs: &str,
    target: &str,
) -> Result<String, Error> {
    // Every commit to replay with its author and message, in one run: `-z` ends each
    // commit with a NUL, and git allows none inside these fields.
    let list = git(
        runner,
        repo,
        &[
            "log",
            "--reverse",
            "--no-merges",
            "-z",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%B",
            &format!("{onto}..{theirs}"),
        ],
    )?;
    if list.truncated {
        return Err(Error::internal(format!(
            "the commits of {theirs} not in {onto} are too many to replay"
        )));
    }
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    let mut fields = text.split('\0');
    let mut tip = onto.to_string();
    while let Some(commit) = fields.next().filter(|c| !c.is_empty()) {
        let mut field = || fields.next().unwrap_or("");
        let (name, email, date, message) = (field(), field(), field(), field().trim_end());
        let parent = format!("{commit}^");
        let tree = merged_tree(runner, repo, &tip, commit, Some(&parent), target)?;
        let env: Vec<(OsString, OsString)> = [
            ("GIT_AUTHOR_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_AUTHOR_DATE", date),
        ]
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        tip = commit_tree(runner, repo, identity, &tree, &[&tip], message, &env)?;
    }
    Ok(tip)
}

/// Moves `target` from `old` to `new`: a fast-forward of the checkout it is checked out
/// in (all or nothing), or of the ref alone when no checkout has it.
fn move_target(
    runner: &GitRunner,
    repo: &Path,
    target: &str,
    old: &str,
    new: &str,
) -> Result<(), Error> {
    let reflog = format!("workerhub: merge into {target}");
    let Some(checkout) = checked_out_at(runner, repo, target)? else {
        git(
            runner,
            repo,
            &[
                "update-ref",
                "-m",
                &reflog,
                &format!("refs/heads/{target}"),
                new,
                old,
            ],
        )
        .map_err(|err| moved(target, err))?;
        return Ok(());
    };
    if rev(runner, &checkout, "HEAD")? != old {
        return Err(moved(target, Error::internal("HEAD moved")));
    }
    let call = GitCall {
        ok_codes: &[0, 1, 128],
        ..GitCall::new(&["merge", "--ff-only", "--quiet", "--no-edit", new])
    };
    let out = git_call(runner, &checkout, call)?;
    if out.code != 0 {
        return Err(Error::conflict(
            ErrorCode::DirtyCheckout,
            format!(
                "{target} is checked out in {} with changes the merge would overwrite: nothing was changed; commit or stash them, then merge again",
                checkout.display()
            ),
        ));
    }
    Ok(())
}

fn moved(target: &str, err: Error) -> Error {
    Error::conflict(
        ErrorCode::Conflict,
        format!(
            "{target} moved while the merge was being made: nothing was changed; merge again ({})",
            err.message
        ),
    )
}

/// The checkout (main or linked worktree) that has `branch` checked out.
fn checked_out_at(runner: &GitRunner, repo: &Path, branch: &str) -> Result<Option<PathBuf>, Error> {
    let out = git(runner, repo, &["worktree", "list", "--porcelain", "-z"])?;
    let wanted = format!("branch refs/heads/{branch}");
    let mut path = None;
    for field in out.stdout.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(p) = field.strip_prefix("worktree ") {
            path = Some(PathBuf::from(p));
        } else if field == wanted {
            return Ok(path);
        }
    }
    Ok(None)
}

/// The commit the local branch `name` points at; None when there is no such branch.
fn branch_commit(runner: &GitRunner, dir: &Path, name: &str) -> Result<Option<String>, Error> {
    let call = GitCall {
        ok_codes: &[0, 1],
        ..GitCall::new(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{name}^{{commit}}"),
        ])
    };
    let out = git_call(runner, dir, call)?;
    Ok((out.code == 0).then(|| out.text()))
}

/// The commit `name` points at.
fn rev(runner: &GitRunner, dir: &Path, name: &str) -> Result<String, Error> {
    Ok(git(
        runner,
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{name}^{{commit}}"),
        ],
    )?
    .text())
}
