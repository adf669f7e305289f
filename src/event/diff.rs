//! What a worker in its own git worktree changed, as the `diff` event and
//! `GET /api/workers/{id}/diff` carry it: one entry per file, and the totals.

use serde::{Deserialize, Serialize};

/// What happened to a file, against the worktree's base commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    New,
    Modified,
    Deleted,
    /// Moved (and perhaps changed): `old_path` is where it was.
    Renamed,
    /// A binary file added or changed (git counts no lines of it).
    Binary,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::New => "new",
            FileStatus::Modified => "modified",
            FileStatus::Deleted => "deleted",
            FileStatus::Renamed => "renamed",
            FileStatus::Binary => "binary",
        }
    }
}

/// One changed file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub status: FileStatus,
    /// Where a renamed file was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// Lines added and removed (0 for a binary file).
    pub added: u64,
    pub removed: u64,
    /// Whether git sees the file as binary (whatever its status).
    #[serde(default)]
    pub binary: bool,
}

/// Every changed file of a worktree against its base, committed or not, untracked
/// files included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// The commit the changes are counted from.
    pub base_commit: String,
    /// The worker's branch.
    pub branch: String,
    pub files: Vec<FileChange>,
    /// Lines added and removed in all files.
    pub added: u64,
    pub removed: u64,
}

impl DiffSummary {
    /// Totals `files` into a summary.
    pub fn new(base_commit: String, branch: String, files: Vec<FileChange>) -> DiffSummary {
        let added = files.iter().map(|f| f.added).sum();
        let removed = files.iter().map(|f| f.removed).sum();
        DiffSummary {
            base_commit,
            branch,
            files,
            added,
            removed,
        }
    }

    /// The summary in words: "3 files changed, +10 -2" (or "no changes").
    pub fn describe(&self) -> String {
        match self.files.len() {
            0 => "no changes".to_string(),
            1 => format!("1 file changed, +{} -{}", self.added, self.removed),
            n => format!("{n} files changed, +{} -{}", self.added, self.removed),
        }
    }
}
