//! The HTTP layer: one request from accept to answer.
//!
//! `handle` checks the request (Host, Origin, body type and size: `guard`), finds its
//! route in the table (`routes`), calls the handler, and turns whatever it returns,
//! value or error, into the response. WebSocket routes return `Reply::Upgrade` with the
//! session to run, and the upgrade happens here.

pub mod auth;
pub mod guard;
pub mod routes;
pub mod static_files;

use std::sync::Arc;

use std::io::Read;

use serde_json::Value;
use tiny_http::{Header, Method, Response};

use crate::error::ApiError;
use crate::metrics::{self, METRICS};
use crate::server::App;
use crate::ws::conn::Session;
use auth::Caller;

/// What a handler sees of a request.
pub struct Request<'a> {
    pub inner: &'a mut tiny_http::Request,
    /// The normalized path (`routes::normalize`).
    pub path: String,
    /// The `{...}` segments of the route, in order.
    pub params: Vec<String>,
    query: Vec<(String, String)>,
    max_body: usize,
    /// Who made the request (the token it presented); None only on public routes
    /// reached without a token.
    pub caller: Option<Caller>,
}

impl Request<'_> {
    /// Who made the request; every route behind a token has one.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or_else(unauthorized)
    }

    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter that must be a non-negative integer when present.
    pub fn query_u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.query(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter `{key}` must be a non-negative integer, not `{v}`"
                ))
            }),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.inner, name)
    }

    /// The body as JSON. Only `application/json` is accepted, so that a cross-site form
    /// or a `text/plain` post cannot reach a handler; bodies are capped.
    pub fn json(&mut self) -> Result<Value, ApiError> {
        let bytes = self.body()?;
        if bytes.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        let content_type = self.header("Content-Type").unwrap_or("");
        if !guard::is_json_content_type(content_type) {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                format!("send the body as `Content-Type: application/json`, not `{content_type}`"),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::bad_request(format!("the body is not valid JSON: {err}")))
    }

    fn body(&mut self) -> Result<Vec<u8>, ApiError> {
        let too_large = |max: usize| {
            ApiError::new(
                413,
                "body_too_large",
                format!("the body is over the limit of {max} bytes"),
            )
        };
        if self
            .inner
            .body_length()
            .is_some_and(|len| len > self.max_body)
        {
            return Err(too_large(self.max_body));
        }
        let mut bytes = Vec::new();
        self.inner
            .as_reader()
            .take(self.max_body as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| ApiError::bad_request(format!("could not read the body: {err}")))?;
        if bytes.len() > self.max_body {
            return Err(too_large(self.max_body));
        }
        Ok(bytes)
    }
}

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
    pub fn send(self, answer: Result<Reply, ApiError>) {
        match answer {
            Ok(reply) => respond(self.0, reply),
            Err(err) => respond(self.0, Reply::Json(err.status, err.body())),
        }
    }
}

impl Reply {
    pub fn ok(value: Value) -> Reply {
        Reply::Json(200, value)
    }
}

pub fn header<'r>(request: &'r tiny_http::Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The request line as safe to log: the query string (which may carry a token) masked.
pub fn loggable_url(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => url.to_string(),
    }
}

/// Paths that are the API (as opposed to the page's files).
fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path == "/ws"
        || path.starts_with("/ws/")
        || path == "/metrics"
}

/// The answer to an address that presented too many wrong tokens.
pub fn too_many_attempts(left: std::time::Duration) -> ApiError {
    ApiError::new(
        429,
        "too_many_attempts",
        format!(
            "too many wrong tokens from this address; try again in {} s",
            left.as_secs().max(1)
        ),
    )
}

fn unauthorized() -> ApiError {
    ApiError::new(
        401,
        "unauthorized",
        "a token is required: send `Authorization: Bearer TOKEN` (WebSockets may also use `?token=`); the server prints the page address with the token when it starts",
    )
}

/// Serves one request. Runs on a thread of the HTTP pool.
pub fn handle(app: &Arc<App>, mut request: tiny_http::Request) {
    let method = request.method().clone();
    let url = request.url().to_string();
    log::debug!(
        "{} {} from {:?}",
        method,
        loggable_url(&url),
        request.remote_addr()
    );
    let started = std::time::Instant::now();
    metrics::inc(&METRICS.http_requests);
    // One bad request costs one 500, never a thread of the pool.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        route(app, &mut request, &method, &url)
    }))
    .unwrap_or_else(|_| {
        log::error!(
            "handling {method} {} panicked; answered 500",
            loggable_url(&url)
        );
        Err(ApiError::internal(
            "the server failed while handling this request (it was logged)",
        ))
    });
    match outcome {
        Ok(Reply::Upgrade(session)) => upgrade(app, request, session),
        Ok(Reply::Deferred(answer_later)) => {
            let handed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer_later(Responder(request))
            }));
            if handed.is_err() {
                log::error!("handing over {method} {} panicked", loggable_url(&url));
            }
        }
        Ok(reply) => respond(request, reply),
        Err(err) => {
            metrics::inc(&METRICS.http_errors);
            respond(request, Reply::Json(err.status, err.body()))
        }
    }
    METRICS.http_latency.observe(started.elapsed());
}

fn route(
    app: &Arc<App>,
    request: &mut tiny_http::Request,
    method: &Method,
    url: &str,
) -> Result<Reply, ApiError> {
    if !app.origins.host_ok(header(request, "Host")) {
        return Err(ApiError::new(
            403,
            "forbidden_host",
            "this Host is not one of the server's names (see --allow-host)",
        ));
    }
    let (raw_path, raw_query) = url.split_once('?').unwrap_or((url, ""));
    let path = routes::normalize(raw_path).map_err(ApiError::bad_request)?;
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let found = routes::find(method, &path);
    let reads = matches!(method, Method::Get | Method::Head);
    let gate = match &found {
        routes::Found::Route(route, _) => route.gate,
        // The page's own files are public; anything else under the API needs a token
        // even to learn that it does not exist.
        routes::Found::Nothing if reads && !is_api_path(&path) => routes::Gate::Public,
        _ => routes::Gate::Token,
    };
    let upgrade_headers = crate::ws::upgrade_key(request).is_some();
    // `?token=` is accepted on a real WebSocket upgrade only (and on the page's first
    // load, below), never on a REST route that merely carries upgrade headers.
    let real_upgrade = gate == routes::Gate::Upgrade && upgrade_headers && reads;

    let changes_state = !matches!(method, Method::Get | Method::Head | Method::Options);
    if (upgrade_headers || changes_state)
        && let Some(origin) = header(request, "Origin")
        && !app.origins.origin_ok(origin)
    {
        return Err(ApiError::new(
            403,
            "forbidden_origin",
            format!("requests from origin `{origin}` are not allowed (see --allow-origin)"),
        ));
    }

    let ip = request.remote_addr().map(|a| a.ip());
    let query_token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str());
    let query_ok = real_upgrade || (path == "/" && reads);
    let presented = auth::Auth::presented(
        header(request, "Authorization"),
        header(request, "Cookie"),
        query_token,
        query_ok,
    );
    // A token typed or sent deliberately (a bearer header, `?token=`) counts as an
    // attempt; the cookie the server set itself does not, so a page left open with an
    // old cookie is not locked out.
    let deliberate =
        header(request, "Authorization").is_some() || (query_ok && query_token.is_some());
    if app.auth.enabled()
        && deliberate
        && let Some(left) = app.auth.blocked(ip)
    {
        return Err(too_many_attempts(left));
    }
    let caller = match presented {
        None if !app.auth.enabled() => Some(auth::Caller::local()),
        None => None,
        Some(token) => match app.auth.check(token) {
            Some(who) => Some(who),
            None => {
                if deliberate {
                    app.auth.failed(ip, &path);
                }
                None
            }
        },
    };

    // The page's first load with `?token=`: trade it for a cookie and drop it from the
    // address bar.
    if path == "/"
        && reads
        && app.auth.enabled()
        && caller.is_some()
        && let Some(token) = query_token
    {
        let secure =
            header(request, "X-Forwarded-Proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
        return Ok(Reply::WithHeaders(
            Box::new(Reply::Json(303, serde_json::json!({"location": "/"}))),
            vec![
                ("Location".into(), "/".into()),
                ("Set-Cookie".into(), auth::set_cookie(token, secure)),
            ],
        ));
    }
    if caller.is_none() && gate != routes::Gate::Public {
        return Err(unauthorized());
    }

    let (route, params) = match found {
        routes::Found::Route(route, params) => (route, params),
        routes::Found::WrongMethod(allowed) => {
            return Err(ApiError::new(
                405,
                "method_not_allowed",
                format!(
                    "{method} is not allowed on {path}; use {}",
                    allowed.join(" or ")
                ),
            ));
        }
        routes::Found::Nothing => {
            if reads && let Some(reply) = app.static_files.get(&path) {
                return Ok(reply);
            }
            return Err(ApiError::not_found(format!("nothing at {path}")));
        }
    };
    let mut req = Request {
        inner: request,
        path,
        params,
        query,
        max_body: app.max_body,
        caller,
    };
    let reply = (route.handler)(app, &mut req)?;
    if matches!(reply, Reply::Upgrade(_)) && !real_upgrade {
        return Err(ApiError::new(
            426,
            "upgrade_required",
            "this endpoint is a WebSocket: connect with a WebSocket client",
        ));
    }
    Ok(reply)
}

fn upgrade(app: &Arc<App>, request: tiny_http::Request, session: Box<dyn Session>) {
    let Some(key) = crate::ws::upgrade_key(&request) else {
        return respond(
            request,
            Reply::Json(
                400,
                ApiError::bad_request("missing Sec-WebSocket-Key").body(),
            ),
        );
    };
    let version_ok = header(&request, "Sec-WebSocket-Version").is_some_and(|v| v.trim() == "13");
    if !version_ok {
        return respond(
            request,
            Reply::Json(
                426,
                ApiError::new(
                    426,
                    "unsupported_version",
                    "only WebSocket version 13 is supported",
                )
                .body(),
            ),
        );
    }
    let Some(place) = app.writers.reserve(app.max_connections) else {
        let err = ApiError::new(
            503,
            "too_many_connections",
            format!(
                "the server holds its limit of {} WebSocket connections (--max-connections)",
                app.max_connections
            ),
        );
        return respond(request, Reply::Json(503, err.body()));
    };
    let peer = request.remote_addr().copied();
    if let Some(ip) = peer.map(|p| p.ip()) {
        let from_ip = app.writers.count_from(ip);
        if from_ip >= app.max_connections_per_ip {
            let err = ApiError::new(
                429,
                "too_many_connections",
                format!(
                    "{from_ip} WebSocket connections from {ip} are open, the limit (--max-connections-per-ip) is {}",
                    app.max_connections_per_ip
                ),
            );
            return respond(request, Reply::Json(429, err.body()));
        }
    }
    if let Err(err) = crate::ws::accept(
        request,
        &key,
        app.listening,
        &app.writers,
        app.conn_config,
        session,
        place,
    ) {
        log::warn!("WebSocket upgrade from {peer:?} failed: {err}");
    }
}

fn respond(request: tiny_http::Request, reply: Reply) {
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
        let csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
        if let Ok(h) = Header::from_bytes(&b"Content-Security-Policy"[..], csp.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(err) = request.respond(response) {
        log::debug!("could not send a response: {err}");
    }
}
