//! HTTP, below the API: admitting a request and answering it.
//!
//! [`admit`] checks a request (Host, Origin: `guard`), normalizes its path once, finds
//! its route in a table (`routes`, the table being the API's), decides from the route
//! whether it needs a token and checks it, and hands back the [`Request`] a handler
//! sees; `reply` turns whatever a handler returns, value or error, into the response.
//! What to call and what to do with an upgrade is the API's (`api::serve`).

pub mod guard;
pub mod reply;
pub mod request;
pub mod routes;
pub mod static_files;

use tiny_http::Method;

use crate::auth;
use crate::error::{Error, ErrorCode, ErrorKind};
use guard::Origins;
pub use reply::{Reply, Responder, respond, status_of};
pub use request::{Request, header, loggable_url, unauthorized};
use routes::{Found, Gate, Route};
use static_files::StaticFiles;

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

/// What the HTTP layer checks and serves besides the API.
pub struct Web {
    pub auth: auth::Auth,
    pub origins: Origins,
    pub static_files: StaticFiles,
    /// Largest request body.
    pub max_body: usize,
}

/// A request let in: either answered already (the page's files, a redirect), or to be
/// handled by its route's handler.
pub enum Admitted<'t, 'r, H> {
    Answered(Reply),
    Route {
        route: &'t Route<H>,
        request: Request<'r>,
        /// A real WebSocket handshake (a route that upgrades answers others 426).
        upgrade: bool,
    },
}

/// The answer to a WebSocket route reached without a WebSocket handshake.
pub fn upgrade_required() -> Error {
    Error::new(
        ErrorKind::UpgradeRequired,
        ErrorCode::UpgradeRequired,
        "this endpoint is a WebSocket: connect with a WebSocket client",
    )
}

/// Checks a WebSocket handshake's own headers: its key, if it is one we take.
pub fn handshake_key(request: &tiny_http::Request) -> Result<String, Error> {
    let key = upgrade_key(request).ok_or_else(|| Error::invalid("missing Sec-WebSocket-Key"))?;
    let version_ok = header(request, "Sec-WebSocket-Version").is_some_and(|v| v.trim() == "13");
    if !version_ok {
        return Err(Error::new(
            ErrorKind::UpgradeRequired,
            ErrorCode::UnsupportedVersion,
            "only WebSocket version 13 is supported",
        ));
    }
    Ok(key)
}

/// Lets a request in, or says why not: its Host and Origin, its path (normalized once),
/// its route in `table`, the token the route needs.
pub fn admit<'t, 'r, H>(
    web: &Web,
    table: &'t [Route<H>],
    request: &'r mut tiny_http::Request,
    method: &Method,
    url: &str,
) -> Result<Admitted<'t, 'r, H>, Error> {
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
    let found = routes::find(table, method, &path);
    let reads = matches!(method, Method::Get | Method::Head);
    let gate = match &found {
        Found::Route(route, _) => route.gate,
        // The page's own files are public; anything else under the API needs a token
        // even to learn that it does not exist.
        Found::Nothing if reads && !is_api_path(&path) => Gate::Public,
        _ => Gate::Token,
    };
    let upgrade_headers = upgrade_key(request).is_some();
    // `?token=` is accepted on a real WebSocket upgrade only (and on the page's first
    // load, below), never on a REST route that merely carries upgrade headers.
    let real_upgrade = gate == Gate::Upgrade && upgrade_headers && reads;

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
        return Ok(Admitted::Answered(Reply::WithHeaders(
            Box::new(Reply::Json(303, serde_json::json!({"location": "/"}))),
            vec![
                ("Location".into(), "/".into()),
                ("Set-Cookie".into(), auth::set_cookie(token, secure)),
            ],
        )));
    }
    if caller.is_none() && gate != Gate::Public {
        return Err(unauthorized());
    }

    let (route, params) = match found {
        Found::Route(route, params) => (route, params),
        Found::WrongMethod(allowed) => {
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                ErrorCode::MethodNotAllowed,
                format!(
                    "{method} is not allowed on {path}; use {}",
                    allowed.join(" or ")
                ),
            ));
        }
        Found::Nothing => {
            if reads && let Some(reply) = web.static_files.get(&path) {
                return Ok(Admitted::Answered(reply));
            }
            return Err(Error::not_found(format!("nothing at {path}")));
        }
    };
    Ok(Admitted::Route {
        route,
        request: Request {
            inner: request,
            path,
            params,
            query,
            max_body: web.max_body,
            caller,
        },
        upgrade: real_upgrade,
    })
}
