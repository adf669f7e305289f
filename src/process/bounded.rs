//! A short program run to completion within a bound (a `--version` probe, an ssh
//! check): in its own process group, its output read while it runs (so a long text
//! cannot block it) and capped, and the whole group killed when time is up or it has
//! ended (a grandchild holding the pipes cannot hold the caller).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the program printed, and whether it succeeded.
pub struct Output {
    pub success: bool,
    /// Its exit code (None when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How long the streams may still be read once the program has ended.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The most read of each stream.
const MAX_OUTPUT: u64 = 1 << 20;

/// Runs `program args` for at most `timeout`; an error says it could not start or did
/// not end in time.
pub fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Output, String> {
    let raw = run_with(program, args, &Options::new(timeout))?;
    Ok(Output {
        success: raw.success(),
        code: raw.code,
        stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
    })
}

/// Where and how a program of [`run_with`] runs.
pub struct Options<'a> {
    pub timeout: Duration,
    /// Its working folder (the server's when None).
    pub cwd: Option<&'a Path>,
    /// Variables set for it, on top of the server's (or alone, with `clear_env`).
    pub env: Vec<(OsString, OsString)>,
    /// It inherits nothing of the server's environment.
    pub clear_env: bool,
    /// Written to its stdin, which is then closed (/dev/null when empty).
    pub stdin: &'a [u8],
    /// Variables taken away from what it inherits.
    pub env_remove: &'a [&'a str],
    /// The most read of each stream; what is past it is dropped (`truncated`).
    pub max_output: u64,
}

impl Options<'_> {
    pub fn new(timeout: Duration) -> Options<'static> {
        Options {
            timeout,
            cwd: None,
            env: Vec::new(),
            clear_env: false,
            stdin: &[],
            env_remove: &[],
            max_output: MAX_OUTPUT,
        }
    }
}

/// What a program of [`run_with`] printed, as bytes, and how it ended.
pub struct RawOutput {
    /// Its exit code (None when a signal ended it).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Its stdout was longer than `max_output`.
    pub truncated: bool,
}

impl RawOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `program args` as `options` say, for at most `options.timeout`, its output read
/// as bytes while it runs; an error says it could not start or did not end in time.
pub fn run_with(program: &Path, args: &[String], options: &Options) -> Result<RawOutput, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if options.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = options.cwd {
        command.current_dir(cwd);
    }
    if options.clear_env {
        command.env_clear();
    }
    for name in options.env_remove {
        command.env_remove(name);
    }
    command.envs(options.env.iter().map(|(k, v)| (k, v)));
    let mut child = command
        .spawn()
        .map_err(|e| format!("{} cannot be started: {e}", program.display()))?;
    if let Some(mut pipe) = child.stdin.take() {
        // Written on a thread: a program that does not read cannot hold the caller
        // past the deadline (its group is killed, which closes the pipe).
        let bytes = options.stdin.to_vec();
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &bytes);
        });
    }
    // Each stream is read into a buffer of its own while the program runs, so that a
    // long text cannot block it, and what was read is taken even when something that
    // left its process group (a daemon it started) holds the pipe open for good.
    let max = options.max_output;
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(2);
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        let buffer = Arc::new(Mutex::new((Vec::new(), false)));
        let (filled, done) = (buffer.clone(), done_tx.clone());
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            let mut buffer = filled.lock().unwrap_or_else(|p| p.into_inner());
                            let room = (max as usize).saturating_sub(buffer.0.len());
                            // Past the cap it is read and dropped, so the program is not
                            // blocked on a full pipe.
                            buffer.0.extend_from_slice(&chunk[..n.min(room)]);
                            buffer.1 |= n > room;
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            let _ = done.send(());
        });
        buffer
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    drop(done_tx);
    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => break None,
        }
    };
    crate::sys::kill_group(child.id(), libc::SIGKILL);
    if status.is_none() {
        let _ = child.wait();
    }
    let drained = Instant::now() + DRAIN_GRACE;
    for _ in 0..2 {
        if done_rx.recv_deadline(drained).is_err() {
            break;
        }
    }
    let take = |buffer: &Arc<Mutex<(Vec<u8>, bool)>>| {
        std::mem::take(&mut *buffer.lock().unwrap_or_else(|p| p.into_inner()))
    };
    let ((stdout, truncated), (stderr, _)) = (take(&out), take(&err));
    match status {
        Some(status) => Ok(RawOutput {
            code: status.code(),
            stdout,
            stderr,
            truncated,
        }),
        None => Err(format!(
            "`{shown}` did not answer within {}s",
            options.timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_holding_the_pipes_cannot_hold_the_caller() {
        // The program prints its answer and leaves a process of another session (out of
        // reach of the group kill) holding its stdout and stderr.
        let args = ["-c", "echo 1.2.3; setsid sleep 5 & exit 0"].map(String::from);
        let started = Instant::now();
        let out = run_with(
            Path::new("sh"),
            &args,
            &Options::new(Duration::from_secs(10)),
        )
        .expect("it ran");
        assert!(out.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.2.3");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
