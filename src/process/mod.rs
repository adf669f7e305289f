//! The one place that spawns, feeds, signals and reaps child processes.
//!
//! Each child is forked by one thread (`launcher`, so it can die with the server), runs
//! in its own process group, is written down in the ledger (`ledger`) until it is
//! reaped, gets an environment built on purpose (`env`), and has its own reader thread
//! per output pipe (`pipes`) and, when it takes input, a stdin thread (`stdin`). A
//! waiter thread notices the exit, gives the readers a short grace to drain what is left
//! (a grandchild may hold the pipe open forever), kills whatever is left of the group,
//! reaps the child, and reports the exit after the last line. The lines and exits of
//! every child go, in order, through one bounded channel to the broadcast thread
//! (`broadcast`), which hands each to its owner.

pub mod bounded;
pub mod broadcast;
pub mod env;
pub mod launcher;
pub mod ledger;
mod pipes;
pub mod pty;
mod stdin;

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use crate::event::{ExitFields, Pipe, TerminalSize};
use crate::sys::{self, EventFd};
use launcher::Launcher;
use ledger::{Ledger, Owner};
use pipes::{ReaderCtx, read_pipe};
use stdin::Stdin;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Variables added to the child's environment (see `env::ChildEnv` for the rest).
    pub env: Vec<(String, String)>,
    /// Whether the child gets a stdin pipe (otherwise /dev/null).
    pub stdin: bool,
    /// Its lines are whole protocol messages (a live session's JSON): kept whole up to
    /// 64 MiB rather than cut at `max_line`, since a cut request would never be
    /// answered and its turn would wait for nothing.
    pub long_lines: bool,
}

/// The longest line of a process whose lines are protocol messages.
pub const MAX_PROTOCOL_LINE: usize = 64 << 20;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The exit as events carry it: `exit_code`, or `signal` with its name.
    pub fn fields(&self) -> ExitFields {
        ExitFields {
            exit_code: self.code,
            signal: self.signal,
            signal_name: self.signal.map(signal_name),
        }
    }
}

/// A command line for the log: its first 160 characters (an ssh command carries a
/// whole script).
fn shown_command(argv: &[String]) -> String {
    let line = argv.join(" ");
    match line.char_indices().nth(160) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGABRT => "SIGABRT".into(),
        other => format!("signal {other}"),
    }
}

/// What a process reports to its owner, in order: lines, then its exit.
pub enum ProcEvent {
    /// One or more lines from one pipe. Each ends with `\n`, except a last one cut at the
    /// line limit or at end of output.
    Lines {
        pipe: Pipe,
        data: Vec<u8>,
    },
    /// Bytes from a terminal child (`pty`), no UTF-8 character cut in two.
    Terminal(Vec<u8>),
    Exited(Exit),
    /// A process on another host can no longer be reached (its ssh connection died);
    /// it may still run there. Lines and the exit follow once it is reached again.
    Disconnected {
        reason: String,
    },
    /// It is reached again after `Disconnected`.
    Reconnected,
    /// A program on another host could not be started there (instead of an exit).
    StartFailed(crate::error::Error),
}

/// The owner of a process's output (a worker, a one-off command).
pub trait ProcessSink: Send + Sync {
    fn on_process_event(&self, process: u64, event: ProcEvent);
}

/// A message on the broadcast channel.
pub struct Output {
    pub sink: Arc<dyn ProcessSink>,
    pub process: u64,
    pub event: ProcEvent,
}

pub type OutputTx = Sender<Output>;

#[derive(Clone, Copy, Debug)]
pub struct ProcessConfig {
    /// A line longer than this is passed on in pieces of this size.
    pub max_line: usize,
    /// After the child exits, how long its pipes may still be read (a grandchild may hold
    /// them open) before what is left of its group is killed.
    pub drain_grace: Duration,
}

#[derive(Debug)]
pub enum StdinError {
    /// The process has no stdin, or it was closed, or the process is gone.
    Closed,
    /// The process is not reading its stdin and the backlog is full.
    Full,
    /// The process runs on a host that cannot be reached right now.
    Disconnected,
}

/// How a process on another host is fed and signalled (`hosts::remote`): its input and
/// signals travel over ssh, and it reports its exit itself (`Process::set_exit`).
pub trait RemoteIo: Send + Sync {
    /// Writes to the remote program's stdin, or refuses while the host is unreachable.
    fn write(&self, bytes: Vec<u8>) -> Result<(), StdinError>;
    /// Sends `signal` to the remote process group (over the control connection; never
    /// waits for the network).
    fn signal(&self, signal: libc::c_int);
    /// Gives up on a process that could not be stopped (its host unreachable): it is
    /// reported as ended, killed, and no longer followed.
    fn abandon(&self);
}

/// How a process takes its input and signals.
enum Io {
    /// A child of this server: its stdin pipe, and signals to its group.
    Local(Mutex<Option<Stdin>>),
    /// A program on another host. `order` keeps what a caller numbers before writing in
    /// the same order as the writes.
    Remote {
        order: Mutex<()>,
        link: Arc<dyn RemoteIo>,
    },
}

pub struct Process {
    pub id: u64,
    /// The process id here, or on its host (its process group there, 0 until its
    /// start there is done).
    pid: AtomicU32,
    pub started: Instant,
    io: Io,
    /// The pseudo-terminal of a terminal child (`pty.rs`).
    terminal: Option<pty::Terminal>,
    exit: Arc<(Mutex<Option<Exit>>, Condvar)>,
}

static NEXT_PROCESS: AtomicU64 = AtomicU64::new(1);

/// A number for a new process, unique in this server.
pub fn next_process_id() -> u64 {
    NEXT_PROCESS.fetch_add(1, Ordering::Relaxed)
}

/// What starting a child takes, shared by every worker and command: the launcher
/// thread, the ledger, and the channel to the broadcast thread.
#[derive(Clone)]
pub struct Processes {
    launcher: Arc<Launcher>,
    ledger: Arc<Ledger>,
    output: OutputTx,
    config: ProcessConfig,
}

impl Processes {
    pub fn new(
        launcher: Launcher,
        ledger: Ledger,
        output: OutputTx,
        config: ProcessConfig,
    ) -> Processes {
        Processes {
            launcher: Arc::new(launcher),
            ledger: Arc::new(ledger),
            output,
            config,
        }
    }

    /// The longest line passed on whole for `spec`'s process.
    pub fn max_line(&self, spec: &ProcessSpec) -> usize {
        if spec.long_lines {
            MAX_PROTOCOL_LINE
        } else {
            self.config.max_line
        }
    }

    /// Hands `event` to `sink` on the broadcast thread, after everything sent before it
    /// (a remote process reports this way what no local child reports for it).
    pub fn deliver(&self, sink: Arc<dyn ProcessSink>, process: u64, event: ProcEvent) {
        let _ = self.output.send(Output {
            sink,
            process,
            event,
        });
    }

    /// Starts `spec` for `owner` with `env` as its whole environment; its lines and exit
    /// go to `sink` through the broadcast channel.
    pub fn spawn(
        &self,
        spec: &ProcessSpec,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
        sink: Arc<dyn ProcessSink>,
        owner: Owner,
    ) -> io::Result<Arc<Process>> {
        self.start(spec, env, sink, owner, None)
    }

    /// As `spawn`, in a pseudo-terminal of `size` (`pty.rs`): its output comes as
    /// `ProcEvent::Terminal` bytes, its stdin is the terminal.
    pub fn spawn_terminal(
        &self,
        spec: &ProcessSpec,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
        sink: Arc<dyn ProcessSink>,
        owner: Owner,
        size: TerminalSize,
    ) -> io::Result<Arc<Process>> {
        self.start(spec, env, sink, owner, Some(size))
    }

    fn start(
        &self,
        spec: &ProcessSpec,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
        sink: Arc<dyn ProcessSink>,
        owner: Owner,
        terminal: Option<TerminalSize>,
    ) -> io::Result<Arc<Process>> {
        let (output, config) = (&self.output, self.config);
        let Some((program, args)) = spec.argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&spec.cwd)
            .env_clear()
            .envs(env)
            // As a shell would: some programs (OpenCode) take their folder from PWD.
            .env("PWD", &spec.cwd);
        let pty = terminal.map(pty::Pty::open).transpose()?;
        match &pty {
            Some(pty) => pty.prepare(&mut command)?,
            None => {
                command
                    .stdin(if spec.stdin {
                        Stdio::piped()
                    } else {
                        Stdio::null()
                    })
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0);
            }
        }
        let mut child = self.launcher.spawn(command)?;
        let pid = child.id();
        self.ledger.add(pid, owner);
        let id = next_process_id();
        let started = Instant::now();
        log::info!(
            "process {id}: started pid {pid}: {}",
            shown_command(&spec.argv)
        );

        let wake = Arc::new(EventFd::new()?);
        let (done_tx, done_rx) = bounded::<()>(0);
        let mut readers = Vec::new();
        for (pipe, fd) in [
            (Pipe::Stdout, child.stdout.take().map(OwnedFd::from)),
            (Pipe::Stderr, child.stderr.take().map(OwnedFd::from)),
        ] {
            let Some(fd) = fd else { continue };
            let ctx = ReaderCtx {
                pipe,
                fd,
                wake: wake.clone(),
                sink: sink.clone(),
                process: id,
                output: output.clone(),
                max_line: self.max_line(spec),
                _done: done_tx.clone(),
            };
            readers.push(
                std::thread::Builder::new()
                    .name(format!("proc-{id}-{}", pipe.as_str()))
                    .stack_size(128 * 1024)
                    .spawn(move || read_pipe(ctx))?,
            );
        }
        let (terminal, terminal_input) = match pty {
            Some(pty) => {
                let (terminal, input, reader) = pty.start(pty::ReaderCtx {
                    wake: wake.clone(),
                    sink: sink.clone(),
                    process: id,
                    output: output.clone(),
                    _done: done_tx.clone(),
                })?;
                readers.push(reader);
                (Some(terminal), Some(input))
            }
            None => (None, None),
        };
        drop(done_tx);

        let stdin = match child.stdin.take() {
            Some(pipe) => Some(Stdin::start(id, File::from(OwnedFd::from(pipe)))?),
            None => terminal_input.map(|t| Stdin::start(id, t)).transpose()?,
        };

        let process = Arc::new(Process {
            id,
            pid: AtomicU32::new(pid),
            started,
            io: Io::Local(Mutex::new(stdin)),
            terminal,
            exit: Arc::new((Mutex::new(None), Condvar::new())),
        });
        let waiter = Waiter {
            child,
            process: process.clone(),
            readers,
            done_rx,
            wake,
            sink,
            output: output.clone(),
            drain_grace: config.drain_grace,
            ledger: self.ledger.clone(),
        };
        std::thread::Builder::new()
            .name(format!("proc-{id}-wait"))
            .stack_size(128 * 1024)
            .spawn(move || waiter.run())?;
        Ok(process)
    }
}

impl Process {
    /// A program on another host, run by `hosts::remote`; its process group there is
    /// known once its start there is done (`set_pid`).
    pub fn remote(id: u64, link: Arc<dyn RemoteIo>) -> Process {
        Process {
            id,
            pid: AtomicU32::new(0),
            started: Instant::now(),
            io: Io::Remote {
                order: Mutex::new(()),
                link,
            },
            terminal: None,
            exit: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    /// Its process id (its process group on another host), once known.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
    }

    /// A remote program's process group, once its host said.
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Whether it runs on another host.
    pub fn is_remote(&self) -> bool {
        matches!(self.io, Io::Remote { .. })
    }

    /// Records how a remote program ended (once) and wakes whoever waits for it.
    pub fn set_exit(&self, exit: Exit) {
        let (lock, cvar) = &*self.exit;
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(exit);
        }
        cvar.notify_all();
    }

    /// Writes bytes to the child's stdin without blocking: straight into the pipe when
    /// it has room and nothing is queued before them (the common case: no thread hop on
    /// the way to the child), otherwise queued for the stdin thread, in order.
    pub fn write_stdin(&self, bytes: Vec<u8>) -> Result<(), StdinError> {
        self.write_stdin_after(bytes, || ()).0
    }

    /// Runs `before`, then writes `bytes`, both under the stdin's lock: whatever
    /// `before` numbers (a `user_message` event), the child gets in the same order.
    pub fn write_stdin_after<T>(
        &self,
        bytes: Vec<u8>,
        before: impl FnOnce() -> T,
    ) -> (Result<(), StdinError>, T) {
        match &self.io {
            Io::Local(stdin) => {
                let mut guard = stdin.lock().unwrap_or_else(|p| p.into_inner());
                let done = before();
                let written = match guard.as_mut() {
                    Some(stdin) => stdin.write(bytes),
                    None => Err(StdinError::Closed),
                };
                (written, done)
            }
            Io::Remote { order, link } => {
                let _order = order.lock().unwrap_or_else(|p| p.into_inner());
                let done = before();
                let written = match self.exit() {
                    Some(_) => Err(StdinError::Closed),
                    None => link.write(bytes),
                };
                (written, done)
            }
        }
    }

    /// Closes the child's stdin: what is queued is still written while the child takes
    /// it without waiting; once the pipe is full, the rest is dropped.
    /// A remote program's stdin stays open (it is kept by its host, not by ssh).
    pub fn close_stdin(&self) {
        if let Io::Local(stdin) = &self.io {
            stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// Sends `signal` to the child's whole process group, unless it has been reaped.
    pub fn signal(&self, signal: libc::c_int) {
        let exited = self.exit.0.lock().unwrap_or_else(|p| p.into_inner());
        if exited.is_none() {
            match &self.io {
                Io::Local(_) => {
                    sys::kill_group(self.pid.load(Ordering::Relaxed), signal);
                }
                Io::Remote { link, .. } => link.signal(signal),
            }
        }
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_running(&self) -> bool {
        self.exit().is_none()
    }

    /// Waits up to `timeout` for the child to be reaped.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Exit> {
        let (lock, cvar) = &*self.exit;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |exit| exit.is_none())
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    /// Stops the process: closes stdin and sends SIGTERM to its group, then SIGKILL if
    /// it is still there after `grace`. Returns once it is reaped (or a last bound passed).
    pub fn terminate(&self, grace: Duration) -> Option<Exit> {
        if let Some(exit) = self.exit() {
            return Some(exit);
        }
        self.close_stdin();
        if self.terminal.is_some() {
            // What closing a terminal does: an interactive shell ignores SIGTERM.
            log::info!(
                "process {}: sending SIGHUP to group {:?}",
                self.id,
                self.pid()
            );
            self.signal(libc::SIGHUP);
        }
        log::info!(
            "process {}: sending SIGTERM to group {:?}",
            self.id,
            self.pid()
        );
        self.signal(libc::SIGTERM);
        if let Some(exit) = self.wait_timeout(grace) {
            return Some(exit);
        }
        log::warn!(
            "process {}: still running {:.1}s after SIGTERM; sending SIGKILL to group {:?}",
            self.id,
            grace.as_secs_f64(),
            self.pid()
        );
        self.signal(libc::SIGKILL);
        // A remote group's end is seen over ssh, round trips later (and its followers
        // look for it every 0.2 s): it gets longer.
        let confirm = match self.io {
            Io::Local(_) => Duration::from_secs(2),
            Io::Remote { .. } => Duration::from_secs(10),
        };
        let exit = self.wait_timeout(confirm);
        if exit.is_none() {
            if let Io::Remote { link, .. } = &self.io {
                log::error!(
                    "process {}: its host did not confirm SIGKILL within {}s; it is given up",
                    self.id,
                    confirm.as_secs()
                );
                link.abandon();
                return self.wait_timeout(Duration::from_secs(1));
            }
            log::error!("process {}: not reaped 2s after SIGKILL", self.id);
        }
        exit
    }
}

struct Waiter {
    ledger: Arc<Ledger>,
    child: Child,
    process: Arc<Process>,
    readers: Vec<std::thread::JoinHandle<()>>,
    done_rx: crossbeam_channel::Receiver<()>,
    wake: Arc<EventFd>,
    sink: Arc<dyn ProcessSink>,
    output: OutputTx,
    drain_grace: Duration,
}

impl Waiter {
    fn run(mut self) {
        let pid = self.child.id();
        if let Err(err) = sys::wait_exit_keep_zombie(pid) {
            log::error!("process {}: waitid failed: {err}", self.process.id);
        }
        // The readers end by themselves once every writer of the pipes is gone; a
        // grandchild that keeps them open gets the drain grace, then the group is killed.
        let deadline = Instant::now() + self.drain_grace;
        let drained = matches!(
            self.done_rx.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        // The child is a zombie until reaped below, so its pid (the group id) cannot be
        // reused yet: killing the group here cannot hit an unrelated process.
        sys::kill_group(pid, libc::SIGKILL);
        if self.process.terminal.is_some() {
            // A shell's jobs have groups of their own, in its session.
            sys::kill_session(pid, libc::SIGKILL);
        }
        if !drained {
            log::info!(
                "process {}: output still open {:.1}s after exit; dropping the rest",
                self.process.id,
                self.drain_grace.as_secs_f64()
            );
            self.wake.signal();
        }
        let status = self.child.wait();
        self.ledger.remove(pid);
        let exit = Exit {
            code: status.as_ref().ok().and_then(|s| s.code()),
            signal: status.as_ref().ok().and_then(|s| s.signal()),
            duration: self.process.started.elapsed(),
        };
        {
            let (lock, cvar) = &*self.process.exit;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(exit);
            cvar.notify_all();
        }
        self.process.close_stdin();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        log::info!(
            "process {}: exited ({})",
            self.process.id,
            match (exit.code, exit.signal) {
                (Some(code), _) => format!("code {code}"),
                (None, Some(sig)) => signal_name(sig),
                _ => "unknown".into(),
            }
        );
        let _ = self.output.send(Output {
            sink: self.sink,
            process: self.process.id,
            event: ProcEvent::Exited(exit),
        });
    }
}
