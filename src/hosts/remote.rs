//! A worker's program on another host.
//!
//! `scripts::START`, over the host's multiplexed ssh connection, starts the program in
//! its own session there, its output appended to a spool and its stdin a FIFO; then two
//! followers, each an `ssh -T` child of this server like any other (`scripts::FOLLOW`),
//! stream the spool from the byte already published on: one the program's stdout (and
//! carries its stdin), one its stderr. The [`Link`] passes their lines on as the
//! program's, whole lines only, counting the bytes; whatever the followers' ssh says
//! itself is the reason a connection ended, never program output.
//!
//! When a follower's connection ends before the program has, the worker is told
//! `Disconnected`, and the link tries again with back-off; once the host answers, new
//! followers start at the exact offsets, so no line is lost or repeated. A program that
//! ended meanwhile is drained the same way, then its exit status is read from the spool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use serde::Serialize;

use super::{Host, Hosts, quote, scripts};
use crate::event::Pipe;
use crate::process::ledger::Owner;
use crate::process::{
    Exit, ProcEvent, Process, ProcessSink, ProcessSpec, Processes, RemoteIo, StdinError,
    next_process_id,
};

/// How long starting the program may take, connection included.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a control command (a signal, a state, a status) may take.
pub(super) const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between two attempts to reach a host again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The disk under published output is freed each time this much more was published.
const RELEASE_EVERY: u64 = 32 << 20;
/// The most input kept for a program whose start on its host is under way.
const EARLY_INPUT: usize = 8 << 20;
/// The spool files, by pipe: stdout, stderr.
const FILES: [&str; 2] = ["out", "err"];
const PIPES: [Pipe; 2] = [Pipe::Stdout, Pipe::Stderr];

/// Why a remote program could not be started.
#[derive(Debug)]
pub enum StartError {
    /// The host did not answer (what ssh said).
    Unreachable(String),
    /// The host answered and refused (what it said).
    Failed(String),
}

impl StartError {
    /// As the domain says it: `host_unreachable`, or `start_failed` with what the host
    /// said.
    pub fn into_error(self, host: &str) -> crate::error::Error {
        use crate::error::{Error, ErrorCode, ErrorKind};
        match self {
            StartError::Unreachable(why) => Error::new(
                ErrorKind::Unavailable,
                ErrorCode::HostUnreachable,
                format!("host `{host}` cannot be reached: {why}"),
            ),
            StartError::Failed(why) => Error::new(
                ErrorKind::Unavailable,
                ErrorCode::StartFailed,
                format!("could not start on host `{host}`: {why}"),
            ),
        }
    }
}

/// What goes over ssh for one host, for `/metrics` and `GET /api/hosts`.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Programs followed now.
    pub connected: AtomicU64,
    /// Programs whose connection is down now.
    pub disconnected: AtomicU64,
    /// Connections that ended before their program did.
    pub reconnects: AtomicU64,
    /// Output bytes received.
    pub bytes: AtomicU64,
}

/// [`Traffic`] as it is shown.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrafficView {
    pub connected: u64,
    pub disconnected: u64,
    pub reconnects: u64,
    pub bytes: u64,
}

impl Traffic {
    pub fn view(&self) -> TrafficView {
        TrafficView {
            connected: self.connected.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A program to start on a host for a worker.
pub struct RemoteLaunch<'a> {
    pub host: &'a Host,
    /// The worker's id: its spool's name.
    pub worker: &'a str,
    pub spec: &'a ProcessSpec,
    /// The project roots (`--project-root`), checked on the host.
    pub roots: &'a [PathBuf],
    pub sink: Arc<dyn ProcessSink>,
    pub owner: Owner,
}

impl Hosts {
    /// Starts `launch` on its host and follows it; the process reports lines and its
    /// exit to `launch.sink` as a local one does.
    pub fn spawn(
        self: &Arc<Self>,
        processes: &Processes,
        launch: RemoteLaunch<'_>,
    ) -> Result<Arc<Process>, StartError> {
        let host = launch.host;
        let key = self.spool_key(launch.worker);
        // What an earlier run left there, its start script ends.
        self.cleanups.cancel(&key);
        let env = env_script(host, &launch.spec.env).map_err(StartError::Failed)?;
        let mut args = vec![
            key.clone(),
            launch.spec.cwd.display().to_string(),
            if launch.spec.stdin { "in" } else { "null" }.to_string(),
            launch.roots.len().to_string(),
        ];
        args.extend(launch.roots.iter().map(|root| {
            let root = root.display().to_string();
            root.trim_end_matches('/').to_string()
        }));
        args.extend(launch.spec.argv.iter().cloned());
        let id = next_process_id();
        let (events, rx) = unbounded();
        let link = Arc::new(Link {
            hosts: self.clone(),
            host: host.clone(),
            key,
            id,
            processes: processes.clone(),
            max_line: processes.max_line(launch.spec),
            long_lines: launch.spec.long_lines,
            sink: launch.sink,
            owner: launch.owner,
            traffic: self.traffic(&host.name),
            process: OnceLock::new(),
            events,
            state: Mutex::new(LinkState {
                starting: true,
                ..LinkState::default()
            }),
        });
        let process = Arc::new(Process::remote(id, link.clone()));
        let _ = link.process.set(Arc::downgrade(&process));
        // The start is a round trip to the host (seconds, when it does not answer): it
        // is the link's first step, on its own thread, never the caller's (who may hold
        // the worker's lock, or be the broadcast thread). Input meanwhile waits for it.
        let supervisor = link.clone();
        let shown = launch.spec.argv.join(" ");
        std::thread::Builder::new()
            .name(format!("remote-{id}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                if supervisor.start(&args, &env, &shown) {
                    supervisor.supervise(rx);
                }
            })
            .map_err(|e| StartError::Failed(format!("no thread for the link: {e}")))?;
        Ok(process)
    }

    /// Ends a worker's program on `host` if it runs and removes its spool there; when
    /// the host does not answer, it is tried again until it does (the error says why).
    pub fn forget(&self, host: &Host, worker: &str) -> Result<(), String> {
        self.clean(host, &self.spool_key(worker), true)
    }

    /// Ends what runs of a worker's program on `host` (a restart found it there, or a
    /// stop could not reach it); tried again until the host answers.
    pub fn end_left(&self, host: &Host, worker: &str) -> Result<(), String> {
        self.clean(host, &self.spool_key(worker), false)
    }

    fn clean(&self, host: &Host, key: &str, remove: bool) -> Result<(), String> {
        let mut args = vec![key.to_string()];
        if remove {
            args.push("remove".into());
        }
        match self.control(host, scripts::CLEANUP, &args, b"", CONTROL_TIMEOUT) {
            Ok(_) => Ok(()),
            Err(StartError::Unreachable(why) | StartError::Failed(why)) => {
                self.cleanups.add(key, host, remove);
                Err(format!("{why} (tried again until {} answers)", host.name))
            }
        }
    }

    /// `git ARGS` in `dir` on `host` with `env`: its output and exit code (git's own
    /// failures are the caller's to judge; ssh's are `Unreachable`).
    pub fn git(
        &self,
        host: &Host,
        dir: &std::path::Path,
        env: &[(String, String)],
        args: &[String],
        timeout: Duration,
        max_output: u64,
    ) -> Result<crate::process::bounded::RawOutput, StartError> {
        let mut words = vec![dir.display().to_string(), env.len().to_string()];
        words.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        words.extend(args.iter().cloned());
        let remote = scripts::command(scripts::GIT, &words).map_err(StartError::Failed)?;
        self.ssh_raw(host, &remote, b"", timeout, max_output)
    }

    /// Where this server keeps its things on `host` (`$HOME/.cache/workerhub/SERVER`).
    pub fn remote_base(&self, host: &Host) -> Result<std::path::PathBuf, StartError> {
        let out = self.control(host, scripts::HOME, &[], b"", CONTROL_TIMEOUT)?;
        out.lines()
            .next()
            .filter(|line| line.starts_with('/'))
            .map(|home| {
                std::path::Path::new(home)
                    .join(".cache/workerhub")
                    .join(&self.tag)
            })
            .ok_or_else(|| StartError::Failed(format!("no home folder on {}", host.name)))
    }

    /// Where `folder` is on `host`, symlinks resolved.
    pub fn resolve(&self, host: &Host, folder: &str) -> Result<String, StartError> {
        let out = self.control(
            host,
            scripts::RESOLVE,
            &[folder.to_string()],
            b"",
            CONTROL_TIMEOUT,
        )?;
        out.lines()
            .next()
            .filter(|line| line.starts_with('/'))
            .map(str::to_string)
            .ok_or_else(|| StartError::Failed(format!("{folder} is not a folder on {}", host.name)))
    }

    /// Runs one of `scripts` on `host` with `args`, `stdin` as its input, and returns
    /// what it printed. ssh's own failure (255, or no answer in time) is `Unreachable`.
    pub(super) fn control(
        &self,
        host: &Host,
        script: &str,
        args: &[String],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<String, StartError> {
        let remote = scripts::command(script, args).map_err(StartError::Failed)?;
        self.ssh(host, &remote, stdin, timeout)
    }
}

/// The program's environment as `export` lines for the start script (read from its
/// stdin, so no value is ever on a command line), the host's `path` first.
fn env_script(host: &Host, env: &[(String, String)]) -> Result<String, String> {
    let mut script = String::new();
    if !host.path.is_empty() {
        let dirs: Result<Vec<String>, String> = host.path.iter().map(|d| quote::quote(d)).collect();
        script.push_str(&format!(
            "PATH=\"$PATH\":{}; export PATH\n",
            dirs?.join(":")
        ));
    }
    for (name, value) in env {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{name}` cannot be an environment variable's name"));
        }
        script.push_str(&format!("export {name}={}\n", quote::quote(value)?));
    }
    Ok(script)
}

/// Why the link wakes up.
enum LinkEvent {
    /// A follower's ssh ended.
    Ended { process: u64, exit: Exit },
    /// This much of a spool file was published: its disk can be freed.
    Release { pipe: usize, upto: u64 },
    /// Stop following: the program is given up (its host unreachable when stopped).
    Abandon,
}

#[derive(Default)]
struct LinkState {
    /// The start on the host is under way: input waits in `early_input`, and the last
    /// signal asked for in `early_signal`.
    starting: bool,
    early_input: Vec<u8>,
    early_signal: Option<libc::c_int>,
    /// The followers now, by pipe (None when drained or disconnected).
    followers: [Option<Arc<Process>>; 2],
    /// Bytes of each spool file passed on.
    offsets: [u64; 2],
    /// The start of a line not complete yet, by pipe.
    carry: [Vec<u8>; 2],
    /// Whether the followers' connection is up.
    connected: bool,
    /// The program has ended and everything was passed on.
    done: bool,
    /// The last thing a follower's ssh said about itself.
    said: Option<String>,
}

/// One remote program, as the worker sees it: lines, then one exit.
pub struct Link {
    hosts: Arc<Hosts>,
    host: Host,
    /// Its spool, `SERVER/WORKER`.
    key: String,
    /// The process id the worker knows.
    id: u64,
    processes: Processes,
    max_line: usize,
    long_lines: bool,
    sink: Arc<dyn ProcessSink>,
    owner: Owner,
    traffic: Arc<Traffic>,
    process: OnceLock<Weak<Process>>,
    events: Sender<LinkEvent>,
    state: Mutex<LinkState>,
}

impl Link {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the program on its host and its followers; false (the worker told) when
    /// it could not.
    fn start(self: &Arc<Self>, args: &[String], env: &str, shown: &str) -> bool {
        let started = self
            .hosts
            .control(
                &self.host,
                scripts::START,
                args,
                env.as_bytes(),
                START_TIMEOUT,
            )
            .and_then(|out| {
                out.lines()
                    .last()
                    .and_then(|line| line.trim().parse::<u32>().ok())
                    .ok_or_else(|| StartError::Failed(format!("the host said {out:?} for a start")))
            });
        let pgid = match started {
            Ok(pgid) => pgid,
            Err(err) => {
                self.start_failed(err);
                return false;
            }
        };
        if let Some(process) = self.process.get().and_then(Weak::upgrade) {
            process.set_pid(pgid);
        }
        if let Err(err) = self.follow_all() {
            let _ = self.hosts.control(
                &self.host,
                scripts::CLEANUP,
                std::slice::from_ref(&self.key),
                b"",
                CONTROL_TIMEOUT,
            );
            self.start_failed(StartError::Failed(format!(
                "could not follow the program: {err}"
            )));
            return false;
        }
        self.traffic.connected.fetch_add(1, Ordering::Relaxed);
        let signal = {
            let mut st = self.lock();
            st.starting = false;
            let early = std::mem::take(&mut st.early_input);
            if !early.is_empty()
                && let Some(follower) = &st.followers[0]
            {
                let _ = follower.write_stdin(early);
            }
            st.early_signal.take()
        };
        if let Some(signal) = signal {
            self.signal(signal);
        }
        log::info!(
            "process {}: started on {} as group {pgid}: {shown}",
            self.id,
            self.host.name
        );
        true
    }

    /// The start failed: the worker is told so, instead of an exit.
    fn start_failed(&self, err: StartError) {
        log::warn!(
            "process {}: not started on {}: {err:?}",
            self.id,
            self.host.name
        );
        {
            let mut st = self.lock();
            st.starting = false;
            st.done = true;
            st.early_input.clear();
        }
        if let Some(process) = self.process.get().and_then(Weak::upgrade) {
            process.set_exit(Exit {
                code: None,
                signal: None,
                duration: process.started.elapsed(),
            });
        }
        self.processes.deliver(
            self.sink.clone(),
            self.id,
            ProcEvent::StartFailed(err.into_error(&self.host.name)),
        );
    }

    /// Starts a follower for `pipe` from what was passed on.
    fn follow(self: &Arc<Self>, pipe: usize) -> std::io::Result<Arc<Process>> {
        // An unfinished line is read again from where it starts.
        let from = {
            let mut st = self.lock();
            st.carry[pipe].clear();
            st.offsets[pipe]
        };
        let args = [
            self.key.clone(),
            (from + 1).to_string(),
            FILES[pipe].to_string(),
            if pipe == 0 { "in" } else { "-" }.to_string(),
        ];
        let remote = scripts::command(scripts::FOLLOW, &args).map_err(std::io::Error::other)?;
        let spec = ProcessSpec {
            argv: self.hosts.ssh_argv(&self.host, &remote),
            cwd: PathBuf::from("/"),
            env: Vec::new(),
            stdin: true,
            long_lines: self.long_lines,
        };
        let follower = self.processes.spawn(
            &spec,
            self.hosts.ssh_env(),
            self.clone(),
            self.owner.clone(),
        )?;
        self.lock().followers[pipe] = Some(follower.clone());
        Ok(follower)
    }

    /// Starts a follower for every pipe not drained yet.
    fn follow_all(self: &Arc<Self>) -> std::io::Result<()> {
        self.lock().connected = true;
        for pipe in 0..2 {
            if let Err(err) = self.follow(pipe) {
                self.drop_followers();
                return Err(err);
            }
        }
        Ok(())
    }

    /// Ends every follower (their lines are read again by the next ones).
    fn drop_followers(&self) {
        let mut st = self.lock();
        st.connected = false;
        for follower in st.followers.iter_mut() {
            if let Some(follower) = follower.take() {
                follower.signal(libc::SIGKILL);
            }
        }
    }

    fn supervise(self: Arc<Self>, rx: Receiver<LinkEvent>) {
        let mut drained = [false; 2];
        while let Ok(event) = rx.recv() {
            match event {
                LinkEvent::Abandon => {
                    self.give_up();
                    return;
                }
                LinkEvent::Release { pipe, upto } => self.release(pipe, upto),
                LinkEvent::Ended { process, exit } => {
                    let pipe = {
                        let mut st = self.lock();
                        let Some(pipe) = st
                            .followers
                            .iter()
                            .position(|f| f.as_ref().is_some_and(|f| f.id == process))
                        else {
                            continue; // one given up on
                        };
                        st.followers[pipe] = None;
                        pipe
                    };
                    match exit.code {
                        // Everything is out and the program has ended.
                        Some(10) => {
                            drained[pipe] = true;
                            if drained == [true, true] {
                                let exit = self.exit_status();
                                self.finish(exit);
                                return;
                            }
                        }
                        // It ended while followed: once more, to drain.
                        Some(11) if self.follow(pipe).is_ok() => {}
                        // The spool was removed (the worker deleted meanwhile).
                        Some(97) => {
                            self.finish(self.killed());
                            return;
                        }
                        _ => {
                            if !self.reconnect(&rx, drained) {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The connection is gone: tells the worker, then tries again with back-off until
    /// the host answers (true) or the program is given up or gone (false).
    fn reconnect(self: &Arc<Self>, rx: &Receiver<LinkEvent>, drained: [bool; 2]) -> bool {
        let said = {
            self.drop_followers();
            let mut st = self.lock();
            for (carry, drained) in st.carry.iter_mut().zip(drained) {
                if !drained {
                    carry.clear();
                }
            }
            st.said.take()
        };
        let reason = match said {
            Some(said) => format!("the connection to {} ended: {said}", self.host.name),
            None => format!("the connection to {} ended", self.host.name),
        };
        log::warn!("process {}: {reason}", self.id);
        self.traffic.connected.fetch_sub(1, Ordering::Relaxed);
        self.traffic.disconnected.fetch_add(1, Ordering::Relaxed);
        self.traffic.reconnects.fetch_add(1, Ordering::Relaxed);
        self.processes.deliver(
            self.sink.clone(),
            self.id,
            ProcEvent::Disconnected { reason },
        );
        let mut backoff = Duration::from_millis(200);
        loop {
            match rx.recv_timeout(backoff) {
                Ok(LinkEvent::Abandon) | Err(RecvTimeoutError::Disconnected) => {
                    self.traffic.disconnected.fetch_sub(1, Ordering::Relaxed);
                    self.traffic.connected.fetch_add(1, Ordering::Relaxed);
                    self.give_up();
                    return false;
                }
                // Followers given up on, and releases (done after the reconnect).
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let state = self.hosts.control(
                &self.host,
                scripts::STATE,
                std::slice::from_ref(&self.key),
                b"",
                CONTROL_TIMEOUT,
            );
            match state.as_deref().map(str::trim) {
                Ok("gone") => {
                    self.traffic.disconnected.fetch_sub(1, Ordering::Relaxed);
                    self.traffic.connected.fetch_add(1, Ordering::Relaxed);
                    self.finish(self.killed());
                    return false;
                }
                Ok(_) => {
                    self.lock().connected = true;
                    let mut started = true;
                    for pipe in (0..2).filter(|&p| !drained[p]) {
                        started &= self.follow(pipe).is_ok();
                    }
                    if started {
                        self.traffic.disconnected.fetch_sub(1, Ordering::Relaxed);
                        self.traffic.connected.fetch_add(1, Ordering::Relaxed);
                        log::info!("process {}: {} reached again", self.id, self.host.name);
                        self.processes
                            .deliver(self.sink.clone(), self.id, ProcEvent::Reconnected);
                        return true;
                    }
                    self.drop_followers();
                }
                Err(_) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// How the program ended, from its spool (asked a few times if the host does not
    /// answer at once).
    fn exit_status(&self) -> Exit {
        let duration = self.started().elapsed();
        for attempt in 0..3 {
            match self.hosts.control(
                &self.host,
                scripts::STATUS,
                std::slice::from_ref(&self.key),
                b"",
                CONTROL_TIMEOUT,
            ) {
                // A status being written (by the wrapper, or by a follower that found
                // the group killed) is read again.
                Ok(text) if text.trim().parse::<i32>().is_err() && attempt < 2 => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(text) => {
                    let status: Option<i32> = text.trim().parse().ok();
                    return match status {
                        Some(n) if (129..=128 + 64).contains(&n) => Exit {
                            code: None,
                            signal: Some(n - 128),
                            duration,
                        },
                        code => Exit {
                            code,
                            signal: None,
                            duration,
                        },
                    };
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500 << attempt)),
            }
        }
        Exit {
            code: None,
            signal: None,
            duration,
        }
    }

    fn started(&self) -> Instant {
        self.process
            .get()
            .and_then(Weak::upgrade)
            .map_or_else(Instant::now, |p| p.started)
    }

    fn killed(&self) -> Exit {
        Exit {
            code: None,
            signal: Some(libc::SIGKILL),
            duration: self.started().elapsed(),
        }
    }

    /// Stops following a program that could not be stopped (its host unreachable): its
    /// end is unknown, not a kill that did not happen; it is ended once the host answers.
    fn give_up(&self) {
        self.hosts.cleanups.add(&self.key, &self.host, false);
        self.finish(Exit {
            code: None,
            signal: None,
            duration: self.started().elapsed(),
        });
    }

    /// The end: what is left of unfinished lines, then the exit.
    fn finish(&self, exit: Exit) {
        self.drop_followers();
        let carries = {
            let mut st = self.lock();
            if st.done {
                return;
            }
            st.done = true;
            std::mem::take(&mut st.carry)
        };
        self.traffic.connected.fetch_sub(1, Ordering::Relaxed);
        for (pipe, data) in carries.into_iter().enumerate() {
            if !data.is_empty() {
                let pipe = PIPES[pipe];
                self.processes
                    .deliver(self.sink.clone(), self.id, ProcEvent::Lines { pipe, data });
            }
        }
        if let Some(process) = self.process.get().and_then(Weak::upgrade) {
            process.set_exit(exit);
        }
        log::info!("process {}: ended on {}", self.id, self.host.name);
        self.processes
            .deliver(self.sink.clone(), self.id, ProcEvent::Exited(exit));
    }

    fn release(&self, pipe: usize, upto: u64) {
        let args = [self.key.clone(), FILES[pipe].to_string(), upto.to_string()];
        let _ = self
            .hosts
            .control(&self.host, scripts::RELEASE, &args, b"", CONTROL_TIMEOUT);
    }
}

impl ProcessSink for Link {
    /// A follower's output: its stdout is the program's, whole lines passed on and
    /// counted; its stderr is ssh's own words about the connection.
    fn on_process_event(&self, process: u64, event: ProcEvent) {
        let mut st = self.lock();
        let pipe = st
            .followers
            .iter()
            .position(|f| f.as_ref().is_some_and(|f| f.id == process));
        match (pipe, event) {
            (_, ProcEvent::Exited(exit)) => {
                drop(st);
                let _ = self.events.send(LinkEvent::Ended { process, exit });
            }
            (
                Some(pipe),
                ProcEvent::Lines {
                    pipe: Pipe::Stdout,
                    data,
                },
            ) => {
                // The bulk is passed on as it came; only an unfinished line at its end
                // is copied aside (or, behind one already waiting, the chunk joins it).
                let mut data = data;
                let carry = &mut st.carry[pipe];
                if !carry.is_empty() {
                    carry.extend_from_slice(&data);
                    data = std::mem::take(carry);
                }
                let cut = match data.iter().rposition(|&b| b == b'\n') {
                    Some(at) => at + 1,
                    None if data.len() >= self.max_line => data.len(),
                    None => {
                        *carry = data;
                        return;
                    }
                };
                *carry = data.split_off(cut);
                let before = st.offsets[pipe];
                st.offsets[pipe] += data.len() as u64;
                let after = st.offsets[pipe];
                drop(st);
                self.traffic
                    .bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if before / RELEASE_EVERY != after / RELEASE_EVERY {
                    let upto = after / RELEASE_EVERY * RELEASE_EVERY;
                    let _ = self.events.send(LinkEvent::Release { pipe, upto });
                }
                let pipe = PIPES[pipe];
                self.sink
                    .on_process_event(self.id, ProcEvent::Lines { pipe, data });
            }
            (
                Some(_),
                ProcEvent::Lines {
                    pipe: Pipe::Stderr,
                    data,
                },
            ) => {
                let text = String::from_utf8_lossy(&data);
                if let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                    log::info!("process {}: ssh says: {last}", self.id);
                    st.said = Some(last.trim().to_string());
                }
            }
            // Lines of a follower given up on: the next one reads them again.
            _ => {}
        }
    }
}

impl RemoteIo for Link {
    fn write(&self, bytes: Vec<u8>) -> Result<(), StdinError> {
        let mut st = self.lock();
        if st.starting {
            // Kept for the program, in order, until its start there is done.
            if st.early_input.len() + bytes.len() > EARLY_INPUT && !st.early_input.is_empty() {
                return Err(StdinError::Full);
            }
            st.early_input.extend_from_slice(&bytes);
            return Ok(());
        }
        match (&st.followers[0], st.connected) {
            (Some(follower), true) => follower.write_stdin(bytes).map_err(|err| match err {
                StdinError::Full => StdinError::Full,
                _ => StdinError::Disconnected,
            }),
            _ if st.done => Err(StdinError::Closed),
            _ => Err(StdinError::Disconnected),
        }
    }

    fn signal(&self, signal: libc::c_int) {
        {
            let mut st = self.lock();
            if st.starting {
                // Sent once the program has a group there (a kill outranks the rest).
                if st.early_signal != Some(libc::SIGKILL) {
                    st.early_signal = Some(signal);
                }
                return;
            }
        }
        let name = match signal {
            libc::SIGINT => "INT",
            libc::SIGTERM => "TERM",
            libc::SIGKILL => "KILL",
            libc::SIGHUP => "HUP",
            libc::SIGQUIT => "QUIT",
            libc::SIGUSR1 => "USR1",
            libc::SIGUSR2 => "USR2",
            _ => return,
        };
        let (hosts, host) = (self.hosts.clone(), self.host.clone());
        let args = [self.key.clone(), name.to_string()];
        let id = self.id;
        // Never on the caller's thread: it may hold the worker's lock, and the host may
        // take seconds to answer, or never.
        let sent = std::thread::Builder::new()
            .name(format!("remote-{id}-signal"))
            .spawn(move || {
                if let Err(err) = hosts.control(&host, scripts::SIGNAL, &args, b"", CONTROL_TIMEOUT)
                {
                    log::warn!("process {id}: SIG{} not delivered: {err:?}", args[1]);
                }
            });
        if let Err(err) = sent {
            log::warn!("process {id}: no thread to send a signal: {err}");
        }
    }

    fn abandon(&self) {
        let _ = self.events.send(LinkEvent::Abandon);
    }
}
