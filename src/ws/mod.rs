//! WebSockets on the HTTP port: the upgrade (below), the connection (`conn`, with its
//! `outbox`), its reader thread (`reader`), the writer pool (`writer`) and the registry
//! of open connections (`registry`). The endpoints' own protocols live in
//! `worker_stream` (`/ws/{id}`) and `crate::protocol` (`/ws`); a connection follows a
//! worker's feed through a `subscription`.

pub mod conn;
pub mod outbox;
pub mod reader;
pub mod registry;
pub mod subscription;
pub mod worker_stream;
pub mod writer;

use std::io;
use std::sync::Arc;

use conn::{Conn, ConnConfig};
use reader::Session;
use registry::{Connections, Opening};
use writer::Writers;

use crate::error::{Error, ErrorCode};
use crate::metrics::{self, METRICS};
use crate::timer::Timer;

/// What every WebSocket shares: the writer pool, the registry, timers and limits.
pub struct Sockets {
    pub writers: Arc<Writers>,
    pub registry: Arc<Connections>,
    pub timer: Timer,
    pub config: ConnConfig,
    /// Most WebSockets at once, and from one address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl Sockets {
    /// Checks the connection limits, then accepts the handshake (`accept`); a refusal
    /// hands the request back with the reason, to be answered over HTTP.
    #[allow(clippy::result_large_err)]
    pub fn upgrade(
        &self,
        request: tiny_http::Request,
        key: &str,
        session: Box<dyn Session>,
    ) -> Result<(), (tiny_http::Request, Error)> {
        let Some(place) = self.registry.reserve(self.max_connections) else {
            let err = Error::unavailable(
                ErrorCode::TooManyConnections,
                format!(
                    "the server holds its limit of {} WebSocket connections (--max-connections)",
                    self.max_connections
                ),
            );
            return Err((request, err));
        };
        let peer = request.remote_addr().copied();
        if let Some(ip) = peer.map(|p| p.ip()) {
            let from_ip = self.registry.count_from(ip);
            if from_ip >= self.max_connections_per_ip {
                let err = Error::limit(
                    ErrorCode::TooManyConnections,
                    format!(
                        "{from_ip} WebSocket connections from {ip} are open, the limit (--max-connections-per-ip) is {}",
                        self.max_connections_per_ip
                    ),
                );
                return Err((request, err));
            }
        }
        if let Err(err) = self.accept(request, key, session, place) {
            log::warn!("WebSocket upgrade from {peer:?} failed: {err}");
        }
        Ok(())
    }

    /// Answers the handshake with 101, takes the connection's socket over from
    /// tiny_http (`Request::upgrade_tcp`, a patch of ours) and starts its reader thread
    /// with `session`. After this the socket is a plain `TcpStream` owned by workerhub:
    /// read by one thread, written without blocking by others, waited on with epoll.
    pub fn accept(
        &self,
        request: tiny_http::Request,
        key: &str,
        session: Box<dyn Session>,
        place: Opening,
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
        let (sock, early) = request.upgrade_tcp("websocket", response)?;
        sock.set_nodelay(true)?;
        let conn = Conn::open(
            self.registry.next_id(),
            sock,
            peer,
            path,
            &self.writers,
            self.timer.clone(),
            self.config,
        )?;
        self.registry.register(&conn);
        metrics::inc(&METRICS.ws_connections_opened);
        // Counted as registered now, no longer as opening.
        drop(place);
        let reader_conn = conn.clone();
        let registry = self.registry.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ws-read-{}", conn.id))
            .stack_size(256 * 1024)
            .spawn(move || reader::read_loop(reader_conn, session, early, registry));
        if let Err(err) = spawned {
            self.registry.forget(conn.id);
            conn.shutdown_now();
            return Err(err);
        }
        Ok(conn)
    }
}
