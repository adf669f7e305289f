//! `/api/exec`: one-off commands over REST (the same runner as `command:execute`).
//!
//! A command runs on a thread of its own, never on the HTTP pool: the request is handed
//! to that thread, which answers when the command ends (`Reply::Deferred`). With
//! `"detach": true` the answer is at once (`202`, the command's id), and the result is
//! read later from `GET /api/exec/{id}`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::dashboards::Audience;
use crate::error::Error;
use crate::http::reply::Reply;
use crate::http::request::Request;

/// Runs `{"argv", "shell"?, "cwd"?, "env"?, "timeout"?, "detach"?}` and answers with its
/// result (or, detached, with its id at once).
pub fn run(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?.clone();
    let body = req.json()?;
    let mut payload = body
        .as_object()
        .cloned()
        .ok_or_else(|| Error::invalid("the body must be an object"))?;
    let detach = match payload.remove("detach") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(Error::invalid("`detach` must be true or false")),
    };
    let request = app.commands.request(&payload)?;
    let permit = app.commands.permit(&caller, &request.argv)?;
    if detach {
        let id = permit.id().to_string();
        app.commands
            .spawn(permit, request, Box::new(|_, _, _| {}), Box::new(|_| {}));
        return Ok(Reply::Json(
            202,
            json!({"id": id, "state": "running", "poll": format!("/api/exec/{id}")}),
        ));
    }
    let commands = app.commands.clone();
    Ok(Reply::Deferred(Box::new(move |responder| {
        commands.spawn(
            permit,
            request,
            Box::new(|_, _, _| {}),
            Box::new(move |result| responder.send(Ok(Reply::ok(result.json())))),
        );
    })))
}

/// `GET /api/exec/{id}`: a command that runs (`state: running`) or its result
/// (`state: finished`, `result`).
pub fn get(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?;
    Ok(Reply::ok(app.commands.get(caller, req.param(0))?))
}

/// Runs `{"commands": [{"name", "argv"|"command", "shell"?, "cwd"?, "env"?, "timeout"?}],
/// "concurrency"?}` and answers with every result, in order. Progress (each command's
/// start and end) is pushed to `/ws` clients as `command:progress`.
pub fn batch(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, Error> {
    let caller = req.caller()?.clone();
    let body = req.json()?;
    let commands = body
        .get("commands")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("`commands` is required: an array of commands"))?;
    if commands.is_empty() || commands.len() > 1000 {
        return Err(Error::invalid("`commands` must hold 1 to 1000 commands"));
    }
    let concurrency = match body.get("concurrency") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| Error::invalid("`concurrency` must be 1 to 64"))?
            as usize,
    };
    crate::exec::may_run(&caller)?;
    let mut jobs = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let map = command
            .as_object()
            .ok_or_else(|| Error::invalid(format!("command {index} must be an object")))?;
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut payload = map.clone();
        payload.remove("name");
        let request = app.commands.request(&payload).map_err(|e| Error {
            message: format!("command {index} ({name}): {}", e.message),
            ..e
        })?;
        jobs.push((index, name, request));
    }
    let app = app.clone();
    Ok(Reply::Deferred(Box::new(move |responder| {
        let spawned = std::thread::Builder::new()
            .name("cmd-batch".into())
            .spawn(move || {
                let answer = run_batch(&app, &caller, jobs, concurrency);
                responder.send(Ok(Reply::ok(answer)));
            });
        if let Err(err) = spawned {
            log::error!("could not start a batch of commands: {err}");
        }
    })))
}

/// Runs the jobs of a batch, `concurrency` at a time, on this thread and helpers.
fn run_batch(
    app: &Arc<App>,
    caller: &crate::auth::Caller,
    jobs: Vec<(usize, String, crate::exec::ExecRequest)>,
    concurrency: usize,
) -> Value {
    let batch_id = uuid::Uuid::new_v4().to_string();
    let total = jobs.len();
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let results = std::sync::Mutex::new(vec![Value::Null; total]);
    std::thread::scope(|scope| {
        for _ in 0..concurrency.min(total) {
            scope.spawn(|| loop {
                let Some((index, name, request)) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                    return;
                };
                let progress = |state: &str, result: Option<&Value>| {
                    app.dashboards.push(
                        crate::protocol::ServerType::CommandProgress,
                        json!({"batch_id": batch_id, "index": index, "total": total, "name": name, "state": state, "result": result}),
                        None,
                        Audience::ReadersOf(Some(&caller.name)),
                    );
                };
                progress("started", None);
                let result = match app.commands.permit(caller, &request.argv) {
                    Ok(permit) => app.commands.run(&permit, &request, &|_, _, _| {}).json(),
                    Err(err) => json!({"success": false, "error": err.message}),
                };
                let mut entry = json!({"name": name, "index": index});
                if let (Some(e), Some(r)) = (entry.as_object_mut(), result.as_object()) {
                    e.extend(r.clone());
                }
                progress("finished", Some(&entry));
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = entry;
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let success = results.iter().all(|r| r["success"] == true);
    json!({"batch_id": batch_id, "success": success, "results": results})
}
