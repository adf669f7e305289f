//! The ledger of running children: every process group workerhub starts is written down
//! (`DATA_DIR/processes.json`: the group's id, when its leader started, whose it is) until
//! it is reaped. A server that was killed outright (SIGKILL, OOM) cannot stop its
//! children, so the next start reads the ledger and ends what is left of each group,
//! with the usual escalation, and tells the workers what happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys;

/// Whose a child is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Owner {
    Worker(String),
    Command(String),
}

/// One running child, as written down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The child's pid, which is its process group's id.
    pub pgid: u32,
    /// When it started, in clock ticks since boot: with the pid, it names the group.
    pub start_time: u64,
    pub owner: Owner,
}

pub struct Ledger {
    path: PathBuf,
    entries: Mutex<BTreeMap<u32, Entry>>,
}

/// How a group left from a previous run was ended.
#[derive(Clone, Debug)]
pub struct Ended {
    pub entry: Entry,
    /// The strongest signal it took (None: nothing of it was left).
    pub signal: Option<i32>,
}

impl Ledger {
    /// Opens the ledger at `path`; returns it (empty) and what the previous run left in
    /// it.
    pub fn open(path: &Path) -> (Ledger, Vec<Entry>) {
        let left: BTreeMap<u32, Entry> = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Vec<Entry>>(&bytes).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.pgid, e))
            .collect();
        let ledger = Ledger {
            path: path.to_path_buf(),
            entries: Mutex::new(BTreeMap::new()),
        };
        ledger.save(&BTreeMap::new());
        (ledger, left.into_values().collect())
    }

    fn save(&self, entries: &BTreeMap<u32, Entry>) {
        let list: Vec<&Entry> = entries.values().collect();
        let result = serde_json::to_vec(&list)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::private_files::write(&self.path, &bytes));
        if let Err(err) = result {
            log::warn!("could not write {}: {err}", self.path.display());
        }
    }

    /// Writes down a child that just started.
    pub fn add(&self, pgid: u32, owner: Owner) {
        let Some(start_time) = sys::process_start_time(pgid) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            pgid,
            Entry {
                pgid,
                start_time,
                owner,
            },
        );
        self.save(&entries);
    }

    /// Crosses out a child that was reaped.
    pub fn remove(&self, pgid: u32) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.remove(&pgid).is_some() {
            self.save(&entries);
        }
    }
}

/// Ends every group of `left` that still runs: SIGTERM, then SIGKILL after `grace`, each
/// step logged; all at once. Returns how each was ended.
pub fn end_left_over(left: Vec<Entry>, grace: Duration) -> Vec<Ended> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = left
            .into_iter()
            .map(|entry| scope.spawn(move || end_group(entry, grace)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

fn end_group(entry: Entry, grace: Duration) -> Ended {
    let alive = || sys::group_is_alive(entry.pgid, entry.start_time);
    if !alive() {
        return Ended {
            entry,
            signal: None,
        };
    }
    log::warn!(
        "process group {} of {:?} outlived the previous server; sending SIGTERM",
        entry.pgid,
        entry.owner
    );
    sys::kill_group(entry.pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !alive() {
        return Ended {
            entry,
            signal: Some(libc::SIGTERM),
        };
    }
    log::warn!(
        "process group {} still running {:.1}s after SIGTERM; sending SIGKILL",
        entry.pgid,
        grace.as_secs_f64()
    );
    // Checked once more right before: the group is ours, not a reused number.
    if alive() {
        sys::kill_group(entry.pgid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ended {
        entry,
        signal: Some(libc::SIGKILL),
    }
}
