//! The one place that spawns, feeds, signals and reaps child processes.
//!
//! Each child runs in its own process group with its own reader thread per output pipe.
//! Readers send complete lines, many per message, into the bounded broadcast channel, so
//! a child that prints faster than workerhub can store is slowed by its full pipe rather
//! than by growing memory. A waiter thread notices the exit, gives the readers a short
//! grace to drain what is left (a grandchild may hold the pipe open forever), kills
//! whatever is left of the group, reaps the child, and reports the exit after the last
//! line.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::event::Pipe;
use crate::sys::{self, EventFd};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Variables added to the child's environment (see `env::ChildEnv` for the rest).
    pub env: Vec<(String, String)>,
    /// Whether the child gets a stdin pipe (otherwise /dev/null).
    pub stdin: bool,
}

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

    /// The exit as event fields: `exit_code`, or `signal` with its name.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        if let Some(code) = self.code {
            map.insert("exit_code".into(), code.into());
        }
        if let Some(sig) = self.signal {
            map.insert("signal".into(), sig.into());
            map.insert("signal_name".into(), signal_name(sig).into());
        }
        map
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
    Exited(Exit),
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
}

pub struct Process {
    pub id: u64,
    pub pid: u32,
    pub started: Instant,
    stdin: Mutex<Option<Stdin>>,
    exit: Arc<(Mutex<Option<Exit>>, Condvar)>,
}

static NEXT_PROCESS: AtomicU64 = AtomicU64::new(1);

impl Process {
    /// Starts `spec` with `env` as its whole environment; its lines and exit go to
    /// `sink` through `output`.
    pub fn spawn(
        spec: &ProcessSpec,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
        sink: Arc<dyn ProcessSink>,
        output: &OutputTx,
        config: ProcessConfig,
    ) -> io::Result<Arc<Process>> {
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
            .env("PWD", &spec.cwd)
            .stdin(if spec.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn()?;
        let pid = child.id();
        let id = NEXT_PROCESS.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        log::info!("process {id}: started pid {pid}: {}", spec.argv.join(" "));

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
                max_line: config.max_line,
                _done: done_tx.clone(),
            };
            readers.push(
                std::thread::Builder::new()
                    .name(format!("proc-{id}-{}", pipe.as_str()))
                    .stack_size(128 * 1024)
                    .spawn(move || read_pipe(ctx))?,
            );
        }
        drop(done_tx);

        let stdin = match child.stdin.take() {
            Some(pipe) => Some(Stdin::start(id, File::from(OwnedFd::from(pipe)))?),
            None => None,
        };

        let process = Arc::new(Process {
            id,
            pid,
            started,
            stdin: Mutex::new(stdin),
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
        };
        std::thread::Builder::new()
            .name(format!("proc-{id}-wait"))
            .stack_size(128 * 1024)
            .spawn(move || waiter.run())?;
        Ok(process)
    }

    /// Writes bytes to the child's stdin without blocking: straight into the pipe when
    /// it has room and nothing is queued before them (the common case: no thread hop on
    /// the way to the child), otherwise queued for the stdin thread, in order.
    pub fn write_stdin(&self, bytes: Vec<u8>) -> Result<(), StdinError> {
        let mut guard = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(stdin) => stdin.write(bytes),
            None => Err(StdinError::Closed),
        }
    }

    /// Closes the child's stdin: what is queued is still written while the child takes
    /// it without waiting; once the pipe is full, the rest is dropped.
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Sends `signal` to the child's whole process group, unless it has been reaped.
    pub fn signal(&self, signal: libc::c_int) {
        let exited = self.exit.0.lock().unwrap_or_else(|p| p.into_inner());
        if exited.is_none() {
            sys::kill_group(self.pid, signal);
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
        log::info!("process {}: sending SIGTERM to group {}", self.id, self.pid);
        self.signal(libc::SIGTERM);
        if let Some(exit) = self.wait_timeout(grace) {
            return Some(exit);
        }
        log::warn!(
            "process {}: still running {:.1}s after SIGTERM; sending SIGKILL to group {}",
            self.id,
            grace.as_secs_f64(),
            self.pid
        );
        self.signal(libc::SIGKILL);
        let exit = self.wait_timeout(Duration::from_secs(2));
        if exit.is_none() {
            log::error!("process {}: not reaped 2s after SIGKILL", self.id);
        }
        exit
    }
}

/// The child's stdin: a non-blocking pipe written directly by `Process::write_stdin`, and
/// a thread that writes what the pipe did not take at once, waiting for room.
struct Stdin {
    pipe: File,
    backlog: Sender<Vec<u8>>,
    /// Bytes handed to the thread and not yet written: while there are any, new bytes
    /// must queue behind them.
    queued: Arc<AtomicUsize>,
    /// Wakes the thread when stdin is closed, so a child that never reads cannot hold it.
    wake: Arc<EventFd>,
}

/// How many bytes may wait for a child that does not read its stdin (one message of
/// any size is always taken).
const STDIN_BACKLOG_BYTES: usize = 8 << 20;

impl Stdin {
    fn start(process: u64, pipe: File) -> io::Result<Stdin> {
        sys::set_nonblocking(pipe.as_raw_fd(), true)?;
        let (backlog, rx) = unbounded::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(EventFd::new()?);
        let mut thread_pipe = pipe.try_clone()?;
        let (thread_queued, thread_wake) = (queued.clone(), wake.clone());
        std::thread::Builder::new()
            .name(format!("proc-{process}-stdin"))
            .stack_size(128 * 1024)
            .spawn(move || {
                for bytes in rx {
                    if !write_waiting(&mut thread_pipe, &bytes, &thread_wake) {
                        // The child's end is gone: later writes go straight to the pipe
                        // and are refused as closed, not as a full backlog.
                        thread_queued.store(0, Ordering::SeqCst);
                        break;
                    }
                    thread_queued.fetch_sub(bytes.len(), Ordering::SeqCst);
                }
            })?;
        Ok(Stdin {
            pipe,
            backlog,
            queued,
            wake,
        })
    }

    fn write(&mut self, bytes: Vec<u8>) -> Result<(), StdinError> {
        let queued = self.queued.load(Ordering::SeqCst);
        if queued > 0 && queued + bytes.len() > STDIN_BACKLOG_BYTES {
            return Err(StdinError::Full);
        }
        let mut written = 0;
        if queued == 0 {
            while written < bytes.len() {
                match self.pipe.write(&bytes[written..]) {
                    Ok(n) => written += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return Err(StdinError::Closed),
                }
            }
            if written == bytes.len() {
                return Ok(());
            }
        }
        let rest = if written == 0 {
            bytes
        } else {
            bytes[written..].to_vec()
        };
        // Counted before it is sent; the thread subtracts it once written.
        let len = rest.len();
        self.queued.fetch_add(len, Ordering::SeqCst);
        if self.backlog.send(rest).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return Err(StdinError::Closed);
        }
        Ok(())
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        // The thread finishes what is queued (the backlog sender goes with `self`), unless
        // the pipe stays full: then the wake lets it give up instead of waiting forever.
        self.wake.signal();
    }
}

/// Writes all of `bytes` to the non-blocking `pipe`, waiting for room; false when the
/// child's end is gone, or stdin was closed while the pipe stayed full.
fn write_waiting(pipe: &mut File, bytes: &[u8], wake: &EventFd) -> bool {
    let mut written = 0;
    while written < bytes.len() {
        match pipe.write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match sys::wait_writable(pipe.as_raw_fd(), wake, None) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return false,
                }
            }
            Err(_) => return false,
        }
    }
    true
}

struct ReaderCtx {
    pipe: Pipe,
    fd: OwnedFd,
    wake: Arc<EventFd>,
    sink: Arc<dyn ProcessSink>,
    process: u64,
    output: OutputTx,
    max_line: usize,
    /// Dropped when the reader ends, which the waiter notices.
    _done: Sender<()>,
}

fn read_pipe(ctx: ReaderCtx) {
    let raw = ctx.fd.as_raw_fd();
    if sys::set_nonblocking(raw, true).is_err() {
        return;
    }
    let mut file = File::from(ctx.fd);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let send = |data: Vec<u8>| {
        ctx.output
            .send(Output {
                sink: ctx.sink.clone(),
                process: ctx.process,
                event: ProcEvent::Lines {
                    pipe: ctx.pipe,
                    data,
                },
            })
            .is_ok()
    };
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                if let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') {
                    let rest = pending.split_off(last_newline + 1);
                    if !send(std::mem::replace(&mut pending, rest)) {
                        return;
                    }
                }
                while pending.len() >= ctx.max_line {
                    let rest = pending.split_off(ctx.max_line);
                    if !send(std::mem::replace(&mut pending, rest)) {
                        return;
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match sys::wait_readable(raw, &ctx.wake, None) {
                    Ok(true) => {}
                    // Woken: the process is gone and its drain grace is over.
                    Ok(false) | Err(_) => break,
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !pending.is_empty() {
        send(pending);
    }
}

struct Waiter {
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
        if !drained {
            log::info!(
                "process {}: output still open {:.1}s after exit; dropping the rest",
                self.process.id,
                self.drain_grace.as_secs_f64()
            );
            self.wake.signal();
        }
        let status = self.child.wait();
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
