//! Every route of the server, in one table: method, path, handler, and whether it needs
//! a token. `{}` in a path is a parameter (`Request::param`). Paths are matched after
//! `normalize` (once, before anything else looks at them).

use std::sync::Arc;

use tiny_http::Method;

use super::reply::Reply;
use super::request::Request;
use crate::api;
use crate::app::App;
use crate::error::Error;

pub type Handler = fn(&Arc<App>, &mut Request<'_>) -> Result<Reply, Error>;

/// Who may reach a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Anyone: health, the login exchange.
    Public,
    /// A valid token (or `--no-auth`).
    Token,
    /// A valid token, and the request is a WebSocket upgrade (which may carry the token
    /// as `?token=`, since browsers cannot set headers on WebSockets).
    Upgrade,
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: Handler,
    pub gate: Gate,
}

const fn route(method: Method, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
        gate: Gate::Token,
    }
}

const fn public(method: Method, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
        gate: Gate::Public,
    }
}

const fn websocket(path: &'static str, handler: Handler) -> Route {
    Route {
        method: Method::Get,
        path,
        handler,
        gate: Gate::Upgrade,
    }
}

use Method::{Delete, Get, Post};

pub static ROUTES: &[Route] = &[
    public(Get, "/healthz", api::system::healthz),
    route(Get, "/metrics", api::system::prometheus),
    route(Get, "/api/status", api::system::status),
    route(Get, "/api/openapi.json", api::system::openapi),
    public(Post, "/api/auth/login", api::workers::login),
    route(Get, "/api/ai-clis", api::workers::kinds),
    route(Get, "/api/workers", api::workers::list),
    route(Post, "/api/workers", api::workers::create),
    route(Get, "/api/workers/{}", api::workers::get),
    route(Delete, "/api/workers/{}", api::workers::delete),
    route(Post, "/api/workers/{}/messages", api::workers::send),
    route(Get, "/api/workers/{}/events", api::workers::events),
    route(Post, "/api/workers/{}/interrupt", api::workers::interrupt),
    route(Post, "/api/workers/{}/stop", api::workers::stop),
    route(Post, "/api/workers/{}/start", api::workers::start),
    route(Post, "/api/exec", api::exec::run),
    route(Get, "/api/exec/{}", api::exec::get),
    route(Post, "/api/exec/batch", api::exec::batch),
    route(Get, "/api/tasks", api::tasks::list),
    route(Post, "/api/tasks", api::tasks::create),
    route(Get, "/api/tasks/{}", api::tasks::get),
    route(Post, "/api/tasks/{}/cancel", api::tasks::cancel),
    route(Post, "/api/tasks/{}/run", api::tasks::run),
    websocket("/ws/{}", api::workers::stream),
    websocket("/ws", api::workers::agents),
];

pub enum Found {
    Route(&'static Route, Vec<String>),
    /// The path exists with other methods.
    WrongMethod(Vec<String>),
    Nothing,
}

/// Matches `path` against `pattern`, returning the `{}` segments.
fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some("{}"), Some(part)) if !part.is_empty() => params.push(part.to_string()),
            (Some(want), Some(part)) if want == part => {}
            _ => return None,
        }
    }
}

/// The path as every later step sees it: percent-decoded once, `.` and empty segments
/// dropped, `..` applied (never above the root), no trailing slash. So `/metrics/`,
/// `/metrics//`, `/metrics%2F` and `/api/../metrics` are all `/metrics`, and the decision
/// whether a path is public is made on the same string that is routed.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "the path is not valid UTF-8")?;
    if decoded.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Finds the route for a normalized path.
pub fn find(method: &Method, path: &str) -> Found {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = matches(route.path, path) {
            if &route.method == method || (method == &Method::Head && route.method == Get) {
                return Found::Route(route, params);
            }
            allowed.push(route.method.to_string());
        }
    }
    if allowed.is_empty() {
        Found::Nothing
    } else {
        Found::WrongMethod(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_whole_segments() {
        assert_eq!(
            matches("/api/workers/{}", "/api/workers/abc"),
            Some(vec!["abc".into()])
        );
        assert_eq!(matches("/api/workers/{}", "/api/workers/"), None);
        assert_eq!(matches("/api/workers/{}", "/api/workers/a/b"), None);
        assert_eq!(
            matches("/api/workers/{}/events", "/api/workers/x/events"),
            Some(vec!["x".into()])
        );
    }

    #[test]
    fn paths_are_normalized_once_before_routing() {
        for raw in [
            "/metrics/",
            "/metrics//",
            "/metrics%2F",
            "//metrics",
            "/api/../metrics",
            "/./metrics",
        ] {
            assert_eq!(normalize(raw).unwrap(), "/metrics", "{raw}");
        }
        assert_eq!(normalize("/../..").unwrap(), "/");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("/a%00b").is_err());
        assert!(normalize("/%ff").is_err());
        let Found::Route(route, _) = find(&Method::Get, &normalize("/metrics%2F").unwrap()) else {
            panic!("no route");
        };
        assert_eq!(route.gate, Gate::Token);
    }

    #[test]
    fn a_known_path_with_another_method_is_not_a_404() {
        assert!(matches!(
            find(&Method::Put, "/api/workers"),
            Found::WrongMethod(_)
        ));
        assert!(matches!(find(&Method::Get, "/nope"), Found::Nothing));
    }
}

#[cfg(test)]
mod openapi_tests {
    use super::ROUTES;

    /// Every REST route is described in the OpenAPI document with its method, and the
    /// document describes nothing the server does not serve.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(crate::api::system::OPENAPI).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut served = std::collections::BTreeSet::new();
        for route in ROUTES.iter().filter(|r| !r.path.starts_with("/ws")) {
            let path = route.path.replacen("{}", "{id}", 1);
            let method = route.method.to_string().to_ascii_lowercase();
            assert!(
                paths.get(&path).and_then(|p| p.get(&method)).is_some(),
                "{method} {path} is not in openapi.json"
            );
            served.insert((path, method));
        }
        for (path, item) in paths {
            for method in item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
            {
                assert!(
                    served.contains(&(path.clone(), method.clone())),
                    "openapi.json has {method} {path}, which the server does not serve"
                );
            }
        }
    }
}
