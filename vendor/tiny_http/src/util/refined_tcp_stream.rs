use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use super::limits::HeadDeadline;
use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    Http(Connection),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Stream {
    // workerhub patch: was `Clone` with an `unwrap()` on `try_clone` (a second
    // descriptor), which failed when the descriptor table was full and took the accept
    // thread, and so the whole server, down. The halves now share the socket.
    fn try_clone(&self) -> IoResult<Self> {
        match self {
            Stream::Http(conn) => Ok(Stream::Http(conn.clone())),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Ok(Stream::Https(ssl_stream.clone())),
        }
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(tcp_stream)
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    /// workerhub patch: set once the socket was handed over (`Request::upgrade_tcp`):
    /// dropping a half then closes its descriptor without shutting the socket down.
    handed_over: Arc<AtomicBool>,
    /// workerhub patch: while set, every read must be done by this instant.
    deadline: Option<HeadDeadline>,
    /// workerhub patch: the socket's own read timeout, restored once a deadline is
    /// cleared.
    base_timeout: Option<Duration>,
    timeout_changed: bool,
}

impl RefinedTcpStream {
    /// Splits a connection into its reading and writing halves (two descriptors).
    /// workerhub patch: fails instead of panicking when the second descriptor cannot be
    /// had (a full descriptor table), handing the connection back to be refused.
    pub(crate) fn new<S>(
        stream: S,
    ) -> Result<(RefinedTcpStream, RefinedTcpStream), (std::io::Error, Stream)>
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let read = match stream.try_clone() {
            Ok(read) => read,
            Err(err) => return Err((err, stream)),
        };
        let base_timeout = match &read {
            Stream::Http(Connection::Tcp(sock)) => sock.read_timeout().ok().flatten(),
            _ => None,
        };

        let handed_over = Arc::new(AtomicBool::new(false));
        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            handed_over: handed_over.clone(),
            deadline: None,
            base_timeout,
            timeout_changed: false,
        };

        let write = RefinedTcpStream {
            stream,
            close_read: false,
            close_write: true,
            handed_over,
            deadline: None,
            base_timeout: None,
            timeout_changed: false,
        };

        Ok((read, write))
    }

    /// workerhub patch: bounds this half's reads by `deadline` whenever it is set.
    pub(crate) fn with_deadline(mut self, deadline: HeadDeadline) -> RefinedTcpStream {
        self.deadline = Some(deadline);
        self
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// workerhub patch: what it takes to hand this connection's TCP socket over later.
    pub(crate) fn handover(&self) -> Option<Handover> {
        match &self.stream {
            Stream::Http(Connection::Tcp(sock)) => Some(Handover {
                sock: sock.clone(),
                handed_over: self.handed_over.clone(),
            }),
            _ => None,
        }
    }
}

/// workerhub patch: a connection's TCP socket, to be taken over from tiny_http at an
/// upgrade (`Request::upgrade_tcp`) instead of using it through an opaque stream.
#[derive(Clone)]
pub(crate) struct Handover {
    sock: Arc<TcpStream>,
    handed_over: Arc<AtomicBool>,
}

impl Handover {
    /// A descriptor of its own for the socket; from now on tiny_http closes its own
    /// without shutting the socket down.
    pub(crate) fn take(&self) -> IoResult<TcpStream> {
        let own = self.sock.try_clone()?;
        self.handed_over.store(true, Ordering::SeqCst);
        Ok(own)
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.handed_over.load(Ordering::SeqCst) {
            return;
        }
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        // workerhub patch: a request head must arrive whole by its deadline, however
        // slowly it trickles in; each read waits at most for what is left of it.
        if let Some(deadline) = self.deadline.as_ref().map(HeadDeadline::get) {
            if let Stream::Http(Connection::Tcp(sock)) = &self.stream {
                match deadline {
                    Some(at) => {
                        let left = at.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "the request head took too long",
                            ));
                        }
                        let wait = self.base_timeout.map_or(left, |base| base.min(left));
                        let _ = sock.set_read_timeout(Some(wait));
                        self.timeout_changed = true;
                    }
                    None if self.timeout_changed => {
                        let _ = sock.set_read_timeout(self.base_timeout);
                        self.timeout_changed = false;
                    }
                    None => {}
                }
            }
        }
        self.stream.read(buf)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
