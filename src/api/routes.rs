//! Every route of the server, in one table: method, path, handler, and whether it needs
//! a token (`http::routes::Gate`).

use std::sync::Arc;

use tiny_http::Method;

use super::{exec, hosts, system, tasks, workers, worktrees};
use crate::app::App;
use crate::error::Error;
use crate::http::reply::Reply;
use crate::http::request::Request;
use crate::http::routes::{Gate, Route};

pub type Handler = fn(&Arc<App>, &mut Request<'_>) -> Result<Reply, Error>;

const fn route(method: Method, path: &'static str, handler: Handler) -> Route<Handler> {
    Route {
        method,
        path,
        handler,
        gate: Gate::Token,
    }
}

const fn public(method: Method, path: &'static str, handler: Handler) -> Route<Handler> {
    Route {
        method,
        path,
        handler,
        gate: Gate::Public,
    }
}

const fn websocket(path: &'static str, handler: Handler) -> Route<Handler> {
    Route {
        method: Method::Get,
        path,
        handler,
        gate: Gate::Upgrade,
    }
}

use Method::{Delete, Get, Post};

pub static ROUTES: &[Route<Handler>] = &[
    public(Get, "/healthz", system::healthz),
    route(Get, "/metrics", system::prometheus),
    route(Get, "/api/status", system::status),
    route(Get, "/api/openapi.json", system::openapi),
    public(Post, "/api/auth/login", workers::login),
    route(Get, "/api/ai-clis", workers::kinds),
    route(Get, "/api/workers", workers::list),
    route(Post, "/api/workers", workers::create),
    route(Get, "/api/workers/{}", workers::get),
    route(Delete, "/api/workers/{}", workers::delete),
    route(Post, "/api/workers/{}/messages", workers::send),
    route(Get, "/api/workers/{}/events", workers::events),
    route(Post, "/api/workers/{}/interrupt", workers::interrupt),
    route(Post, "/api/workers/{}/stop", workers::stop),
    route(Post, "/api/workers/{}/start", workers::start),
    route(Get, "/api/workers/{}/approvals", workers::approvals),
    route(Post, "/api/workers/{}/approvals/{}", workers::approve),
    route(Get, "/api/workers/{}/diff", worktrees::get),
    route(Post, "/api/workers/{}/diff", worktrees::publish),
    route(Post, "/api/workers/{}/commit", worktrees::commit),
    route(Post, "/api/workers/{}/merge", worktrees::merge),
    route(Post, "/api/workers/{}/discard", worktrees::discard),
    route(Post, "/api/exec", exec::run),
    route(Get, "/api/exec/{}", exec::get),
    route(Post, "/api/exec/batch", exec::batch),
    route(Get, "/api/hosts", hosts::list),
    route(Post, "/api/hosts/{}/check", hosts::check),
    route(Get, "/api/tasks", tasks::list),
    route(Post, "/api/tasks", tasks::create),
    route(Get, "/api/tasks/{}", tasks::get),
    route(Post, "/api/tasks/{}/cancel", tasks::cancel),
    route(Post, "/api/tasks/{}/run", tasks::run),
    websocket("/ws/{}", workers::stream),
    websocket("/ws", workers::agents),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::{Found, find, normalize};

    #[test]
    fn a_normalized_path_finds_its_route_and_gate() {
        let Found::Route(route, _) = find(ROUTES, &Method::Get, &normalize("/metrics%2F").unwrap())
        else {
            panic!("no route");
        };
        assert_eq!(route.gate, Gate::Token);
    }

    #[test]
    fn a_known_path_with_another_method_is_not_a_404() {
        assert!(matches!(
            find(ROUTES, &Method::Put, "/api/workers"),
            Found::WrongMethod(_)
        ));
        assert!(matches!(
            find(ROUTES, &Method::Get, "/nope"),
            Found::Nothing
        ));
    }

    /// Every REST route is described in the OpenAPI document with its method, and the
    /// document describes nothing the server does not serve.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(system::OPENAPI).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut served = std::collections::BTreeSet::new();
        for route in ROUTES.iter().filter(|r| !r.path.starts_with("/ws")) {
            let path = route
                .path
                .replacen("{}", "{id}", 1)
                .replacen("{}", "{approval_id}", 1);
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
