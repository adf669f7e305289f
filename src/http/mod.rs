//! The HTTP layer: one request from accept to answer.
//!
//! `handle` checks the request (Host, Origin: `guard`), normalizes its path once, finds
//! its route in the table (`routes`), decides from the route whether it needs a token,
//! calls the handler with a [`Request`], and turns whatever it returns, value or error,
//! into the response (`reply`). WebSocket routes return `Reply::Upgrade` with the session
//! to run, and the upgrade happens here.

pub mod guard;
pub mod reply;
pub mod request;
pub mod routes;
pub mod static_files;

use std::sync::Arc;

use tiny_http::Method;

use crate::app::App;
use crate::auth;
use crate::error::{Error, ErrorCode, ErrorKind};
use crate::metrics::{self, METRICS};
use crate::ws::reader::Session;
pub use reply::{Reply, Responder, respond, status_of};
pub use request::{Request, header, loggable_url, unauthorized};

/// Paths that are the API (as opposed to the page's files).
fn is_api_path(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path == "/ws"
        || path.starts_with("/ws/")
        || path == "/metrics"
}

/// Whether the request asks for a WebSocket, and its key if so.
pub fn upgrade_key(request: &tiny_http::Request) -> Option<String> {
    let wants = header(request, "Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants {
        return None;
    }
    header(request, "Sec-WebSocket-Key").map(str::to_string)
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
        Err(Error::internal(
            "the server failed while handling this request (it was logged)",
        ))
    });
    match outcome {
        Ok(Reply::Upgrade(session)) => upgrade(app, request, session),
        Ok(Reply::Deferred(answer_later)) => {
            let handed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer_later(Responder::new(request))
            }));
            if handed.is_err() {
                log::error!("handing over {method} {} panicked", loggable_url(&url));
            }
        }
        Ok(reply) => respond(request, reply),
        Err(err) => {
            metrics::inc(&METRICS.http_errors);
            respond(request, Reply::from(&err))
        }
    }
    METRICS.http_latency.observe(started.elapsed());
}

fn route(
    app: &Arc<App>,
    request: &mut tiny_http::Request,
    method: &Method,
    url: &str,
) -> Result<Reply, Error> {
    let web = &app.web;
    if !web.origins.host_ok(header(request, "Host")) {
        return Err(Error::forbidden(
            ErrorCode::ForbiddenHost,
            "this Host is not one of the server's names (see --allow-host)",
        ));
    }
    let (raw_path, raw_query) = url.split_once('?').unwrap_or((url, ""));
    let path = routes::normalize(raw_path).map_err(Error::invalid)?;
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
    let upgrade_headers = upgrade_key(request).is_some();
    // `?token=` is accepted on a real WebSocket upgrade only (and on the page's first
    // load, below), never on a REST route that merely carries upgrade headers.
    let real_upgrade = gate == routes::Gate::Upgrade && upgrade_headers && reads;

    let changes_state = !matches!(method, Method::Get | Method::Head | Method::Options);
    if (upgrade_headers || changes_state)
        && let Some(origin) = header(request, "Origin")
        && !web.origins.origin_ok(origin)
    {
        return Err(Error::forbidden(
            ErrorCode::ForbiddenOrigin,
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
    if web.auth.enabled()
        && deliberate
        && let Some(left) = web.auth.blocked(ip)
    {
        return Err(auth::too_many_attempts(left));
    }
    let caller = match presented {
        None if !web.auth.enabled() => Some(auth::Caller::local()),
        None => None,
        Some(token) => match web.auth.check(token) {
            Some(who) => Some(who),
            None => {
                if deliberate {
                    web.auth.failed(ip, &path);
                }
                None
            }
        },
    };

    // The page's first load with `?token=`: trade it for a cookie and drop it from the
    // address bar.
    if path == "/"
        && reads
        && web.auth.enabled()
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
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                ErrorCode::MethodNotAllowed,
                format!(
                    "{method} is not allowed on {path}; use {}",
                    allowed.join(" or ")
                ),
            ));
        }
        routes::Found::Nothing => {
            if reads && let Some(reply) = web.static_files.get(&path) {
                return Ok(reply);
            }
            return Err(Error::not_found(format!("nothing at {path}")));
        }
    };
    let mut req = Request {
        inner: request,
        path,
        params,
        query,
        max_body: web.max_body,
        caller,
    };
    let reply = (route.handler)(app, &mut req)?;
    if matches!(reply, Reply::Upgrade(_)) && !real_upgrade {
        return Err(Error::new(
            ErrorKind::UpgradeRequired,
            ErrorCode::UpgradeRequired,
            "this endpoint is a WebSocket: connect with a WebSocket client",
        ));
    }
    Ok(reply)
}

/// Checks a WebSocket handshake against the limits, then hands the connection to the
/// WebSocket layer with `session`.
fn upgrade(app: &Arc<App>, request: tiny_http::Request, session: Box<dyn Session>) {
    let refuse = |request, err: Error| respond(request, Reply::from(&err));
    let Some(key) = upgrade_key(&request) else {
        return refuse(request, Error::invalid("missing Sec-WebSocket-Key"));
    };
    let version_ok = header(&request, "Sec-WebSocket-Version").is_some_and(|v| v.trim() == "13");
    if !version_ok {
        return refuse(
            request,
            Error::new(
                ErrorKind::UpgradeRequired,
                ErrorCode::UnsupportedVersion,
                "only WebSocket version 13 is supported",
            ),
        );
    }
    let sockets = &app.sockets;
    let Some(place) = sockets.registry.reserve(sockets.max_connections) else {
        return refuse(
            request,
            Error::unavailable(
                ErrorCode::TooManyConnections,
                format!(
                    "the server holds its limit of {} WebSocket connections (--max-connections)",
                    sockets.max_connections
                ),
            ),
        );
    };
    let peer = request.remote_addr().copied();
    if let Some(ip) = peer.map(|p| p.ip()) {
        let from_ip = sockets.registry.count_from(ip);
        if from_ip >= sockets.max_connections_per_ip {
            return refuse(
                request,
                Error::limit(
                    ErrorCode::TooManyConnections,
                    format!(
                        "{from_ip} WebSocket connections from {ip} are open, the limit (--max-connections-per-ip) is {}",
                        sockets.max_connections_per_ip
                    ),
                ),
            );
        }
    }
    if let Err(err) = sockets.accept(request, &key, session, place) {
        log::warn!("WebSocket upgrade from {peer:?} failed: {err}");
    }
}
