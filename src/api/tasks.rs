//! `/api/tasks`: the task queue over REST (the same queue as `task:assign`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Access;
use crate::error::Error;
use crate::http::reply::Reply;
use crate::http::request::Request;
use crate::tasks::parse_status;

pub fn list(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let status = req.query("status").map(parse_status).transpose()?;
    let tasks: Vec<Value> = app
        .tasks
        .list(req.caller()?, status)
        .iter()
        .map(|t| t.json())
        .collect();
    Ok(Reply::ok(json!({"tasks": tasks})))
}

pub fn create(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?.clone();
    let body = req.json()?;
    let map = body
        .as_object()
        .ok_or_else(|| Error::invalid("the body must be an object"))?;
    Ok(Reply::Json(201, app.tasks.create(map, &caller)?.json()))
}

pub fn get(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let task = app
        .tasks
        .get_for(req.caller()?, req.param(0), Access::Read)?;
    Ok(Reply::ok(task.json()))
}

pub fn cancel(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::ok(
        app.tasks.cancel(req.caller()?, req.param(0))?.json(),
    ))
}

pub fn run(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    Ok(Reply::ok(
        app.tasks.run_now(req.caller()?, req.param(0))?.json(),
    ))
}
