//! A short program run to completion within a bound (a `--version` probe, an ssh
//! check): in its own process group, its output read while it runs (so a long text
//! cannot block it) and capped, and the whole group killed when time is up or it has
//! ended (a grandchild holding the pipes cannot hold the caller).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the program printed, and whether it succeeded.
pub struct Output {
    pub success: bool,
    /// Its exit code (None when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The most read of each stream.
const MAX_OUTPUT: u64 = 1 << 20;

/// Runs `program args` for at most `timeout`; an error says it could not start or did
/// not end in time.
pub fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Output, String> {
    run_with(program, args, timeout, &Input::default())
}

/// What a bounded program is given besides its arguments.
#[derive(Default)]
pub struct Input<'a> {
    /// Its whole environment (the server's when None).
    pub env: Option<&'a [(OsString, OsString)]>,
    /// Written to its stdin, which is then closed (/dev/null when empty).
    pub stdin: &'a [u8],
}

/// [`run`], with an environment and input.
pub fn run_with(
    program: &Path,
    args: &[String],
    timeout: Duration,
    input: &Input<'_>,
) -> Result<Output, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if input.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(env) = input.env {
        command.env_clear().envs(env.iter().cloned());
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("{} cannot be started: {e}", program.display()))?;
    if let Some(mut pipe) = child.stdin.take() {
        // Written on a thread: a program that does not read cannot hold the caller
        // past the deadline (its group is killed, which closes the pipe).
        let bytes = input.stdin.to_vec();
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &bytes);
        });
    }
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_OUTPUT).read_to_string(&mut text);
            }
            text
        })
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
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    crate::sys::kill_group(child.id(), libc::SIGKILL);
    if status.is_none() {
        let _ = child.wait();
    }
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(status) => Ok(Output {
            success: status.success(),
            code: status.code(),
            stdout,
            stderr,
        }),
        None => Err(format!(
            "`{shown}` did not answer within {}s",
            timeout.as_secs()
        )),
    }
}
