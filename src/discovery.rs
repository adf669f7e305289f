//! How a command-line client on this machine finds a running server's data folder (and
//! so its token) without being told: each server writes a small file named by its port
//! while it runs (`$XDG_RUNTIME_DIR/workerhub/PORT.json`, else
//! `~/.local/state/workerhub/servers/PORT.json`), private to its user, with its pid,
//! address and data folder; never the token itself. A file whose server is gone is
//! ignored, and removed by the next server that starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a running server says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announced {
    pub pid: u32,
    /// `http://HOST:PORT`.
    pub url: String,
    pub data_dir: PathBuf,
}

/// The folder of the servers' files, for this user.
pub fn folder() -> Option<PathBuf> {
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(run).join("workerhub"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".local/state/workerhub/servers"))
}

fn file_for(folder: &Path, port: u16) -> PathBuf {
    folder.join(format!("{port}.json"))
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Writes this server's file; returns it, to be removed at shutdown. Files of servers
/// that are gone are removed on the way.
pub fn announce(port: u16, url: &str, data_dir: &Path) -> Option<PathBuf> {
    let folder = folder()?;
    if let Err(err) = crate::private_files::create_dir(&folder) {
        log::debug!("cannot create {}: {err}", folder.display());
        return None;
    }
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for entry in entries.flatten() {
            let path = entry.path();
            let gone = read(&path).is_none_or(|a| !alive(a.pid));
            if gone && path.extension().is_some_and(|e| e == "json") {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let announced = Announced {
        pid: std::process::id(),
        url: url.to_string(),
        data_dir: data_dir.canonicalize().unwrap_or_else(|_| data_dir.into()),
    };
    let path = file_for(&folder, port);
    let bytes = serde_json::to_vec(&announced).ok()?;
    match crate::private_files::write(&path, &bytes) {
        Ok(()) => Some(path),
        Err(err) => {
            log::debug!("cannot write {}: {err}", path.display());
            None
        }
    }
}

/// Removes this server's file (if it is still this server's).
pub fn withdraw(path: &Path) {
    if read(path).is_some_and(|a| a.pid == std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

fn read(path: &Path) -> Option<Announced> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The running server on this machine that listens on `port`, if one said so.
pub fn find(port: u16) -> Option<Announced> {
    let announced = read(&file_for(&folder()?, port))?;
    alive(announced.pid).then_some(announced)
}
