//! Shared helpers for the integration tests.

#![allow(dead_code)]

pub mod mock_llm;
pub mod remote;
pub mod server;
pub mod sshd;
pub mod terminal;
pub mod turns;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

/// A uniquely named folder under `std::env::temp_dir()`, removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `TMP/workerhub-PREFIX-PID-NANOS-N`.
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "workerhub-{prefix}-{}-{nanos}-{n}",
            std::process::id()
        ));
        fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (if needed) and returns the sub-folder `name`.
    pub fn subdir(&self, name: &str) -> io::Result<PathBuf> {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("WORKERHUB_KEEP_TEMP").is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// What a finished CLI run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` if the process had to be killed after the timeout.
    pub status: Option<ExitStatus>,
    /// Every stdout line, in order.
    pub stdout_lines: Vec<String>,
    /// When each stdout line arrived, counted from the start.
    pub line_times: Vec<Duration>,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl RunOutput {
    /// The exit code, or `None` if killed by a signal or timed out.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|status| status.code())
    }

    /// The signal that ended the process, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|status| status.signal())
    }

    /// Stdout joined back with newlines (each line ends with `\n`).
    pub fn stdout(&self) -> String {
        let mut out = String::new();
        for line in &self.stdout_lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The stdout lines that parse as JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        parse_json_lines(&self.stdout_lines)
    }

    /// A short description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status={:?} timed_out={} elapsed={:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status,
            self.timed_out,
            self.elapsed,
            self.stdout(),
            self.stderr
        )
    }
}

/// Parses the lines that are JSON objects, skipping any others.
pub fn parse_json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

/// A running CLI in its own process group, with stdout read line by line.
pub struct CliProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<(Instant, String)>,
    stderr: Receiver<String>,
    stdout_seen: Vec<(Instant, String)>,
    started: Instant,
}

impl CliProcess {
    /// Starts `program args` in `cwd` with a clean environment: only `PATH` from
    /// this process, `LANG=C.UTF-8`, then `env`. Stdin is a pipe if
    /// `pipe_stdin`, else `/dev/null`.
    pub fn spawn<S: AsRef<OsStr>>(
        program: &Path,
        args: &[S],
        cwd: &Path,
        env: &[(String, String)],
        pipe_stdin: bool,
    ) -> io::Result<CliProcess> {
        let mut command = Command::new(program);
        command.args(args).current_dir(cwd).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.env("LANG", "C.UTF-8");
        for (key, value) in env {
            command.env(key, value);
        }
        command
            .stdin(if pipe_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout pipe"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr pipe"))?;
        Ok(CliProcess {
            child,
            stdin,
            stdout: read_lines(stdout)?,
            stderr: read_chunks(stderr)?,
            stdout_seen: Vec::new(),
            started: Instant::now(),
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Writes one line (a `\n` is added) to stdin and flushes.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin is not a pipe or already closed"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The next stdout line; `Err(Timeout)` if none within `timeout`,
    /// `Err(Disconnected)` once stdout is closed.
    pub fn next_line(&mut self, timeout: Duration) -> Result<String, RecvTimeoutError> {
        let (at, line) = self.stdout.recv_timeout(timeout)?;
        self.stdout_seen.push((at, line.clone()));
        Ok(line)
    }

    /// Reads stdout lines until one is a JSON object for which `pred` is true;
    /// `None` on timeout or end of stdout.
    pub fn wait_for_json(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left).ok()?;
            if let Ok(value) = serde_json::from_str::<Value>(line.trim())
                && pred(&value)
            {
                return Some(value);
            }
        }
    }

    /// The stdout lines read so far through [`CliProcess::next_line`].
    pub fn lines_seen(&self) -> Vec<String> {
        self.stdout_seen
            .iter()
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// True if the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the process only (not its group).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Sends `signal` to the whole process group.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) on the process group we created with process_group(0).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), signal);
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }

    /// Closes stdin, waits up to `timeout` for the exit (killing the process group
    /// after it), then collects the rest of stdout and stderr.
    pub fn finish(mut self, timeout: Duration) -> RunOutput {
        self.close_stdin();
        let status = self.wait_timeout(timeout);
        let timed_out = status.is_none();
        if timed_out {
            // Killed on timeout: the status stays `None`.
            self.signal_group(libc::SIGKILL);
            let _ = self.wait_timeout(Duration::from_secs(5));
        }
        let elapsed = self.started.elapsed();
        // Children left in the group may still hold the pipes open.
        let drain_deadline = Instant::now() + Duration::from_secs(3);
        let mut timed_lines = std::mem::take(&mut self.stdout_seen);
        let mut killed_group = false;
        loop {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            match self
                .stdout
                .recv_timeout(left.min(Duration::from_millis(500)))
            {
                Ok(timed_line) => timed_lines.push(timed_line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if !killed_group {
                        self.signal_group(libc::SIGKILL);
                        killed_group = true;
                    } else if left.is_zero() {
                        break;
                    }
                }
            }
        }
        let mut stderr = String::new();
        while let Ok(chunk) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            stderr.push_str(&chunk);
        }
        let started = self.started;
        RunOutput {
            status,
            line_times: timed_lines
                .iter()
                .map(|(at, _)| at.saturating_duration_since(started))
                .collect(),
            stdout_lines: timed_lines.into_iter().map(|(_, line)| line).collect(),
            stderr,
            elapsed,
            timed_out,
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal_group(libc::SIGKILL);
            let _ = self.wait_timeout(Duration::from_secs(5));
        }
    }
}

fn read_lines(source: impl Read + Send + 'static) -> io::Result<Receiver<(Instant, String)>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    thread::Builder::new()
        .name("cli-stdout".to_string())
        .spawn(move || {
            let mut reader = BufReader::new(source);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']).to_string();
                        if tx.send((Instant::now(), line)).is_err() {
                            break;
                        }
                    }
                }
            }
        })?;
    Ok(rx)
}

fn read_chunks(mut source: impl Read + Send + 'static) -> io::Result<Receiver<String>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    thread::Builder::new()
        .name("cli-stderr".to_string())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match source.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        })?;
    Ok(rx)
}

/// Runs `program args` in `cwd` with `env` (see [`CliProcess::spawn`]), stdin
/// `/dev/null`, killing its process group after `timeout`.
pub fn run_cli<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> io::Result<RunOutput> {
    Ok(CliProcess::spawn(program, args, cwd, env, false)?.finish(timeout))
}
