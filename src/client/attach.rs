//! `workerhub attach WORKER`: this terminal becomes a viewer of a terminal worker, as
//! a browser tab is. The local terminal goes into raw mode (every key, Ctrl-C too, goes
//! to the program), the screen comes from the server's snapshot and then its bytes, the
//! local window's size goes to the server (the terminal takes it when this viewer
//! types), and Ctrl-] detaches, leaving the program running. The terminal's settings
//! are put back on every way out: detach, the program's exit, a lost connection, an
//! error, a panic (the guard's `Drop`).
//!
//! One thread waits on both the keyboard and the socket (`poll`), with a short timeout
//! to notice a change of the window's size.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::termios::{self, OptionalActions, Termios};
use serde_json::{Value, json};
use tungstenite::Message;

use super::cli::ClientArgs;
use super::{ClientError, Socket, set_read_timeout};
use crate::event::{Event, Status, TerminalData};

/// Ctrl-]: the key that detaches (as telnet's escape).
const DETACH: u8 = 0x1d;

/// The most messages shown before the keyboard is looked at again: a program that
/// never stops writing must not keep Ctrl-] (or Ctrl-C) from being read.
const DRAIN_AT_ONCE: usize = 64;

/// How long a message may take to go out before the server counts as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The terminal worker (id or name).
    pub worker: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The local terminal in raw mode until dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> io::Result<RawMode<'a>> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(fd, OptionalActions::Flush, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        // What a program may have left on: the alternate screen, a hidden cursor,
        // bracketed paste, mouse reports, application keys, colors.
        let mut out = io::stdout().lock();
        let _ = out.write_all(
            b"\x1b[?1049l\x1b[?25h\x1b[?2004l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1l\x1b>\x1b[m",
        );
        let _ = out.flush();
        let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    termios::tcgetwinsize(fd)
        .ok()
        .filter(|w| w.ws_col >= 2 && w.ws_row >= 1)
        .map(|w| (w.ws_col, w.ws_row))
}

fn send(socket: &mut Socket, message: Value) -> Result<(), ClientError> {
    socket
        .send(Message::text(message.to_string()))
        .map_err(|e| ClientError(format!("cannot send to the server: {e}")))
}

/// Why the session ended.
enum End {
    Detached,
    Exited(String),
}

pub fn attach(args: &AttachArgs) -> Result<ExitCode, ClientError> {
    let client = args.client.client();
    let worker = client.get(&format!(
        "/api/workers/{}",
        percent_encoding::utf8_percent_encode(&args.worker, percent_encoding::NON_ALPHANUMERIC)
    ))?;
    let id = worker["id"].as_str().unwrap_or("").to_string();
    let name = worker["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(&id)
        .to_string();
    if worker["terminal"].is_null() {
        return Err(ClientError(format!(
            "{name} has no terminal (create it with \"terminal\": true); `workerhub watch {}` follows its events",
            args.worker
        )));
    }
    let stdin = io::stdin();
    let keyboard = stdin.as_fd();
    if !termios::isatty(keyboard) {
        return Err(ClientError(
            "attach needs a terminal: its stdin is not one".into(),
        ));
    }
    let stdout = io::stdout();
    let screen = stdout.as_fd();
    let mut socket = client.ws(&format!("/ws/{id}"))?;
    eprintln!("attached to {name}: detach with Ctrl-]");
    let end = {
        let _raw = RawMode::enter(keyboard)
            .map_err(|e| ClientError(format!("cannot put the terminal in raw mode: {e}")))?;
        session(&mut socket, keyboard, screen)
    };
    let _ = socket.close(None);
    match end? {
        End::Detached => eprintln!("\r\ndetached from {name} (it runs on)"),
        End::Exited(how) => eprintln!("\r\n{name} {how}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn session(
    socket: &mut Socket,
    keyboard: BorrowedFd<'_>,
    screen: BorrowedFd<'_>,
) -> Result<End, ClientError> {
    let socket_raw = match socket.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(stream) => {
            // A server that stops reading must not hold this loop, and so the keyboard
            // (Ctrl-] too), in a send forever.
            let _ = stream.set_write_timeout(Some(SEND_TIMEOUT));
            // Its own copy of the socket's descriptor to wait on: the socket itself is
            // borrowed mutably to read and send.
            rustix::io::dup(stream)
                .map_err(|e| ClientError(format!("cannot watch the socket: {e}")))?
        }
        _ => return Err(ClientError("attach speaks plain WebSocket only".into())),
    };
    let mut size = window_size(screen);
    if let Some((cols, rows)) = size {
        send(
            socket,
            json!({"type": "resize", "cols": cols, "rows": rows}),
        )?;
    }
    let mut out = io::stdout().lock();
    let mut keys = [0u8; 4096];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: 250_000_000,
    };
    // A drain reads what is there and stops at the first wait.
    set_read_timeout(socket, Some(Duration::from_millis(1)));
    // Whether the last drain stopped with messages left (perhaps already read from the
    // socket, so `poll` would not tell): look at the keyboard without waiting.
    let mut more = false;
    loop {
        let mut fds = [
            PollFd::new(&keyboard, PollFlags::IN),
            PollFd::new(&socket_raw, PollFlags::IN),
        ];
        let wait = if more { Timespec::default() } else { timeout };
        match rustix::event::poll(&mut fds, Some(&wait)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(ClientError(format!("poll: {e}"))),
        }
        let (key_ready, socket_ready) =
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if key_ready {
            let n = io::stdin()
                .lock()
                .read(&mut keys)
                .map_err(|e| ClientError(format!("cannot read the keyboard: {e}")))?;
            if n == 0 {
                return Ok(End::Detached);
            }
            let typed = &keys[..n];
            let (before, detach) = match typed.iter().position(|&b| b == DETACH) {
                Some(at) => (&typed[..at], true),
                None => (typed, false),
            };
            if !before.is_empty() {
                // Keys as they are; a byte that is not UTF-8 (Meta sends some) as base64.
                let input = serde_json::to_value(TerminalData::from_bytes(before.to_vec()))
                    .map_err(|e| ClientError(e.to_string()))?;
                let mut message = json!({"type": "input"});
                if let (Some(m), Value::Object(fields)) = (message.as_object_mut(), input) {
                    m.extend(fields);
                }
                send(socket, message)?;
            }
            if detach {
                return Ok(End::Detached);
            }
        }
        if socket_ready || more {
            match drain(socket, &mut out)? {
                Drained::End(end) => return Ok(end),
                Drained::More => more = true,
                Drained::All => more = false,
            }
        }
        let now = window_size(screen);
        if now != size {
            size = now;
            if let Some((cols, rows)) = now {
                send(
                    socket,
                    json!({"type": "resize", "cols": cols, "rows": rows}),
                )?;
            }
        }
    }
}

/// How far a `drain` got.
enum Drained {
    /// Every message there was.
    All,
    /// `DRAIN_AT_ONCE` of them; there may be more.
    More,
    /// The session is over.
    End(End),
}

/// Shows the messages the socket has now, up to `DRAIN_AT_ONCE`.
fn drain(socket: &mut Socket, out: &mut impl Write) -> Result<Drained, ClientError> {
    for _ in 0..DRAIN_AT_ONCE {
        let message = match socket.read() {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Ok(Drained::End(End::Exited(format!(
                    "closed the connection {why}"
                ))));
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let _ = out.flush();
                return Ok(Drained::All);
            }
            Err(e) => return Err(ClientError(format!("connection lost: {e}"))),
        };
        let Ok(event) = serde_json::from_str::<Event>(&message) else {
            continue;
        };
        match event {
            Event::TerminalSnapshot(snapshot) => {
                // A clean screen, then the server's.
                let _ = out.write_all(b"\x1b[!p\x1b[H\x1b[2J\x1b[3J");
                let _ = out.write_all(&snapshot.screen.bytes().unwrap_or_default());
            }
            Event::Terminal(data) => {
                let _ = out.write_all(&data.bytes().unwrap_or_default());
            }
            Event::Status(status) if status.status == Status::Exited => {
                let _ = out.flush();
                let how = match (status.exit.exit_code, status.exit.signal_name) {
                    (Some(code), _) => format!("exited with code {code}"),
                    (None, Some(signal)) => format!("ended by {signal}"),
                    _ => "exited".into(),
                };
                return Ok(Drained::End(End::Exited(how)));
            }
            Event::Error(error) => {
                let _ = write!(out, "\r\n[workerhub: {}]\r\n", error.message);
            }
            _ => {}
        }
    }
    let _ = out.flush();
    Ok(Drained::More)
}
