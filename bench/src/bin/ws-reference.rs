//! ws-reference: the LIMIT REFERENCE of the benchmark suite (benches/run.sh,
//! docs/BENCHMARKS.md). It is not product code and nothing in workerhub uses it.
//!
//! It is the least work the job "a program's output over a WebSocket" can take on
//! workerhub's own stack: a std `TcpListener`, `tungstenite`, one child process per
//! connection (as websocketd does), no JSON, no sequence numbers, no history, no fan-out.
//! One thread per connection `poll`s the socket and the child's stdout; every line the
//! child prints becomes a text message, and the socket is flushed only when no more
//! output is buffered (the child's pipe is drained first), so a fast child gets big
//! writes and a slow one gets each line at once. Each text message from the client is
//! written to the child's stdin as a line.
//!
//! `ws-reference [--host 127.0.0.1] [--port 0] -- PROGRAM [ARGS...]` prints
//! `ws-reference listening on HOST:PORT`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message, WebSocket};

#[derive(Parser, Debug)]
#[command(
    name = "ws-reference",
    about = "Limit reference for the benchmarks: TcpListener + tungstenite, one child per connection"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The program (and its arguments) to run for each connection.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a local, initialized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() {
    let args = Args::parse();
    raise_fd_limit();
    let listener = match TcpListener::bind((args.host.as_str(), args.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "ws-reference: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map_or(0, |a| a.port());
    println!("ws-reference listening on {}:{port}", args.host);
    let _ = io::stdout().flush();
    let command = Arc::new(args.command);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let command = command.clone();
                let spawned = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        if let Err(e) = serve(stream, &command) {
                            eprintln!("ws-reference: connection: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    eprintln!("ws-reference: cannot start a thread: {e}");
                }
            }
            Err(e) => {
                // Out of descriptors: wait for some to be freed instead of spinning.
                eprintln!("ws-reference: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Kills and reaps the child however the connection ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this thread owns, with integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(err) if err.kind() == io::ErrorKind::WouldBlock)
}

fn serve(stream: TcpStream, command: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let config = WebSocketConfig::default().write_buffer_size(128 * 1024);
    let mut ws = tungstenite::accept_with_config(stream, Some(config))
        .map_err(|e| format!("handshake: {e}"))?;
    ws.get_ref().set_read_timeout(None)?;
    let (program, rest) = command.split_first().ok_or("no command")?;
    let mut child = Reap(
        Command::new(program)
            .args(rest)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let mut stdin: Option<ChildStdin> = child.0.stdin.take();
    let mut stdout = child.0.stdout.take().ok_or("no stdout")?;
    let sock_fd = ws.get_ref().as_raw_fd();
    let out_fd = stdout.as_raw_fd();
    ws.get_ref().set_nonblocking(true)?;
    set_nonblocking(out_fd)?;

    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    let mut unflushed = false;
    let mut out_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sock_fd,
                events: libc::POLLIN | if unflushed { libc::POLLOUT } else { 0 },
                revents: 0,
            },
            libc::pollfd {
                // Read more output only once the socket took what was there.
                fd: if out_open && !unflushed { out_fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        if fds[0].revents != 0 {
            loop {
                match ws.read() {
                    Ok(Message::Text(text)) => {
                        if let Some(pipe) = stdin.as_mut() {
                            let mut line = Vec::with_capacity(text.len() + 1);
                            line.extend_from_slice(text.as_bytes());
                            line.push(b'\n');
                            if pipe.write_all(&line).is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Ok(Message::Close(_)) => {
                        let _ = ws.flush();
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) if would_block(&e) => break,
                    Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if fds[1].revents != 0 {
            // Drain what the child printed, one message per line, then flush once (a
            // full socket or 1 MiB read ends the round, so memory stays bounded).
            let mut blocked = false;
            for _ in 0..16 {
                if blocked {
                    break;
                }
                match stdout.read(&mut buf) {
                    Ok(0) => {
                        out_open = false;
                        if !partial.is_empty() {
                            let line = String::from_utf8_lossy(&partial).into_owned();
                            partial.clear();
                            queue(&mut ws, line)?;
                        }
                        break;
                    }
                    Ok(n) => {
                        let mut data = &buf[..n];
                        while let Some(end) = data.iter().position(|&b| b == b'\n') {
                            let line = if partial.is_empty() {
                                String::from_utf8_lossy(&data[..end]).into_owned()
                            } else {
                                partial.extend_from_slice(&data[..end]);
                                let l = String::from_utf8_lossy(&partial).into_owned();
                                partial.clear();
                                l
                            };
                            blocked |= queue(&mut ws, line)?;
                            data = &data[end + 1..];
                        }
                        partial.extend_from_slice(data);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            unflushed = true;
        }
        if unflushed {
            match ws.flush() {
                Ok(()) => unflushed = false,
                Err(e) if would_block(&e) => {}
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        if !out_open && !unflushed {
            // The program is done and everything it printed went out: close.
            let _ = ws.close(None);
            for _ in 0..100 {
                match ws.flush() {
                    Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(10)),
                    _ => break,
                }
            }
            return Ok(());
        }
    }
}

/// Queues a text message; returns true when the socket is full (the message stays
/// buffered for the next flush).
fn queue(ws: &mut WebSocket<TcpStream>, line: String) -> Result<bool, WsError> {
    match ws.write(Message::text(line)) {
        Ok(()) => Ok(false),
        Err(e) if would_block(&e) => Ok(true),
        Err(e) => Err(e),
    }
}
