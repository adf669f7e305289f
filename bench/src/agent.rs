//! `agent`: the agent-protocol figures of the later issue (one multiplexed `/ws`): many
//! clients each sending mixed requests (`connection:ping`, `command:execute` of `true`,
//! `system:status`) and timing the round trip to the answer with the request's id as its
//! `correlation_id`. `--probe` only says whether the server answers `connection:ping`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Ws, WsUrl};
use crate::stats::percentile;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The multiplexed endpoint, e.g. ws://127.0.0.1:7788/ws.
    #[arg(long)]
    pub url: String,
    /// Only check that `connection:ping` is answered.
    #[arg(long)]
    pub probe: bool,
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Access token, sent as `Authorization: Bearer TOKEN` (workerhub's default
    /// authentication).
    #[arg(long)]
    pub token: Option<String>,
}

const KINDS: [&str; 3] = ["connection:ping", "command:execute", "system:status"];

fn envelope(id: &str, kind: &str) -> String {
    let payload = match kind {
        "command:execute" => json!({"argv": ["true"], "timeout": 10}),
        _ => json!({}),
    };
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({"id": id, "type": kind, "timestamp": timestamp, "payload": payload}).to_string()
}

/// Waits for the final answer to request `id`; returns its type and, for an error, the
/// error's code.
fn answer(ws: &mut Ws, id: &str, deadline: Instant) -> Result<(String, Option<String>), String> {
    loop {
        let mut found: Option<(String, Option<String>)> = None;
        let read = ws.read_some(deadline, &mut |msg, _| {
            let Ok(v) = serde_json::from_slice::<Value>(msg) else {
                return;
            };
            let kind = v["type"].as_str().unwrap_or("");
            if v["correlation_id"].as_str() == Some(id) && !kind.ends_with(":progress") {
                let code = kind.ends_with(":error").then(|| {
                    v["payload"]["code"]
                        .as_str()
                        .or(v["payload"]["error"]["code"].as_str())
                        .unwrap_or(kind)
                        .to_string()
                });
                found = Some((kind.to_string(), code));
            }
        })?;
        if let Some(answer) = found {
            return Ok(answer);
        }
        if !read {
            return Err(format!("no answer to {id}"));
        }
        if ws.closed {
            return Err(format!("connection closed before the answer to {id}"));
        }
    }
}

pub fn run(a: &AgentArgs) -> Result<Value, String> {
    let url = WsUrl::parse(&a.url)?.with_token(a.token.as_deref());
    if a.probe {
        let deadline = Instant::now() + Duration::from_secs(3);
        let result = Ws::connect(&url, Duration::from_secs(3)).and_then(|mut ws| {
            ws.send_text(&envelope("probe-1", "connection:ping"))?;
            answer(&mut ws, "probe-1", deadline)
        });
        return Ok(match result {
            Ok((kind, _)) if kind == "connection:pong" => {
                json!({"scenario": "agent", "supported": true})
            }
            Ok((kind, _)) => {
                json!({"scenario": "agent", "supported": false, "reason": format!("answered {kind}")})
            }
            Err(e) => json!({"scenario": "agent", "supported": false, "reason": e}),
        });
    }
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let start = Instant::now();
    let handles: Vec<_> = (0..a.clients)
        .map(|c| {
            let url = url.clone();
            let requests = a.requests;
            std::thread::spawn(
                move || -> Result<Vec<(usize, u64, Option<String>)>, String> {
                    let mut ws = Ws::connect(&url, Duration::from_secs(10))?;
                    let mut out = Vec::with_capacity(requests);
                    for k in 0..requests {
                        let kind = k % KINDS.len();
                        let id = format!("c{c}-{k}");
                        let t0 = Instant::now();
                        ws.send_text(&envelope(&id, KINDS[kind]))?;
                        let error = match answer(&mut ws, &id, deadline) {
                            Ok((_, code)) => code,
                            Err(e) if ws.closed => return Err(e),
                            Err(_) => Some("no answer".to_string()),
                        };
                        out.push((kind, t0.elapsed().as_nanos() as u64, error));
                    }
                    ws.close();
                    Ok(out)
                },
            )
        })
        .collect();
    let mut per_kind: Vec<Vec<u64>> = vec![Vec::new(); KINDS.len()];
    let mut failed = 0usize;
    let mut codes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(samples)) => {
                for (kind, ns, error) in samples {
                    match error {
                        None => per_kind[kind].push(ns),
                        Some(code) => {
                            failed += 1;
                            *codes.entry(format!("{} {code}", KINDS[kind])).or_default() += 1;
                        }
                    }
                }
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a client thread panicked".into()),
        }
    }
    let mut out = json!({
        "scenario": "agent",
        "clients": a.clients,
        "requests_per_client": a.requests,
        "failed_requests": failed,
        "error_answers": codes,
        "client_errors": errors.iter().take(5).collect::<Vec<_>>(),
        "secs": start.elapsed().as_secs_f64(),
    });
    let map = out.as_object_mut().ok_or("not an object")?;
    for (kind, samples) in KINDS.iter().zip(per_kind.iter_mut()) {
        let name = kind.replace(':', "_");
        let avg = samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64;
        map.insert(format!("{name}_answered"), json!(samples.len()));
        map.insert(format!("{name}_avg_ms"), json!(avg / 1e6));
        map.insert(
            format!("{name}_p99_ms"),
            json!(percentile(samples, 99.0) as f64 / 1e6),
        );
    }
    Ok(out)
}
