//! `/api/hosts`: the machines workers may run on (`--hosts FILE`), and their checks.

use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::error::{Error, ErrorCode};
use crate::http::reply::Reply;
use crate::http::request::Request;

/// Every host with what its last check found.
pub fn list(app: &Arc<App>, _: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::ok(json!({"hosts": app.hosts.list()})))
}

/// Checks a host now over ssh (at most 20 s): reachable, round trip, OS, AI CLIs.
pub fn check(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?;
    if !caller.may_create() {
        return Err(Error::forbidden(
            ErrorCode::Forbidden,
            format!(
                "the token `{}` is a viewer: it may not check hosts",
                caller.name
            ),
        ));
    }
    let status = app.hosts.check(req.param(0))?;
    Ok(Reply::typed(200, &status))
}
