//! The one thread that forks every child.
//!
//! Each child asks the kernel to kill it when its parent goes (`PR_SET_PDEATHSIG`), so no
//! worker runs on unsupervised after the server dies. That signal fires when the *thread*
//! that forked the child ends, not the process: a child started from a connection's
//! reader thread would die with the connection. So every child is forked here, on a
//! thread that lives as long as the server.

use std::io;
use std::process::{Child, Command};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::sys;

/// How long a caller waits for the launcher (a fork takes milliseconds).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

struct Job {
    command: Command,
    reply: Sender<io::Result<Child>>,
}

pub struct Launcher {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Launcher {
    pub fn start() -> io::Result<Launcher> {
        let (jobs, rx) = unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("launcher".into())
            .spawn(move || {
                for Job { mut command, reply } in rx {
                    sys::die_with_parent(&mut command);
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Launcher {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Starts `command` on the launcher thread.
    pub fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, answer) = bounded(1);
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is stopping"))?
            .send(Job { command, reply })
            .map_err(|_| io::Error::other("the launcher thread is gone"))?;
        answer
            .recv_timeout(LAUNCH_TIMEOUT)
            .map_err(|_| io::Error::other("the launcher did not answer"))?
    }
}

impl Drop for Launcher {
    /// Ends the thread once every job is done. Children still running then are killed
    /// by the kernel (their parent thread is gone): by now the server has stopped them.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
