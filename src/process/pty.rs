//! A child in a pseudo-terminal instead of pipes (a terminal worker).
//!
//! The child gets the terminal's slave as stdin, stdout and stderr, starts a session of
//! its own with the slave as its controlling terminal (`login_tty` semantics: job
//! control, `tty`, Ctrl-C from the line discipline all work), `TERM=xterm-256color`, and
//! a size. The server keeps the master: a reader thread reads it, the stdin thread
//! (`stdin.rs`, the same as for a pipe) writes to it, and `Process::resize_terminal`
//! sets its size (`TIOCSWINSZ`: the program gets `SIGWINCH`).
//!
//! The pty comes from `rustix` (openpt, grantpt, unlockpt, ptsname, termios): safe
//! wrappers, so the only new `unsafe` is the `pre_exec` in `sys.rs`.
//!
//! The reader passes bytes on, not lines: after each read it takes whatever more the
//! terminal has at once, up to `BATCH`, and sends that as one message, so a burst
//! becomes few large events, and a keystroke's echo goes out alone at once. It never
//! cuts a UTF-8 character in two (what it holds back goes with the next read).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crossbeam_channel::Sender;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, InputModes, OptionalActions, Winsize};

use super::pipes::read_until_end;
use super::{Output, OutputTx, ProcEvent, Process, ProcessSink};
use crate::event::TerminalSize;
use crate::event::terminal::utf8_boundary;
use crate::sys::{self, EventFd};

/// The most bytes one `terminal` message carries.
pub const BATCH: usize = 64 * 1024;

/// A pseudo-terminal before its child starts.
pub(super) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

/// The server's end of a running child's terminal.
pub(super) struct Terminal {
    master: OwnedFd,
}

fn set_size(master: &OwnedFd, size: TerminalSize) -> io::Result<()> {
    termios::tcsetwinsize(
        master,
        Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

impl Pty {
    pub(super) fn open(size: TerminalSize) -> io::Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // Line editing that knows UTF-8 (a backspace erases a whole character), as a
        // terminal emulator sets it up.
        let mut modes = termios::tcgetattr(&slave)?;
        modes.input_modes |= InputModes::IUTF8;
        termios::tcsetattr(&slave, OptionalActions::Now, &modes)?;
        set_size(&master, size)?;
        Ok(Pty { master, slave })
    }

    /// Gives `command`'s child the terminal (instead of pipes and `process_group`).
    pub(super) fn prepare(&self, command: &mut Command) -> io::Result<()> {
        command
            .stdin(Stdio::from(self.slave.try_clone()?))
            .stdout(Stdio::from(self.slave.try_clone()?))
            .stderr(Stdio::from(self.slave.try_clone()?))
            .env("TERM", "xterm-256color");
        sys::new_session_on_terminal(command);
        Ok(())
    }

    /// Once the child runs: closes the server's slave (so the reader sees the end when
    /// the child's side is gone), starts the reader, and returns the terminal and the
    /// master to write input to.
    pub(super) fn start(
        self,
        reader: ReaderCtx,
    ) -> io::Result<(Terminal, File, std::thread::JoinHandle<()>)> {
        drop(self.slave);
        let read_fd = self.master.try_clone()?;
        let input = File::from(self.master.try_clone()?);
        let thread = std::thread::Builder::new()
            .name(format!("proc-{}-pty", reader.process))
            .stack_size(128 * 1024)
            .spawn(move || read_terminal(read_fd, reader))?;
        Ok((
            Terminal {
                master: self.master,
            },
            input,
            thread,
        ))
    }
}

impl Process {
    /// Sets a terminal child's size (the program gets SIGWINCH); nothing for pipes.
    pub fn resize_terminal(&self, size: TerminalSize) -> io::Result<()> {
        match &self.terminal {
            Some(terminal) => set_size(&terminal.master, size),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the process has no terminal",
            )),
        }
    }

    pub fn has_terminal(&self) -> bool {
        self.terminal.is_some()
    }
}

pub(super) struct ReaderCtx {
    pub wake: Arc<EventFd>,
    pub sink: Arc<dyn ProcessSink>,
    pub process: u64,
    pub output: OutputTx,
    /// Dropped when the reader ends, which the waiter notices.
    pub _done: Sender<()>,
}

/// `pipes::read_until_end` with `BATCH` as the room: a full batch, or what the
/// terminal had at once, goes out up to its last whole character.
fn read_terminal(fd: OwnedFd, ctx: ReaderCtx) {
    let send = |data: Vec<u8>| {
        ctx.output
            .send(Output {
                sink: ctx.sink.clone(),
                process: ctx.process,
                event: ProcEvent::Terminal(data),
            })
            .is_ok()
    };
    // Sends what is pending up to the last whole character; false when nobody listens.
    let flush = |pending: &mut Vec<u8>| {
        let cut = utf8_boundary(pending);
        if cut == 0 {
            return true;
        }
        let rest = pending.split_off(cut);
        send(std::mem::replace(pending, rest))
    };
    let mut pending = Vec::new();
    let full_batch = |pending: &mut Vec<u8>| pending.len() < BATCH || flush(pending);
    if read_until_end(fd, &ctx.wake, &mut pending, BATCH, full_batch, flush) && !pending.is_empty()
    {
        send(pending);
    }
}
