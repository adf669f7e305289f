//! `/api/exec`: one-off commands over REST (the same runner as `command:execute`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::exec;
use crate::http::{Reply, Request};
use crate::metrics::{self, METRICS};
use crate::server::App;

fn record(result: &exec::ExecResult) {
    metrics::inc(&METRICS.commands_run);
    if !result.success() {
        metrics::inc(&METRICS.commands_failed);
    }
    METRICS.command_latency.observe(result.duration);
}

/// Runs `{"argv", "shell"?, "cwd"?, "env"?, "timeout"?}` and answers with its result.
pub fn run(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let payload = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be an object"))?;
    let request = app.exec_request(payload)?;
    let _permit = app.command_permit(req.caller)?;
    let result = exec::run(&app.hub.engine, &request, &|_, _, _| {});
    record(&result);
    Ok(Reply::ok(result.json()))
}

/// Runs `{"commands": [{"name", "argv"|"command", "shell"?, "cwd"?, "env"?, "timeout"?}],
/// "concurrency"?}` and answers with every result, in order. Progress (each command's
/// start and end) is pushed to `/ws` clients as `command:progress`.
pub fn batch(app: &Arc<App>, req: &mut Request<'_>) -> Result<Reply, ApiError> {
    let body = req.json()?;
    let commands = body
        .get("commands")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("`commands` is required: an array of commands"))?;
    if commands.is_empty() || commands.len() > 1000 {
        return Err(ApiError::bad_request(
            "`commands` must hold 1 to 1000 commands",
        ));
    }
    let concurrency = match body.get("concurrency") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| ApiError::bad_request("`concurrency` must be 1 to 64"))?
            as usize,
    };
    let mut jobs = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let map = command
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("command {index} must be an object")))?;
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut payload = map.clone();
        payload.remove("name");
        let request = app.exec_request(&payload).map_err(|e| {
            ApiError::new(
                e.status,
                e.code,
                format!("command {index} ({name}): {}", e.message),
            )
        })?;
        jobs.push((index, name, request));
    }
    let caller = req.caller;
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
                    app.clients.push(
                        "command:progress",
                        json!({"batch_id": batch_id, "index": index, "total": total, "name": name, "state": state, "result": result}),
                        None,
                    );
                };
                progress("started", None);
                let result = match app.command_permit(caller) {
                    Ok(_permit) => {
                        let result = exec::run(&app.hub.engine, &request, &|_, _, _| {});
                        record(&result);
                        result.json()
                    }
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
    Ok(Reply::ok(
        json!({"batch_id": batch_id, "success": success, "results": results}),
    ))
}
