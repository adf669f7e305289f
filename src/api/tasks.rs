//! `/api/tasks`: the task queue over REST (the same queue as `task:assign`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::{Reply, Request};
use crate::server::App;

const STATUSES: &[&str] = &["pending", "running", "completed", "failed", "cancelled"];

pub fn list(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let status = req.query("status");
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "`status` must be one of {}",
            STATUSES.join(", ")
        )));
    }
    let tasks: Vec<Value> = app.tasks.list(status).iter().map(|t| t.json()).collect();
    Ok(Reply::ok(json!({"tasks": tasks})))
}

pub fn create(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let map = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be an object"))?;
    Ok(Reply::Json(201, app.tasks.create(map)?.json()))
}

pub fn get(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(app.tasks.get(req.param(0))?.json()))
}

pub fn cancel(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(app.tasks.cancel(req.param(0))?.json()))
}

pub fn run(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::ok(app.tasks.run_now(req.param(0))?.json()))
}
