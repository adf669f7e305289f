//! The REST API and the WebSocket endpoints: the route table (`routes`), its handlers
//! (plain functions from a request to a reply, one module a resource), and `serve`,
//! which takes a request from the HTTP pool to its answer: admitted by `http`, handled
//! here, answered by `http::reply`, or upgraded to a WebSocket (`ws`).

pub mod exec;
pub mod hosts;
pub mod routes;
pub mod system;
pub mod tasks;
pub mod workers;
pub mod worktrees;

use std::sync::Arc;

use tiny_http::Method;

use crate::app::App;
use crate::error::Error;
use crate::http::{self, Admitted, Reply, Responder, loggable_url, respond};
use crate::metrics::{self, METRICS};
use crate::ws::reader::Session;

/// Serves one request. Runs on a thread of the HTTP pool.
pub fn serve(app: &Arc<App>, mut request: tiny_http::Request) {
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
        call(app, &mut request, &method, &url)
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

fn call(
    app: &Arc<App>,
    request: &mut tiny_http::Request,
    method: &Method,
    url: &str,
) -> Result<Reply, Error> {
    match http::admit(&app.web, routes::ROUTES, request, method, url)? {
        Admitted::Answered(reply) => Ok(reply),
        Admitted::Route {
            route,
            mut request,
            upgrade,
        } => {
            let reply = (route.handler)(app, &mut request)?;
            if matches!(reply, Reply::Upgrade(_)) && !upgrade {
                return Err(http::upgrade_required());
            }
            Ok(reply)
        }
    }
}

/// Checks a WebSocket handshake, then hands the connection to the WebSocket layer with
/// `session`; a refusal is an ordinary HTTP answer.
fn upgrade(app: &Arc<App>, request: tiny_http::Request, session: Box<dyn Session>) {
    let key = match http::handshake_key(&request) {
        Ok(key) => key,
        Err(err) => return respond(request, Reply::from(&err)),
    };
    if let Err((request, err)) = app.sockets.upgrade(request, &key, session) {
        respond(request, Reply::from(&err));
    }
}
