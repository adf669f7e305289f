//! What a worktree changed against its base: committed and uncommitted changes and
//! untracked files, as a unified diff and a per-file summary.
//!
//! Untracked files are counted the way `git add -N` would show them, without touching
//! any index anyone uses: the worktree's index is copied to a temporary file (so git
//! keeps the file stats it already knows and hashes only what changed), `git add -A`
//! goes into that copy (`GIT_INDEX_FILE`), and `git diff --cached BASE` compares the
//! base with it. Ignored files stay out, as they would of a commit.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{GitCall, GitRunner, SLOW_GIT_TIMEOUT, Worktree, git, git_call};
use crate::error::Error;
use crate::event::diff::{DiffSummary, FileChange, FileStatus};

/// The most bytes of unified diff returned; past it the text is cut (`truncated`).
pub const MAX_PATCH_BYTES: u64 = 8 << 20;

/// The most bytes of the per-file list (`--raw --numstat`) read.
const MAX_SUMMARY_BYTES: u64 = 64 << 20;

/// A worktree's changes.
pub struct Diff {
    pub summary: DiffSummary,
    /// The unified diff (None when only the summary was asked for).
    pub patch: Option<String>,
    /// The diff was longer than `MAX_PATCH_BYTES` and is cut.
    pub truncated: bool,
}

/// A temporary index file, removed when dropped.
struct TempIndex(PathBuf);

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("lock"));
    }
}

/// The git folder of the worktree at `dir` (where its index and the temporary one are):
/// the same for its whole life, so a worker asks once.
pub fn git_dir(runner: &GitRunner, dir: &Path) -> Result<PathBuf, Error> {
    Ok(PathBuf::from(
        git(runner, dir, &["rev-parse", "--absolute-git-dir"])?.text(),
    ))
}

/// The changes of `worktree` (whose git folder is `git_dir`) against its base; with the
/// unified diff when `patch`.
pub fn diff(
    runner: &GitRunner,
    worktree: &Worktree,
    git_dir: &Path,
    patch: bool,
) -> Result<Diff, Error> {
    let dir = &worktree.path;
    // On a host the temporary index is one per worktree in its own git folder (gone
    // with it), filled from HEAD rather than copied: `add --all` then brings it to the
    // working tree all the same, only without git's cached file stats. Here it is a
    // copy of the worktree's index, removed when done.
    let (index_file, _temp) = if runner.is_remote() {
        (git_dir.join("workerhub-diff-index"), None)
    } else {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = TempIndex(git_dir.join(format!(
            "workerhub-diff-index-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )));
        let index = git_dir.join("index");
        if index.is_file() {
            std::fs::copy(&index, &temp.0).map_err(|err| {
                Error::internal(format!("could not copy the worktree's index: {err}"))
            })?;
        }
        (temp.0.clone(), Some(temp))
    };
    let env = vec![(
        OsString::from("GIT_INDEX_FILE"),
        index_file.into_os_string(),
    )];
    let with_index = |args: &[&str], max_output: u64| {
        git_call(
            runner,
            dir,
            GitCall {
                env: env.clone(),
                timeout: SLOW_GIT_TIMEOUT,
                max_output,
                ..GitCall::new(args)
            },
        )
    };
    if runner.is_remote() {
        with_index(&["read-tree", "HEAD"], 1 << 20)?;
    }
    with_index(&["add", "--all", "--", "."], 1 << 20)?;
    let base = worktree.base_commit.as_str();
    let common = ["diff", "--cached", "-M", "--no-ext-diff", "--no-color"];
    // What happened to each file and its lines, in one run of git's diff.
    let summary_args = [&common[..], &["-z", "--raw", "--numstat", base, "--"]].concat();
    let listed = with_index(&summary_args, MAX_SUMMARY_BYTES)?;
    if listed.truncated {
        // A list cut mid-record would be a wrong summary, not a short one.
        return Err(Error::internal(format!(
            "{} changed more files than a diff lists ({} MiB of names)",
            worktree.branch,
            MAX_SUMMARY_BYTES >> 20
        )));
    }
    let files = summarize(&listed.stdout);
    let summary = DiffSummary::new(worktree.base_commit.clone(), worktree.branch.clone(), files);
    if !patch {
        return Ok(Diff {
            summary,
            patch: None,
            truncated: false,
        });
    }
    let patch_args = [
        &common[..],
        &["--src-prefix=a/", "--dst-prefix=b/", base, "--"],
    ]
    .concat();
    let text = with_index(&patch_args, MAX_PATCH_BYTES)?;
    Ok(Diff {
        summary,
        patch: Some(String::from_utf8_lossy(&text.stdout).into_owned()),
        truncated: text.truncated,
    })
}

/// One entry per file from `--raw --numstat -z`: first the raw records (`:MODES HASHES
/// STATUS`, then the path, or the old and the new one for a rename or copy), then the
/// numstat ones (`ADDED\tREMOVED\tPATH`, or an empty path, then the old and the new one).
fn summarize(out: &[u8]) -> Vec<FileChange> {
    let mut fields = out
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f))
        .peekable();
    let mut changes = Vec::new();
    while let Some(head) = fields.next_if(|f| f.starts_with(':')) {
        let Some(letter) = head.rsplit(' ').next().and_then(|s| s.chars().next()) else {
            continue;
        };
        let Some(first) = fields.next().map(|p| p.into_owned()) else {
            break;
        };
        let (status, path, old_path) = match letter {
            'R' => {
                let new = fields.next().map(|p| p.into_owned()).unwrap_or_default();
                (FileStatus::Renamed, new, Some(first))
            }
            // A copy is a new file that looks like another.
            'C' => {
                let new = fields.next().map(|p| p.into_owned()).unwrap_or_default();
                (FileStatus::New, new, None)
            }
            'A' => (FileStatus::New, first, None),
            'D' => (FileStatus::Deleted, first, None),
            _ => (FileStatus::Modified, first, None),
        };
        changes.push((status, path, old_path));
    }
    let mut lines: HashMap<String, (Option<u64>, Option<u64>)> = HashMap::new();
    while let Some(head) = fields.next() {
        let mut parts = head.splitn(3, '\t');
        let (Some(added), Some(removed), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // A rename: an empty path, then the old and the new one.
        let path = if path.is_empty() {
            let _old = fields.next();
            fields.next().map(|p| p.into_owned()).unwrap_or_default()
        } else {
            path.to_string()
        };
        lines.insert(path, (added.parse().ok(), removed.parse().ok()));
    }
    changes
        .into_iter()
        .map(|(status, path, old_path)| {
            // git counts no lines of a binary file (`-`).
            let (added, removed) = lines.get(&path).copied().unwrap_or((Some(0), Some(0)));
            let binary = added.is_none() && removed.is_none();
            let status = match status {
                FileStatus::New | FileStatus::Modified if binary => FileStatus::Binary,
                status => status,
            };
            FileChange {
                path,
                status,
                old_path,
                added: added.unwrap_or(0),
                removed: removed.unwrap_or(0),
                binary,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_counts_join_into_one_entry_per_file() {
        let raw = ":100644 100644 1 2 M\0a.txt\0:000000 100644 0 3 A\0new.txt\0\
                   :100644 000000 4 0 D\0gone.txt\0:100644 100644 5 6 R087\0old.md\0moved.md\0\
                   :000000 100644 0 7 A\0img.png\0";
        let counts = "2\t1\ta.txt\x003\t0\tnew.txt\x000\t4\tgone.txt\x001\t1\t\0old.md\0moved.md\0-\t-\timg.png\0";
        let files = summarize(format!("{raw}{counts}").as_bytes());
        let by = |p: &str| files.iter().find(|f| f.path == p).unwrap().clone();
        assert_eq!(by("a.txt").status, FileStatus::Modified);
        assert_eq!((by("a.txt").added, by("a.txt").removed), (2, 1));
        assert_eq!(by("new.txt").status, FileStatus::New);
        assert_eq!(by("gone.txt").status, FileStatus::Deleted);
        let moved = by("moved.md");
        assert_eq!(moved.status, FileStatus::Renamed);
        assert_eq!(moved.old_path.as_deref(), Some("old.md"));
        assert_eq!(moved.added, 1);
        let img = by("img.png");
        assert_eq!(img.status, FileStatus::Binary);
        assert!(img.binary);
    }
}
