//! A short program run to completion within a bound (a `--version` probe, an ssh
//! check): in its own process group, its output read while it runs (so a long text
//! cannot block it) and capped, and the whole group killed when time is up or it has
//! ended (a grandchild holding the pipes cannot hold the caller).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the program printed, and whether it succeeded.
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The most read of each stream.
const MAX_OUTPUT: u64 = 1 << 20;

/// Runs `program args` for at most `timeout`; an error says it could not start or did
/// not end in time.
pub fn run(program: &Path, args: &[String], timeout: Duration) -> Result<Output, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{} cannot be started: {e}", program.display()))?;
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
            stdout,
            stderr,
        }),
        None => Err(format!(
            "`{shown}` did not answer within {}s",
            timeout.as_secs()
        )),
    }
}
