//! What must still be ended or removed on hosts that could not be reached when it was
//! asked: a worker deleted, or stopped, while its host was down, and what a crashed
//! server left running there. Kept in `DATA_DIR/hosts-cleanup.json` (a restart goes on
//! trying) and tried again by one thread, `host-cleanup`, every [`RETRY`], until the
//! host answers. Starting a worker's program again takes its entry off: its start
//! script ends what the last run left.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Host, Hosts, scripts};

/// Between two rounds of attempts.
const RETRY: Duration = Duration::from_secs(20);

/// One worker's leftovers on one host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Leftover {
    pub host: Host,
    /// Its spool is removed too (the worker was deleted), not only its program ended.
    pub remove: bool,
}

/// The leftovers, by spool key, and the file that keeps them.
pub struct Cleanups {
    file: PathBuf,
    /// Held while an attempt runs: a start of the same worker waits for it, so that an
    /// attempt never ends a program started after it was asked for.
    pending: Mutex<BTreeMap<String, Leftover>>,
    wake: (Mutex<bool>, Condvar),
}

impl Cleanups {
    pub fn open(file: PathBuf) -> Cleanups {
        let pending = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Cleanups {
            file,
            pending: Mutex::new(pending),
            wake: (Mutex::new(false), Condvar::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Leftover>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, pending: &BTreeMap<String, Leftover>) {
        let written = serde_json::to_vec(pending)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::private_files::write(&self.file, &bytes));
        if let Err(err) = written {
            log::warn!("cannot write {}: {err}", self.file.display());
        }
    }

    /// Asks for `key` to be cleaned up on `host` (a removal stays a removal).
    pub fn add(&self, key: &str, host: &Host, remove: bool) {
        let mut pending = self.lock();
        let remove = remove || pending.get(key).is_some_and(|l| l.remove);
        pending.insert(
            key.to_string(),
            Leftover {
                host: host.clone(),
                remove,
            },
        );
        self.save(&pending);
        drop(pending);
        let (lock, cvar) = &self.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cvar.notify_all();
    }

    /// A new run of the worker starts: its start script ends the last one itself.
    pub fn cancel(&self, key: &str) {
        let mut pending = self.lock();
        if pending.remove(key).is_some() {
            self.save(&pending);
        }
    }

    /// One round: each leftover tried once, kept when its host does not answer.
    fn round(&self, hosts: &Hosts) {
        let mut pending = self.lock();
        let before = pending.len();
        pending.retain(|key, leftover| {
            let mut args = vec![key.clone()];
            if leftover.remove {
                args.push("remove".into());
            }
            match hosts.control(
                &leftover.host,
                scripts::CLEANUP,
                &args,
                b"",
                super::remote::CONTROL_TIMEOUT,
            ) {
                Ok(_) => {
                    log::info!("host {}: cleaned up {key}", leftover.host.name);
                    false
                }
                Err(_) => true,
            }
        });
        if pending.len() != before {
            self.save(&pending);
        }
    }
}

impl Hosts {
    /// Starts the thread that retries cleanups (and tries what a restart found at once).
    pub fn start_cleanups(self: &Arc<Self>) {
        let hosts: Weak<Hosts> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("host-cleanup".into())
            .spawn(move || {
                loop {
                    let Some(strong) = hosts.upgrade() else {
                        return;
                    };
                    strong.cleanups.round(&strong);
                    let (lock, cvar) = &strong.cleanups.wake;
                    let mut woken = lock.lock().unwrap_or_else(|p| p.into_inner());
                    if !*woken {
                        woken = cvar
                            .wait_timeout(woken, RETRY)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    *woken = false;
                }
            });
        if let Err(err) = spawned {
            log::warn!("no thread for host cleanups: {err}");
        }
    }
}
