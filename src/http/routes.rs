//! Every route of the server, in one table: method, path, handler. `{}` in a path is a
//! parameter (`Request::param`).

use tiny_http::Method;

use super::{Reply, Request};
use crate::api;
use crate::error::ApiError;
use crate::server::App;

pub type Handler = fn(&App, &mut Request<'_>) -> Result<Reply, ApiError>;

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: Handler,
}

const fn route(method: Method, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

use Method::{Delete, Get, Post};

pub static ROUTES: &[Route] = &[
    route(Get, "/healthz", api::system::healthz),
    route(Get, "/api/status", api::system::status),
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
    route(Get, "/ws/{}", api::workers::stream),
];

pub enum Found {
    Route(Handler, Vec<String>),
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

pub fn find(method: &Method, path: &str) -> Found {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = matches(route.path, path) {
            if &route.method == method || (method == &Method::Head && route.method == Get) {
                return Found::Route(route.handler, params);
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
    fn a_known_path_with_another_method_is_not_a_404() {
        assert!(matches!(
            find(&Method::Put, "/api/workers"),
            Found::WrongMethod(_)
        ));
        assert!(matches!(find(&Method::Get, "/nope"), Found::Nothing));
    }
}
