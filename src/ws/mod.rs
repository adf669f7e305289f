//! WebSockets on the HTTP port: the upgrade, the connection (`conn`), the writer pool
//! (`writer`) and frame encoding (`frame`). The endpoints' own protocols live in
//! `worker_stream` (`/ws/{id}`) and `crate::protocol` (`/ws`).

pub mod conn;
pub mod frame;
pub mod subscription;
pub mod worker_stream;
pub mod writer;

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use conn::{Conn, ConnConfig, Session};
use writer::Writers;

use crate::metrics::{self, METRICS};
use crate::sys;

/// Whether the request asks for a WebSocket, and its key if so.
pub fn upgrade_key(request: &tiny_http::Request) -> Option<String> {
    let header = |name: &str| crate::http::header(request, name).map(str::to_string);
    let wants = header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants {
        return None;
    }
    header("Sec-WebSocket-Key")
}

/// Where this server listens, to recognize its side of an upgraded connection.
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub addr: SocketAddr,
}

impl Listening {
    fn is_local_end(&self, local: SocketAddr) -> bool {
        local.port() == self.addr.port()
            && (self.addr.ip().is_unspecified() || local.ip() == self.addr.ip())
    }
}

/// Answers the handshake with 101, takes the connection's socket over from tiny_http and
/// starts its reader thread with `session`.
///
/// tiny_http's upgraded stream cannot be split, polled or given timeouts, so its socket
/// is found by address pair among this process's descriptors, duplicated, and tiny_http's
/// own two descriptors are pointed at /dev/null before its stream is dropped: tiny_http
/// frees everything it held, and the connection keeps exactly one descriptor.
pub fn accept(
    request: tiny_http::Request,
    key: &str,
    listening: Listening,
    writers: &Arc<Writers>,
    config: ConnConfig,
    session: Box<dyn Session>,
    place: writer::Opening,
) -> io::Result<Arc<Conn>> {
    let peer = request
        .remote_addr()
        .copied()
        .ok_or_else(|| io::Error::other("upgrade without a peer address"))?;
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = tiny_http::Response::empty(101).with_header(
        tiny_http::Header::from_bytes(&b"Sec-WebSocket-Accept"[..], accept_key.as_bytes())
            .map_err(|_| io::Error::other("bad accept header"))?,
    );
    let mut upgraded = request.upgrade("websocket", response);

    // tiny_http holds the socket twice (its reader and its writer).
    const TINY_HTTP_FDS: usize = 2;
    let owned = writers.owned_fds();
    let fds = sys::find_tcp_fds_matching(
        peer,
        &|fd| owned.contains(fd),
        &|local| listening.is_local_end(local),
        owned.bound() + 1024,
        TINY_HTTP_FDS,
    );
    if fds.len() != TINY_HTTP_FDS {
        log::warn!(
            "upgrade from {peer}: found {} descriptors for its socket: {fds:?}",
            fds.len()
        );
    }
    let Some(&first) = fds.first() else {
        return Err(io::Error::other(format!(
            "socket of upgraded connection from {peer} not found"
        )));
    };
    let own = sys::dup_fd(first)?;

    // Bytes tiny_http already buffered after the request head belong to the WebSocket
    // (RFC 6455 clients wait for the 101, so this is normally empty).
    let mut early = Vec::new();
    {
        use std::os::fd::AsRawFd;
        sys::set_nonblocking(own.as_raw_fd(), true)?;
        let mut buf = [0u8; 4096];
        while let Ok(n) = upgraded.read(&mut buf) {
            if n == 0 {
                break;
            }
            early.extend_from_slice(&buf[..n]);
            if early.len() > 1 << 20 {
                break;
            }
        }
        sys::set_nonblocking(own.as_raw_fd(), false)?;
    }
    for fd in &fds {
        sys::point_at_dev_null(*fd)?;
    }
    drop(upgraded);

    let sock = TcpStream::from(own);
    sock.set_nodelay(true)?;
    let conn = Arc::new(Conn::new(
        writers.next_id(),
        sock,
        peer,
        path,
        writers,
        config,
    ));
    writers.register(&conn)?;
    metrics::inc(&METRICS.ws_connections_opened);
    // Counted as registered now, no longer as opening.
    drop(place);
    let reader_conn = conn.clone();
    std::thread::Builder::new()
        .name(format!("ws-read-{}", conn.id))
        .stack_size(256 * 1024)
        .spawn(move || conn::read_loop(reader_conn, session, early))?;
    Ok(conn)
}
