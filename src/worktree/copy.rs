//! `copy_files`: the files a new worktree lacks because git ignores them (`.env`, local
//! settings), copied from the repository when a glob names them. A glob is relative to
//! the repository (checked by `spec::check_relative_glob`: no `..`, no absolute path):
//! `*` and `?` stay within one folder, `**/` spans folders. A folder that matches is
//! copied whole. Files the worktree has already (tracked ones) are never overwritten.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::error::Error;

/// The most entries looked at for all globs together: a glob such as `**/.env` in a
/// tree with `node_modules` must not take forever.
const MAX_VISITED: usize = 200_000;

/// Copies what `globs` match in `repo` into `worktree`; returns the paths copied
/// (relative).
pub fn copy_files(repo: &Path, worktree: &Path, globs: &[String]) -> Result<Vec<String>, Error> {
    let mut copied = Vec::new();
    let mut visited = 0;
    for glob in globs {
        crate::spec::check_relative_glob(glob)?;
        let pattern = glob_regex(glob)?;
        let segments: Vec<&str> = glob.split('/').collect();
        // Walk from the folder the glob names literally, no deeper than it can match.
        let literal: Vec<&str> = segments
            .iter()
            .take_while(|s| !s.contains(['*', '?', '[']))
            .copied()
            .collect();
        let start: PathBuf = literal.iter().collect();
        let depth = if glob.contains("**") {
            usize::MAX
        } else {
            segments.len() - literal.len()
        };
        let mut matched = Vec::new();
        if literal.len() == segments.len() {
            if repo.join(&start).symlink_metadata().is_ok() {
                matched.push(start.clone());
            }
        } else {
            walk(repo, &start, depth, &pattern, &mut visited, &mut matched);
        }
        for relative in matched {
            if through_link(worktree, &relative) {
                // A folder of the worktree on the way is a link (a tracked symlink):
                // what is copied goes into the worktree, never through it elsewhere.
                continue;
            }
            copy_tree(
                &repo.join(&relative),
                &worktree.join(&relative),
                &mut visited,
            )
            .map_err(|err| {
                Error::internal(format!(
                    "could not copy {} into the worktree: {err}",
                    relative.display()
                ))
            })?;
            copied.push(relative.display().to_string());
        }
    }
    Ok(copied)
}

/// `glob` as an anchored regex over `/`-separated relative paths.
fn glob_regex(glob: &str) -> Result<Regex, Error> {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|err| Error::invalid(format!("`copy_files` {glob:?}: {err}")))
}

fn walk(
    repo: &Path,
    dir: &Path,
    depth: usize,
    pattern: &Regex,
    visited: &mut usize,
    matched: &mut Vec<PathBuf>,
) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(repo.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        *visited += 1;
        if *visited > MAX_VISITED {
            return;
        }
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let relative = dir.join(&name);
        let Some(text) = relative.to_str() else {
            continue;
        };
        if pattern.is_match(text) {
            matched.push(relative);
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(repo, &relative, depth - 1, pattern, visited, matched);
        }
    }
}

/// Whether a folder on the way to `relative` in `worktree` is a symlink.
fn through_link(worktree: &Path, relative: &Path) -> bool {
    relative
        .ancestors()
        .skip(1)
        .filter(|folder| !folder.as_os_str().is_empty())
        .any(|folder| {
            worktree
                .join(folder)
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
}

/// Copies a file, a symlink (as a link) or a folder (whole), keeping what `to` has.
fn copy_tree(from: &Path, to: &Path, visited: &mut usize) -> std::io::Result<()> {
    *visited += 1;
    if *visited > MAX_VISITED {
        return Ok(());
    }
    let meta = from.symlink_metadata()?;
    if let Ok(there) = to.symlink_metadata() {
        // What the worktree has stays; a folder is copied into one it has, never into
        // a link it has (which may point anywhere).
        if !(meta.is_dir() && there.is_dir()) {
            return Ok(());
        }
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)?.flatten() {
            if entry.file_name() != ".git" {
                copy_tree(&entry.path(), &to.join(entry.file_name()), visited)?;
            }
        }
        Ok(())
    } else if meta.is_file() {
        std::fs::copy(from, to).map(|_| ())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_copied_through_a_link_the_worktree_has() {
        let tmp = std::env::temp_dir().join(format!("workerhub-copy-unit-{}", std::process::id()));
        let (repo, worktree, elsewhere) = (tmp.join("repo"), tmp.join("wt"), tmp.join("else"));
        for dir in [repo.join("conf/sub"), worktree.clone(), elsewhere.clone()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(repo.join("conf/a.local"), "a").unwrap();
        std::fs::write(repo.join("conf/sub/b.local"), "b").unwrap();
        std::os::unix::fs::symlink(&elsewhere, worktree.join("conf")).unwrap();
        let globs = ["conf/*.local".to_string(), "conf".to_string()];
        copy_files(&repo, &worktree, &globs).unwrap();
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        std::fs::remove_file(worktree.join("conf")).unwrap();
        copy_files(&repo, &worktree, &globs).unwrap();
        assert_eq!(
            std::fs::read_to_string(worktree.join("conf/sub/b.local")).unwrap(),
            "b"
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn globs_match_within_a_folder_or_across_with_two_stars() {
        let one = glob_regex("config/*.local").unwrap();
        assert!(one.is_match("config/db.local"));
        assert!(!one.is_match("config/x/db.local"));
        let any = glob_regex("**/.env").unwrap();
        assert!(any.is_match(".env") && any.is_match("a/b/.env"));
        assert!(!any.is_match("a/b/.envrc"));
        assert!(glob_regex(".env.?").unwrap().is_match(".env.1"));
        assert!(
            !glob_regex("a+b").unwrap().is_match("aab"),
            "regex characters are literal"
        );
    }
}
