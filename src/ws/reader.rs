//! A connection's reader thread: it blocks in `read` until the client sends something,
//! hands each message to the endpoint's [`Session`], answers pings, pings an idle client
//! and drops one that does not answer.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message};

use super::conn::Conn;
use super::outbox::Phase;
use super::registry::Connections;
use crate::error::{Error, ErrorCode, ErrorKind};
use crate::metrics::{self, METRICS};
use crate::wire::frame;

/// What a WebSocket endpoint does with a connection.
pub trait Session: Send {
    /// The connection is open (send a greeting, start subscriptions).
    fn on_open(&mut self, conn: &Arc<Conn>);
    /// A text message arrived (already checked against the size limit).
    fn on_text(&mut self, conn: &Arc<Conn>, text: &str);
    /// The client sent something the connection does not take (too large, binary); the
    /// connection stays open. Each endpoint answers in its own format.
    fn on_refused(&mut self, conn: &Arc<Conn>, err: &Error) {
        conn.send_error(err.code, &err.message);
    }
    /// The connection is over, however it ended.
    fn on_close(&mut self, conn: &Arc<Conn>);
}

/// The socket as tungstenite sees it from the reader thread: reads come from the
/// socket, and anything tungstenite wants to write (pongs, close replies) is collected
/// for the outbox instead.
struct ReaderIo<'a> {
    sock: &'a TcpStream,
    replies: &'a mut Vec<u8>,
}

impl Read for ReaderIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.sock).read(buf)
    }
}

impl Write for ReaderIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.replies.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reader thread's loop, from the upgrade (with `early`, bytes the HTTP layer had
/// already read past the request) to the end of the connection.
pub fn read_loop(
    conn: Arc<Conn>,
    mut session: Box<dyn Session>,
    early: Vec<u8>,
    registry: Arc<Connections>,
) {
    let cfg = conn.config;
    // Allow messages above the API's limit at the protocol level so that a too-large
    // message gets a clear error on an open connection; only far larger ones (over 4x)
    // close it with 1009.
    let protocol_limit = cfg.max_message_bytes.saturating_mul(4).max(64 * 1024);
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(protocol_limit))
        .max_frame_size(Some(protocol_limit));
    let mut ctx = WebSocketContext::from_partially_read(early, Role::Server, Some(ws_config));
    let mut replies = Vec::new();
    let mut pinged: Option<Instant> = None;
    let sock = conn.socket();
    let _ = sock.set_read_timeout(Some(cfg.ping_interval));

    session.on_open(&conn);
    loop {
        let result = ctx.read(&mut ReaderIo {
            sock,
            replies: &mut replies,
        });
        if !replies.is_empty() {
            // tungstenite answered the client's close: send it, then shut down.
            let closing = matches!(result, Ok(Message::Close(_)));
            conn.queue_reply(std::mem::take(&mut replies), closing);
        }
        let heard = !matches!(&result, Err(WsError::Io(_)));
        if heard && pinged.take().is_some() {
            let _ = sock.set_read_timeout(Some(cfg.ping_interval));
        }
        if matches!(result, Ok(Message::Text(_) | Message::Binary(_))) {
            metrics::inc(&METRICS.ws_messages_received);
        }
        match result {
            Ok(Message::Text(text)) => {
                if text.len() > cfg.max_message_bytes {
                    session.on_refused(
                        &conn,
                        &Error::new(
                            ErrorKind::TooLarge,
                            ErrorCode::MessageTooLarge,
                            format!(
                                "message of {} bytes is over the limit of {} bytes",
                                text.len(),
                                cfg.max_message_bytes
                            ),
                        ),
                    );
                } else {
                    // A bug in handling one message costs that message, not the
                    // connection (and never the server).
                    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        session.on_text(&conn, &text)
                    }));
                    if handled.is_err() {
                        log::error!("connection {}: handling a message panicked", conn.id);
                        session.on_refused(
                            &conn,
                            &Error::internal(
                                "the server failed while handling this message (it was logged)",
                            ),
                        );
                    }
                }
            }
            Ok(Message::Binary(_)) => session.on_refused(
                &conn,
                &Error::new(
                    ErrorKind::UnsupportedMedia,
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not accepted: send JSON as a text message",
                ),
            ),
            Ok(_) => {}
            Err(WsError::Io(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if pinged.is_some() {
                    log::info!(
                        "connection {} from {} did not answer a ping; closing it",
                        conn.id,
                        conn.peer
                    );
                    conn.close(1001, "no answer to ping");
                    conn.shutdown_now();
                    break;
                }
                conn.send_frame(frame::ping(b"workerhub"));
                pinged = Some(Instant::now());
                let _ = sock.set_read_timeout(Some(cfg.pong_timeout));
            }
            Err(WsError::Io(err)) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(WsError::Capacity(err)) => {
                conn.close(1009, &format!("message too big: {err}"));
                break;
            }
            Err(WsError::Utf8(_)) => {
                conn.close(1007, "text message is not valid UTF-8");
                break;
            }
            // The client went away without a closing handshake: nobody to tell.
            Err(WsError::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => break,
            Err(WsError::Protocol(err)) => {
                conn.close(1002, &format!("protocol error: {err}"));
                break;
            }
            Err(_) => break,
        }
    }
    session.on_close(&conn);
    registry.forget(conn.id);
    // Give a queued close frame its grace to go out; otherwise shut down at once.
    if conn.phase() == Phase::Open {
        conn.shutdown_now();
    }
}
