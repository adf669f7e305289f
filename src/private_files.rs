//! The data folder is private to the user workerhub runs as: its folders are `0700` and
//! its files `0600`, because they hold what agents did and said, and workers' settings
//! with their secrets. Every file under it is created through this module, and a data
//! folder from an older version is tightened at start.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and its missing parents with mode 0700.
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Writes `bytes` to `path` atomically (a private temporary file renamed over it).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A temporary name of this write's own: two writers of one file never share one
    // (the loser's rename would fail, or rename the other's half-written file).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        file.write_all(bytes)?;
    }
    std::fs::rename(&tmp, path)
}

/// Opens `path` for appending, creating it private.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Makes one existing file private (best effort).
pub fn restrict(path: &Path) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE));
}

/// Tightens every folder and file under `root` (and `root` itself) that others could
/// read; returns how many were changed. Symlinks are not followed.
pub fn secure_tree(root: &Path) -> io::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() {
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            changed += 1;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders_are_created_private_and_old_ones_tightened() {
        let root = std::env::temp_dir().join(format!("workerhub-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        create_dir(&root.join("a/b")).unwrap();
        write(&root.join("a/b/x.json"), b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("a/b")), 0o700);
        assert_eq!(mode(&root.join("a/b/x.json")), 0o600);
        std::fs::write(root.join("a/old.json"), b"{}").unwrap();
        std::fs::set_permissions(
            root.join("a/old.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(secure_tree(&root).unwrap(), 2);
        assert_eq!(mode(&root.join("a/old.json")), 0o600);
        assert_eq!(mode(&root.join("a")), 0o700);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
