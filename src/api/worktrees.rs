//! A worker's git worktree: `/api/workers/{id}/diff`, `/commit`, `/merge`, `/discard`
//! (the worker's side is `worker::isolation`, git's is `worktree`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Access;
use crate::error::Error;
use crate::http::reply::Reply;
use crate::http::request::Request;
use crate::worker::Worker;
use crate::worktree::merge::Strategy;

fn worker(app: &Arc<App>, req: &Request<'_>, access: Access) -> Result<Arc<Worker>, Error> {
    app.hub.require_for(req.caller()?, req.param(0), access)
}

/// A string field of a body, when present.
fn text<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(format!("`{key}` must be a string"))),
    }
}

/// `GET /api/workers/{id}/diff[?stat=1]`: the worktree's changes against its base, as a
/// per-file summary and (without `stat`) the unified diff.
pub fn get(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Read)?;
    let stat = matches!(req.query("stat"), Some("1" | "true"));
    let diff = worker.diff(!stat)?;
    let mut body = serde_json::to_value(&diff.summary)
        .map_err(|err| Error::internal(format!("the diff could not be written: {err}")))?;
    if let Value::Object(map) = &mut body {
        map.insert("worker_id".into(), Value::from(worker.id.as_str()));
        if let Some(patch) = diff.patch {
            map.insert("diff".into(), Value::from(patch));
            map.insert("truncated".into(), Value::from(diff.truncated));
        }
    }
    Ok(Reply::ok(body))
}

/// `POST /api/workers/{id}/diff`: publishes a `diff` event now, and answers its summary.
pub fn publish(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Read)?;
    Ok(Reply::typed(200, &worker.publish_diff()?))
}

/// `POST /api/workers/{id}/commit {"message"?}`: commits everything on its branch.
pub fn commit(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    let body = req.json()?;
    Ok(Reply::typed(200, &worker.commit(text(&body, "message")?)?))
}

/// `POST /api/workers/{id}/merge {"strategy"?, "into"?, "message"?}`: merges its branch
/// into the branch it came from (squash by default); 409 `conflict` with `paths` when it
/// would conflict, nothing changed.
pub fn merge(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    let body = req.json()?;
    let strategy = match body.get("strategy") {
        None | Some(Value::Null) => Strategy::default(),
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
            Error::invalid("`strategy` must be \"squash\", \"merge\" or \"rebase\"")
        })?,
    };
    let merged = worker.merge(strategy, text(&body, "into")?, text(&body, "message")?)?;
    Ok(Reply::typed(200, &merged))
}

/// `POST /api/workers/{id}/discard`: throws away every change of its worktree.
pub fn discard(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let worker = worker(app, req, Access::Change)?;
    Ok(Reply::ok(
        json!({"discarded": true, "diff": worker.discard()?}),
    ))
}
