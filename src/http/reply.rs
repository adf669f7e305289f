//! What a handler answers, and the one place that turns answers and errors into HTTP
//! responses (status codes, headers, the security headers every answer carries).

use serde_json::Value;
use tiny_http::{Header, Response};

use crate::error::{Error, ErrorKind};
use crate::ws::reader::Session;

/// What a handler answers.
pub enum Reply {
    Json(u16, Value),
    Bytes {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// Switch to WebSocket and run this session.
    Upgrade(Box<dyn Session>),
    /// A reply with more headers (a cookie, a redirect's location).
    WithHeaders(Box<Reply>, Vec<(String, String)>),
    /// The answer comes later, from another thread: the HTTP thread hands the request
    /// over and goes back to serving others (a one-off command that runs for an hour
    /// must not hold a thread of the pool for an hour).
    Deferred(Box<dyn FnOnce(Responder) + Send>),
}

/// A request whose answer was deferred: whoever holds it answers it, once.
pub struct Responder(tiny_http::Request);

impl Responder {
    pub fn new(request: tiny_http::Request) -> Responder {
        Responder(request)
    }

    pub fn send(self, answer: Result<Reply, Error>) {
        match answer {
            Ok(reply) => respond(self.0, reply),
            Err(err) => respond(self.0, Reply::from(&err)),
        }
    }
}

impl Reply {
    pub fn ok(value: Value) -> Reply {
        Reply::Json(200, value)
    }

    /// `value` (one of the domain's types) as JSON, with `status`.
    pub fn typed(status: u16, value: &impl serde::Serialize) -> Reply {
        match serde_json::to_value(value) {
            Ok(value) => Reply::Json(status, value),
            Err(err) => Reply::from(&Error::internal(format!(
                "the answer could not be written: {err}"
            ))),
        }
    }
}

/// The HTTP status of each case of the domain's errors.
pub fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Invalid => 400,
        ErrorKind::Unauthorized => 401,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::MethodNotAllowed => 405,
        ErrorKind::Conflict => 409,
        ErrorKind::TooLarge => 413,
        ErrorKind::UnsupportedMedia => 415,
        ErrorKind::UpgradeRequired => 426,
        ErrorKind::Limit => 429,
        ErrorKind::Internal => 500,
        ErrorKind::Unavailable => 503,
    }
}

impl From<&Error> for Reply {
    fn from(err: &Error) -> Reply {
        Reply::Json(status_of(err.kind), err.body())
    }
}

pub fn respond(request: tiny_http::Request, reply: Reply) {
    let (reply, extra) = match reply {
        Reply::WithHeaders(reply, headers) => (*reply, headers),
        reply => (reply, Vec::new()),
    };
    let (status, content_type, body) = match reply {
        Reply::Json(status, value) => (status, "application/json".to_string(), {
            let mut body = value.to_string().into_bytes();
            body.push(b'\n');
            body
        }),
        Reply::Bytes {
            status,
            content_type,
            body,
        } => (status, content_type, body),
        Reply::Upgrade(_) | Reply::WithHeaders(..) | Reply::Deferred(_) => {
            (500, "application/json".into(), b"{}".to_vec())
        }
    };
    let mut response = Response::from_data(body).with_status_code(status);
    for (name, value) in &extra {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    for (name, value) in [
        ("Content-Type", content_type.as_str()),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ] {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    if content_type.starts_with("text/html") {
        // Inline styles: xterm.js (the terminal view) writes its colors and cell sizes
        // into <style> elements it creates. Scripts stay 'self' only.
        let csp = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
        if let Ok(h) = Header::from_bytes(&b"Content-Security-Policy"[..], csp.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(err) = request.respond(response) {
        log::debug!("could not send a response: {err}");
    }
}
