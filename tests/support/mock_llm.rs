//! A mock model API for driving the real AI CLIs fully offline.
//!
//! [`MockLlm::start`] serves, on `127.0.0.1` and a free port, the four wire APIs the
//! CLIs speak:
//!
//! * Anthropic Messages (`POST /v1/messages`, Claude Code), SSE when `"stream": true`,
//!   plain JSON otherwise, and `POST /v1/messages/count_tokens`;
//! * OpenAI Responses (`POST /v1/responses`, Codex), SSE;
//! * Gemini (`POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`,
//!   `:generateContent` and `:countTokens`, Gemini CLI);
//! * OpenAI chat completions (`POST /v1/chat/completions`, OpenCode), SSE chunks or
//!   plain JSON.
//!
//! Any other request is answered `200 {}`.
//!
//! What a model request gets is decided by the current [`Behaviour`] (changeable at
//! any time with [`MockLlm::set_behaviour`]) and by the request itself: a request
//! whose latest user turn already carries a tool result gets the final text, any
//! other request gets the tool call (see [`Behaviour::ToolThenText`]). Every request
//! is recorded ([`MockLlm::requests`]).
//!
//! The `*_env` helpers prepare an isolated home for each CLI and return every
//! environment variable it needs to talk to this mock.

#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{Value, json};
use tiny_http::{Header, Response, Server, StatusCode};

/// The model name to pass to Gemini CLI with `-m` (an explicit model keeps it from
/// first asking a router model through `:generateContent`).
pub const GEMINI_MODEL: &str = "gemini-2.5-pro";

/// The model name configured for Codex and OpenCode.
pub const MOCK_MODEL: &str = "mock-model";

/// The OpenCode model id (`provider/model`) configured by [`MockLlm::opencode_env`].
pub const OPENCODE_MODEL: &str = "mock/mock-model";

/// The text the mock answers to requests that offer no tools (OpenCode's session
/// title request, for example) while the behaviour is [`Behaviour::ToolThenText`].
pub const AUX_TEXT: &str = "Mock title";

/// Requests under this path get `404 {"error": "Not found"}`: OpenCode's
/// environment points `npm_config_registry` here so that its background package
/// look-ups fail at once instead of reaching the network.
pub const NPM_REGISTRY_PATH: &str = "/npm-registry/";

/// How the mock answers model requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer every model request with this text.
    Text(String),
    /// The realistic two-step turn. While the latest user turn of the conversation
    /// carries no tool result, answer with `thinking` (if any) and a call of the
    /// CLI's shell tool running `command`; once it carries the tool result, answer
    /// with `final_text`. In `final_text`, `{tool_output}` is replaced by the tool
    /// result's text as the CLI sent it. Requests that offer no tools get
    /// [`AUX_TEXT`].
    ToolThenText {
        command: String,
        final_text: String,
        thinking: Option<String>,
    },
    /// Accept the request and never answer it (until the mock is dropped; the
    /// connection then gets an empty 500).
    Hang,
    /// Wait, then behave as the inner behaviour (dropping the mock cuts the wait
    /// short).
    Delay(Duration, Box<Behaviour>),
    /// Answer with this HTTP status and an error body in the API's shape.
    Error(u16),
}

impl Behaviour {
    /// Shorthand for [`Behaviour::Text`].
    pub fn text(text: &str) -> Behaviour {
        Behaviour::Text(text.to_string())
    }

    /// Shorthand for [`Behaviour::ToolThenText`] without thinking.
    pub fn tool_then_text(command: &str, final_text: &str) -> Behaviour {
        Behaviour::ToolThenText {
            command: command.to_string(),
            final_text: final_text.to_string(),
            thinking: None,
        }
    }
}

/// Which wire API a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/messages` (Claude Code).
    Anthropic,
    /// `POST /v1/messages/count_tokens` (Claude Code).
    AnthropicCountTokens,
    /// `POST /v1/responses` (Codex).
    Responses,
    /// `POST /v1beta/models/MODEL:streamGenerateContent` or `:generateContent`
    /// (Gemini CLI).
    Gemini,
    /// `POST /v1beta/models/MODEL:countTokens` (Gemini CLI).
    GeminiCountTokens,
    /// `POST /v1/chat/completions` (OpenCode).
    ChatCompletions,
    /// Anything else (answered `200 {}`).
    Other,
}

impl Api {
    fn classify(method: &str, path: &str) -> Api {
        if method != "POST" {
            return Api::Other;
        }
        if path == "/v1/messages" {
            Api::Anthropic
        } else if path == "/v1/messages/count_tokens" {
            Api::AnthropicCountTokens
        } else if path.ends_with("/responses") && path.starts_with("/v1") {
            Api::Responses
        } else if path.ends_with("/chat/completions") {
            Api::ChatCompletions
        } else if path.contains("/models/")
            && (path.ends_with(":streamGenerateContent") || path.ends_with(":generateContent"))
        {
            Api::Gemini
        } else if path.contains("/models/") && path.ends_with(":countTokens") {
            Api::GeminiCountTokens
        } else {
            Api::Other
        }
    }

    /// True for the APIs that produce a model answer (what [`Behaviour`] governs).
    pub fn is_model(self) -> bool {
        matches!(
            self,
            Api::Anthropic | Api::Responses | Api::Gemini | Api::ChatCompletions
        )
    }
}

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string (without `?`), empty if none.
    pub query: String,
    /// The body parsed as JSON (`Value::Null` if empty or not JSON).
    pub body: Value,
    /// The body as received (lossy UTF-8).
    pub raw_body: String,
    /// Which API it used.
    pub api: Api,
    /// When it arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// True if this request produces a model answer (see [`Api::is_model`]).
    pub fn is_model(&self) -> bool {
        self.api.is_model()
    }

    /// True if the request offers the model tools (the CLIs' agent requests do;
    /// title or summary requests do not).
    pub fn has_tools(&self) -> bool {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty())
    }

    /// True if the request asked for a streamed answer.
    pub fn is_stream(&self) -> bool {
        match self.api {
            Api::Gemini => self.path.ends_with(":streamGenerateContent"),
            _ => self.body.get("stream").and_then(Value::as_bool) == Some(true),
        }
    }

    /// The tool result carried by the latest user turn, if any (see
    /// [`Behaviour::ToolThenText`]).
    pub fn latest_tool_result(&self) -> Option<String> {
        latest_tool_result(self.api, &self.body)
    }

    /// True if the raw body contains `needle` (handy to check that a resumed turn
    /// carried the earlier conversation).
    pub fn body_contains(&self, needle: &str) -> bool {
        self.raw_body.contains(needle)
    }
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
    counter: AtomicU64,
}

/// The mock server. It stops when dropped.
pub struct MockLlm {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// Dropped to release hanging and delayed handlers.
    shutdown: Option<Sender<()>>,
    accept_thread: Option<JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockLlm {
    /// Starts the mock on `127.0.0.1:0` in a background thread.
    pub fn start(behaviour: Behaviour) -> io::Result<MockLlm> {
        let server = Server::http("127.0.0.1:0").map_err(io::Error::other)?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|addr| addr.port())
            .ok_or_else(|| io::Error::other("mock server has no IP address"))?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            requests: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (shutdown_tx, shutdown_rx) = crossbeam_channel::bounded::<()>(0);
        let accept_thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(format!("mock-llm-{port}"))
                .spawn(move || accept_loop(server, shared, stop, shutdown_rx))?
        };
        Ok(MockLlm {
            port,
            shared,
            stop,
            shutdown: Some(shutdown_tx),
            accept_thread: Some(accept_thread),
        })
    }

    /// The port the mock listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the behaviour for the requests that arrive from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        lock(&self.shared.behaviour).clone()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The model requests received so far (see [`Api::is_model`]).
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_model)
            .collect()
    }

    /// The model requests that offered tools (the agent's own conversation, without
    /// title or summary requests).
    pub fn agent_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.is_model() && request.has_tools())
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Waits until at least `count` model requests have arrived; false on timeout.
    pub fn wait_for_model_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.model_requests().len() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `count` agent requests (model requests offering tools)
    /// have arrived; false on timeout.
    pub fn wait_for_agent_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.agent_requests().len() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Prepares `home` for Claude Code and returns its environment: `HOME` (sessions
    /// go to `$HOME/.claude`), private XDG folders, the mock's base URL and a key.
    pub fn claude_env(&self, home: &Path) -> io::Result<Vec<(String, String)>> {
        let mut env = private_home_env(home)?;
        fs::create_dir_all(home.join(".claude"))?;
        env.extend(pairs(&[
            ("ANTHROPIC_BASE_URL", &self.base_url()),
            ("ANTHROPIC_API_KEY", "mock-anthropic-key"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("CLAUDE_CODE_MAX_RETRIES", "0"),
        ]));
        Ok(env)
    }

    /// Prepares `home` for Codex (writes `home/.codex/config.toml`, used as
    /// `CODEX_HOME`) and returns its environment.
    pub fn codex_env(&self, home: &Path) -> io::Result<Vec<(String, String)>> {
        let mut env = private_home_env(home)?;
        let codex_home = home.join(".codex");
        fs::create_dir_all(&codex_home)?;
        let config = format!(
            r#"model = "{MOCK_MODEL}"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.mock]
name = "Mock"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "MOCK_OPENAI_API_KEY"
supports_websockets = false
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 300000

[analytics]
enabled = false

[feedback]
enabled = false
"#,
            base = self.base_url()
        );
        fs::write(codex_home.join("config.toml"), config)?;
        env.extend(pairs(&[
            ("CODEX_HOME", &path_string(&codex_home)),
            ("MOCK_OPENAI_API_KEY", "mock-openai-key"),
        ]));
        Ok(env)
    }

    /// Prepares `home` for Gemini CLI (writes `home/.gemini/settings.json`: API-key
    /// auth, folder trust off) and returns its environment. Pass [`GEMINI_MODEL`]
    /// with `-m`.
    pub fn gemini_env(&self, home: &Path) -> io::Result<Vec<(String, String)>> {
        let mut env = private_home_env(home)?;
        let dir = home.join(".gemini");
        fs::create_dir_all(&dir)?;
        let settings = json!({
            "security": {
                "auth": {"selectedType": "gemini-api-key"},
                "folderTrust": {"enabled": false}
            },
            "privacy": {"usageStatisticsEnabled": false},
            "telemetry": {"enabled": false},
            "general": {
                "enableAutoUpdate": false,
                "enableAutoUpdateNotification": false,
                "maxAttempts": 1
            }
        });
        fs::write(dir.join("settings.json"), pretty(&settings))?;
        env.extend(pairs(&[
            ("GEMINI_CLI_NO_RELAUNCH", "true"),
            ("GEMINI_API_KEY", "mock-gemini-key"),
            ("GOOGLE_GEMINI_BASE_URL", &self.base_url()),
        ]));
        Ok(env)
    }

    /// Prepares `home` for OpenCode and returns its environment: the configuration
    /// (an `openai-compatible` provider `mock` pointing at this mock, model
    /// [`OPENCODE_MODEL`], every permission allowed) goes in
    /// `OPENCODE_CONFIG_CONTENT`, `HOME` and the XDG folders are private, and model
    /// fetching and autoupdate are off. `project_dir` is the folder OpenCode will run
    /// in; it must exist. `npm_config_registry` points at the mock (see
    /// [`NPM_REGISTRY_PATH`]) so that nothing is looked up on the network.
    pub fn opencode_env(
        &self,
        home: &Path,
        project_dir: &Path,
    ) -> io::Result<Vec<(String, String)>> {
        if !project_dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("project folder {} does not exist", project_dir.display()),
            ));
        }
        let mut env = private_home_env(home)?;
        env.extend(pairs(&[
            (
                "OPENCODE_CONFIG_CONTENT",
                &self.opencode_config().to_string(),
            ),
            ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
            ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
            ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),
            ("OPENCODE_DISABLE_SHARE", "1"),
            (
                "npm_config_registry",
                &format!("{}{NPM_REGISTRY_PATH}", self.base_url()),
            ),
        ]));
        Ok(env)
    }

    /// The OpenCode configuration used by [`MockLlm::opencode_env`] (also valid as
    /// an `opencode.json`).
    pub fn opencode_config(&self) -> Value {
        json!({
            "$schema": "https://opencode.ai/config.json",
            "model": OPENCODE_MODEL,
            "small_model": OPENCODE_MODEL,
            "autoupdate": false,
            "share": "disabled",
            "permission": {"*": "allow"},
            "provider": {
                "mock": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Mock",
                    "options": {"baseURL": format!("{}/v1", self.base_url()), "apiKey": "mock-key"},
                    "models": {MOCK_MODEL: {"name": "Mock Model"}}
                }
            }
        })
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Disconnects the channel: hanging and delayed handlers return at once.
        self.shutdown.take();
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }
}

/// `tests/clis/node_modules/.bin/NAME` if it exists (install with
/// `npm install --prefix tests/clis`).
pub fn cli_path(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clis/node_modules/.bin")
        .join(name);
    path.exists().then_some(path)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Creates `home`, its XDG folders and `home/tmp`, and returns `HOME`, `XDG_*` and
/// `TMPDIR` pointing there.
fn private_home_env(home: &Path) -> io::Result<Vec<(String, String)>> {
    let tmp = home.join("tmp");
    fs::create_dir_all(&tmp)?;
    let mut env = vec![
        ("HOME".to_string(), path_string(home)),
        ("TMPDIR".to_string(), path_string(&tmp)),
    ];
    for (key, sub) in [
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ] {
        let dir = home.join(sub);
        fs::create_dir_all(&dir)?;
        env.push((key.to_string(), path_string(&dir)));
    }
    Ok(env)
}

fn accept_loop(server: Server, shared: Arc<Shared>, stop: Arc<AtomicBool>, shutdown: Receiver<()>) {
    while !stop.load(Ordering::SeqCst) {
        let request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => continue,
        };
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        // One thread per request, so a hanging answer never blocks the others.
        let spawned = thread::Builder::new()
            .name("mock-llm-request".to_string())
            .spawn(move || handle(request, &shared, &shutdown));
        if spawned.is_err() {
            // Out of threads: the request was dropped, which answers 500.
            continue;
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: tiny_http::Request, status: u16, content_type: &str, body: String) {
    let mut response = Response::from_string(body).with_status_code(StatusCode(status));
    if let Some(h) = header("Content-Type", content_type) {
        response.add_header(h);
    }
    if let Some(h) = header("Cache-Control", "no-cache") {
        response.add_header(h);
    }
    let _ = request.respond(response);
}

fn handle(mut request: tiny_http::Request, shared: &Shared, shutdown: &Receiver<()>) {
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (url.clone(), String::new()),
    };
    let mut bytes = Vec::new();
    let _ = request.as_reader().read_to_end(&mut bytes);
    let raw_body = String::from_utf8_lossy(&bytes).into_owned();
    let body: Value = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
    let api = Api::classify(&method, &path);
    let recorded = RecordedRequest {
        method,
        path,
        query,
        body,
        raw_body,
        api,
        at: Instant::now(),
    };
    lock(&shared.requests).push(recorded.clone());

    match api {
        Api::Other if recorded.path.starts_with(NPM_REGISTRY_PATH) => respond(
            request,
            404,
            "application/json",
            json!({"error": "Not found"}).to_string(),
        ),
        Api::Other => respond(request, 200, "application/json", "{}".to_string()),
        Api::AnthropicCountTokens => respond(
            request,
            200,
            "application/json",
            json!({"input_tokens": 42}).to_string(),
        ),
        Api::GeminiCountTokens => respond(
            request,
            200,
            "application/json",
            json!({"totalTokens": 42}).to_string(),
        ),
        _ => {
            let behaviour = lock(&shared.behaviour).clone();
            let n = shared.counter.fetch_add(1, Ordering::SeqCst) + 1;
            answer(request, &recorded, behaviour, n, shutdown);
        }
    }
}

/// What one model answer consists of.
struct Answer {
    thinking: Option<String>,
    text: Option<String>,
    tool: Option<ToolCall>,
}

struct ToolCall {
    /// The CLI's name for its shell tool.
    name: String,
    /// The arguments, as a JSON object.
    arguments: Value,
}

fn answer(
    request: tiny_http::Request,
    recorded: &RecordedRequest,
    behaviour: Behaviour,
    n: u64,
    shutdown: &Receiver<()>,
) {
    match behaviour {
        Behaviour::Hang => {
            // Blocks until the mock is dropped (the sender is dropped, never sent on).
            let _ = shutdown.recv();
            drop(request);
        }
        Behaviour::Delay(duration, inner) => match shutdown.recv_timeout(duration) {
            Err(RecvTimeoutError::Timeout) => answer(request, recorded, *inner, n, shutdown),
            _ => drop(request),
        },
        Behaviour::Error(status) => {
            let body = error_body(recorded.api, status);
            respond(request, status, "application/json", body.to_string());
        }
        Behaviour::Text(text) => {
            let planned = Answer {
                thinking: None,
                text: Some(text),
                tool: None,
            };
            send_answer(request, recorded, planned, n);
        }
        Behaviour::ToolThenText {
            command,
            final_text,
            thinking,
        } => {
            let planned = if !recorded.has_tools() {
                Answer {
                    thinking: None,
                    text: Some(AUX_TEXT.to_string()),
                    tool: None,
                }
            } else if let Some(output) = recorded.latest_tool_result() {
                Answer {
                    thinking: None,
                    text: Some(final_text.replace("{tool_output}", output.trim())),
                    tool: None,
                }
            } else {
                Answer {
                    thinking,
                    text: None,
                    tool: Some(shell_tool_call(recorded, &command)),
                }
            };
            send_answer(request, recorded, planned, n);
        }
    }
}

fn send_answer(request: tiny_http::Request, recorded: &RecordedRequest, planned: Answer, n: u64) {
    let stream = recorded.is_stream();
    let model = recorded
        .body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| gemini_model_from_path(&recorded.path))
        .unwrap_or_else(|| MOCK_MODEL.to_string());
    let (content_type, body) = match (recorded.api, stream) {
        (Api::Anthropic, true) => ("text/event-stream", anthropic_sse(&planned, &model, n)),
        (Api::Anthropic, false) => (
            "application/json",
            anthropic_message(&planned, &model, n).to_string(),
        ),
        (Api::Responses, _) => ("text/event-stream", responses_sse(&planned, &model, n)),
        (Api::Gemini, true) => ("text/event-stream", gemini_sse(&planned)),
        (Api::Gemini, false) => ("application/json", gemini_response(&planned).to_string()),
        (Api::ChatCompletions, true) => ("text/event-stream", chat_sse(&planned, &model, n)),
        (Api::ChatCompletions, false) => (
            "application/json",
            chat_completion(&planned, &model, n).to_string(),
        ),
        _ => ("application/json", "{}".to_string()),
    };
    respond(request, 200, content_type, body);
}

fn gemini_model_from_path(path: &str) -> Option<String> {
    let rest = path.split("/models/").nth(1)?;
    Some(rest.split(':').next()?.to_string())
}

/// Splits `text` in two pieces (on a char boundary) to make a realistic delta stream.
fn chunks(text: &str) -> Vec<&str> {
    let mut middle = text.len() / 2;
    while middle > 0 && !text.is_char_boundary(middle) {
        middle -= 1;
    }
    if middle == 0 || middle == text.len() {
        vec![text]
    } else {
        vec![&text[..middle], &text[middle..]]
    }
}

fn token_estimate(text: &str) -> u64 {
    (text.len() as u64 / 4).max(1)
}

fn answer_tokens(planned: &Answer) -> u64 {
    let mut total = 0;
    if let Some(text) = &planned.text {
        total += token_estimate(text);
    }
    if let Some(thinking) = &planned.thinking {
        total += token_estimate(thinking);
    }
    if let Some(tool) = &planned.tool {
        total += token_estimate(&tool.arguments.to_string());
    }
    total.max(1)
}

fn tool_names(body: &Value) -> Vec<String> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for tool in tools {
        // Anthropic / Responses: {"name"}; chat completions: {"function": {"name"}};
        // Gemini: {"functionDeclarations": [{"name"}]}.
        if let Some(name) = tool.get("name").and_then(Value::as_str) {
            names.push(name.to_string());
        }
        if let Some(name) = tool.pointer("/function/name").and_then(Value::as_str) {
            names.push(name.to_string());
        }
        if let Some(decls) = tool.get("functionDeclarations").and_then(Value::as_array) {
            for decl in decls {
                if let Some(name) = decl.get("name").and_then(Value::as_str) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// The shell tool call for the CLI behind this request.
fn shell_tool_call(recorded: &RecordedRequest, command: &str) -> ToolCall {
    let names = tool_names(&recorded.body);
    let has = |name: &str| names.iter().any(|n| n == name);
    let description = "Run the command the test asked for";
    match recorded.api {
        Api::Anthropic => ToolCall {
            name: "Bash".to_string(),
            arguments: json!({"command": command, "description": description}),
        },
        Api::Responses => {
            if has("exec_command") || !(has("shell") || has("shell_command")) {
                ToolCall {
                    name: "exec_command".to_string(),
                    arguments: json!({"cmd": command}),
                }
            } else if has("shell_command") {
                ToolCall {
                    name: "shell_command".to_string(),
                    arguments: json!({"command": command}),
                }
            } else {
                ToolCall {
                    name: "shell".to_string(),
                    arguments: json!({"command": ["bash", "-lc", command]}),
                }
            }
        }
        Api::Gemini => ToolCall {
            name: "run_shell_command".to_string(),
            arguments: json!({"command": command, "description": description}),
        },
        _ => ToolCall {
            name: "bash".to_string(),
            arguments: json!({"command": command, "description": description}),
        },
    }
}

/// The text of a tool result value in any of the APIs' shapes.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join("\n"),
        Value::Object(map) => {
            for key in ["text", "output", "content", "response", "llmContent"] {
                if let Some(inner) = map.get(key) {
                    return value_text(inner);
                }
            }
            Value::Object(map.clone()).to_string()
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The tool result in the latest user turn of the conversation, if any.
fn latest_tool_result(api: Api, body: &Value) -> Option<String> {
    match api {
        Api::Anthropic => {
            let messages = body.get("messages")?.as_array()?;
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
            let blocks = last_user.get("content")?.as_array()?;
            let results: Vec<String> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .map(|b| value_text(b.get("content").unwrap_or(&Value::Null)))
                .collect();
            (!results.is_empty()).then(|| results.join("\n"))
        }
        Api::Responses => {
            let input = body.get("input")?.as_array()?;
            let mut results = Vec::new();
            for item in input.iter().rev() {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                let role = item.get("role").and_then(Value::as_str);
                if kind == "message" && role == Some("user") {
                    break;
                }
                if kind.ends_with("_call_output") {
                    results.push(value_text(item.get("output").unwrap_or(&Value::Null)));
                }
            }
            results.reverse();
            (!results.is_empty()).then(|| results.join("\n"))
        }
        Api::Gemini => {
            let contents = body.get("contents")?.as_array()?;
            let last_user = contents
                .iter()
                .rev()
                .find(|c| c.get("role").and_then(Value::as_str) == Some("user"))?;
            let parts = last_user.get("parts")?.as_array()?;
            let results: Vec<String> = parts
                .iter()
                .filter_map(|p| p.get("functionResponse"))
                .map(|r| value_text(r.get("response").unwrap_or(&Value::Null)))
                .collect();
            (!results.is_empty()).then(|| results.join("\n"))
        }
        Api::ChatCompletions => {
            let messages = body.get("messages")?.as_array()?;
            let mut results = Vec::new();
            for message in messages.iter().rev() {
                match message.get("role").and_then(Value::as_str) {
                    Some("user") => break,
                    Some("tool") => {
                        results.push(value_text(message.get("content").unwrap_or(&Value::Null)))
                    }
                    _ => {}
                }
            }
            results.reverse();
            (!results.is_empty()).then(|| results.join("\n"))
        }
        _ => None,
    }
}

fn error_body(api: Api, status: u16) -> Value {
    let message = format!("mock error with status {status}");
    match api {
        Api::Anthropic | Api::AnthropicCountTokens => json!({
            "type": "error",
            "error": {"type": anthropic_error_type(status), "message": message}
        }),
        Api::Gemini | Api::GeminiCountTokens => json!({
            "error": {"code": status, "message": message, "status": gemini_error_status(status)}
        }),
        _ => json!({
            "error": {"message": message, "type": "mock_error", "param": null, "code": null}
        }),
    }
}

fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn gemini_error_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// Appends one SSE event (`event:` line only if `event` is given).
fn sse(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

// ---------------------------------------------------------------- Anthropic

fn anthropic_usage(output_tokens: u64) -> Value {
    json!({
        "input_tokens": 100,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0
    })
}

fn anthropic_stop_reason(planned: &Answer) -> &'static str {
    if planned.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    }
}

fn anthropic_blocks(planned: &Answer, n: u64) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(thinking) = &planned.thinking {
        blocks
            .push(json!({"type": "thinking", "thinking": thinking, "signature": "mock-signature"}));
    }
    if let Some(text) = &planned.text {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(tool) = &planned.tool {
        blocks.push(json!({
            "type": "tool_use",
            "id": format!("toolu_mock_{n:04}"),
            "name": tool.name,
            "input": tool.arguments
        }));
    }
    blocks
}

fn anthropic_message(planned: &Answer, model: &str, n: u64) -> Value {
    json!({
        "id": format!("msg_mock_{n:04}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": anthropic_blocks(planned, n),
        "stop_reason": anthropic_stop_reason(planned),
        "stop_sequence": null,
        "usage": anthropic_usage(answer_tokens(planned))
    })
}

fn anthropic_sse(planned: &Answer, model: &str, n: u64) -> String {
    let mut out = String::new();
    sse(
        &mut out,
        Some("message_start"),
        &json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_mock_{n:04}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": anthropic_usage(1)
            }
        }),
    );
    let mut index = 0;
    let mut block = |out: &mut String, start: Value, deltas: Vec<Value>| {
        sse(
            out,
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            sse(
                out,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        sse(
            out,
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    };
    if let Some(thinking) = &planned.thinking {
        let mut deltas: Vec<Value> = chunks(thinking)
            .into_iter()
            .map(|piece| json!({"type": "thinking_delta", "thinking": piece}))
            .collect();
        deltas.push(json!({"type": "signature_delta", "signature": "mock-signature"}));
        block(
            &mut out,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            deltas,
        );
    }
    if let Some(text) = &planned.text {
        let deltas = chunks(text)
            .into_iter()
            .map(|piece| json!({"type": "text_delta", "text": piece}))
            .collect();
        block(&mut out, json!({"type": "text", "text": ""}), deltas);
    }
    if let Some(tool) = &planned.tool {
        let arguments = tool.arguments.to_string();
        let deltas = chunks(&arguments)
            .into_iter()
            .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
            .collect();
        block(
            &mut out,
            json!({"type": "tool_use", "id": format!("toolu_mock_{n:04}"), "name": tool.name, "input": {}}),
            deltas,
        );
    }
    sse(
        &mut out,
        Some("message_delta"),
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": anthropic_stop_reason(planned), "stop_sequence": null},
            "usage": {"output_tokens": answer_tokens(planned)}
        }),
    );
    sse(
        &mut out,
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    );
    out
}

// ---------------------------------------------------------- OpenAI Responses

fn responses_sse(planned: &Answer, model: &str, n: u64) -> String {
    let response_id = format!("resp_mock_{n:04}");
    let created_at = now_secs();
    let base = |status: &str, output: Vec<Value>, usage: Value| {
        json!({
            "id": response_id,
            "object": "response",
            "created_at": created_at,
            "status": status,
            "model": model,
            "output": output,
            "usage": usage
        })
    };
    let mut out = String::new();
    let mut seq = 0u64;
    let mut event = |out: &mut String, mut data: Value| {
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(map) = data.as_object_mut() {
            map.insert("sequence_number".to_string(), json!(seq));
        }
        seq += 1;
        sse(out, Some(&kind), &data);
    };
    event(
        &mut out,
        json!({"type": "response.created", "response": base("in_progress", vec![], Value::Null)}),
    );
    let mut output = Vec::new();
    if let Some(thinking) = &planned.thinking {
        let index = output.len();
        let id = format!("rs_mock_{n:04}");
        event(
            &mut out,
            json!({"type": "response.output_item.added", "output_index": index,
                   "item": {"type": "reasoning", "id": id, "summary": []}}),
        );
        event(
            &mut out,
            json!({"type": "response.reasoning_summary_part.added", "item_id": id,
                   "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": ""}}),
        );
        for piece in chunks(thinking) {
            event(
                &mut out,
                json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                       "output_index": index, "summary_index": 0, "delta": piece}),
            );
        }
        event(
            &mut out,
            json!({"type": "response.reasoning_summary_text.done", "item_id": id,
                   "output_index": index, "summary_index": 0, "text": thinking}),
        );
        event(
            &mut out,
            json!({"type": "response.reasoning_summary_part.done", "item_id": id,
                   "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": thinking}}),
        );
        let item = json!({"type": "reasoning", "id": id,
                          "summary": [{"type": "summary_text", "text": thinking}]});
        event(
            &mut out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        output.push(item);
    }
    if let Some(text) = &planned.text {
        let index = output.len();
        let id = format!("msg_mock_{n:04}");
        event(
            &mut out,
            json!({"type": "response.output_item.added", "output_index": index,
                   "item": {"type": "message", "id": id, "role": "assistant",
                            "status": "in_progress", "content": []}}),
        );
        event(
            &mut out,
            json!({"type": "response.content_part.added", "item_id": id, "output_index": index,
                   "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        for piece in chunks(text) {
            event(
                &mut out,
                json!({"type": "response.output_text.delta", "item_id": id,
                       "output_index": index, "content_index": 0, "delta": piece}),
            );
        }
        event(
            &mut out,
            json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                   "content_index": 0, "text": text}),
        );
        let part = json!({"type": "output_text", "text": text, "annotations": []});
        event(
            &mut out,
            json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
                   "content_index": 0, "part": part}),
        );
        let item = json!({"type": "message", "id": id, "role": "assistant",
                          "status": "completed", "content": [part]});
        event(
            &mut out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        output.push(item);
    }
    if let Some(tool) = &planned.tool {
        let index = output.len();
        let id = format!("fc_mock_{n:04}");
        let call_id = format!("call_mock_{n:04}");
        let arguments = tool.arguments.to_string();
        event(
            &mut out,
            json!({"type": "response.output_item.added", "output_index": index,
                   "item": {"type": "function_call", "id": id, "call_id": call_id,
                            "name": tool.name, "arguments": "", "status": "in_progress"}}),
        );
        for piece in chunks(&arguments) {
            event(
                &mut out,
                json!({"type": "response.function_call_arguments.delta", "item_id": id,
                       "output_index": index, "delta": piece}),
            );
        }
        event(
            &mut out,
            json!({"type": "response.function_call_arguments.done", "item_id": id,
                   "output_index": index, "arguments": arguments}),
        );
        let item = json!({"type": "function_call", "id": id, "call_id": call_id,
                          "name": tool.name, "arguments": arguments, "status": "completed"});
        event(
            &mut out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        output.push(item);
    }
    let output_tokens = answer_tokens(planned);
    let usage = json!({
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 100 + output_tokens
    });
    event(
        &mut out,
        json!({"type": "response.completed", "response": base("completed", output, usage)}),
    );
    out
}

// -------------------------------------------------------------------- Gemini

fn gemini_usage(planned: &Answer) -> Value {
    let output_tokens = answer_tokens(planned);
    json!({
        "promptTokenCount": 100,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": 100 + output_tokens
    })
}

fn gemini_chunk(parts: Vec<Value>, finish: bool, usage: Option<Value>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if finish {
        candidate["finishReason"] = json!("STOP");
    }
    let mut chunk = json!({"candidates": [candidate], "modelVersion": GEMINI_MODEL});
    if let Some(usage) = usage {
        chunk["usageMetadata"] = usage;
    }
    chunk
}

fn gemini_parts(planned: &Answer) -> Vec<Vec<Value>> {
    let mut chunked = Vec::new();
    if let Some(thinking) = &planned.thinking {
        chunked.push(vec![json!({"text": thinking, "thought": true})]);
    }
    if let Some(text) = &planned.text {
        for piece in chunks(text) {
            chunked.push(vec![json!({"text": piece})]);
        }
    }
    if let Some(tool) = &planned.tool {
        chunked.push(vec![json!({
            "functionCall": {"name": tool.name, "args": tool.arguments}
        })]);
    }
    chunked
}

fn gemini_sse(planned: &Answer) -> String {
    let mut out = String::new();
    let parts = gemini_parts(planned);
    let last = parts.len().saturating_sub(1);
    for (i, chunk_parts) in parts.into_iter().enumerate() {
        let is_last = i == last;
        let usage = is_last.then(|| gemini_usage(planned));
        sse(&mut out, None, &gemini_chunk(chunk_parts, is_last, usage));
    }
    out
}

fn gemini_response(planned: &Answer) -> Value {
    let mut parts = Vec::new();
    if let Some(thinking) = &planned.thinking {
        parts.push(json!({"text": thinking, "thought": true}));
    }
    if let Some(text) = &planned.text {
        parts.push(json!({"text": text}));
    }
    if let Some(tool) = &planned.tool {
        parts.push(json!({"functionCall": {"name": tool.name, "args": tool.arguments}}));
    }
    gemini_chunk(parts, true, Some(gemini_usage(planned)))
}

// ------------------------------------------------------- OpenAI chat completions

fn chat_chunk(id: &str, model: &str, created: u64, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

fn chat_usage(planned: &Answer) -> Value {
    let output_tokens = answer_tokens(planned);
    json!({
        "prompt_tokens": 100,
        "completion_tokens": output_tokens,
        "total_tokens": 100 + output_tokens
    })
}

fn chat_sse(planned: &Answer, model: &str, n: u64) -> String {
    let id = format!("chatcmpl-mock-{n:04}");
    let created = now_secs();
    let mut out = String::new();
    sse(
        &mut out,
        None,
        &chat_chunk(
            &id,
            model,
            created,
            json!({"role": "assistant", "content": ""}),
            None,
        ),
    );
    if let Some(thinking) = &planned.thinking {
        for piece in chunks(thinking) {
            sse(
                &mut out,
                None,
                &chat_chunk(
                    &id,
                    model,
                    created,
                    json!({"reasoning_content": piece}),
                    None,
                ),
            );
        }
    }
    if let Some(text) = &planned.text {
        for piece in chunks(text) {
            sse(
                &mut out,
                None,
                &chat_chunk(&id, model, created, json!({"content": piece}), None),
            );
        }
    }
    if let Some(tool) = &planned.tool {
        let arguments = tool.arguments.to_string();
        sse(
            &mut out,
            None,
            &chat_chunk(
                &id,
                model,
                created,
                json!({"tool_calls": [{"index": 0, "id": format!("call_mock_{n:04}"),
                    "type": "function", "function": {"name": tool.name, "arguments": ""}}]}),
                None,
            ),
        );
        for piece in chunks(&arguments) {
            sse(
                &mut out,
                None,
                &chat_chunk(
                    &id,
                    model,
                    created,
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    None,
                ),
            );
        }
    }
    let finish = if planned.tool.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    sse(
        &mut out,
        None,
        &chat_chunk(&id, model, created, json!({}), Some(finish)),
    );
    sse(
        &mut out,
        None,
        &json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": chat_usage(planned)
        }),
    );
    out.push_str("data: [DONE]\n\n");
    out
}

fn chat_completion(planned: &Answer, model: &str, n: u64) -> Value {
    let mut message = json!({"role": "assistant", "content": planned.text});
    if let Some(thinking) = &planned.thinking {
        message["reasoning_content"] = json!(thinking);
    }
    if let Some(tool) = &planned.tool {
        message["tool_calls"] = json!([{
            "id": format!("call_mock_{n:04}"),
            "type": "function",
            "function": {"name": tool.name, "arguments": tool.arguments.to_string()}
        }]);
    }
    let finish = if planned.tool.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    json!({
        "id": format!("chatcmpl-mock-{n:04}"),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": chat_usage(planned)
    })
}
