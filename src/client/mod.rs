//! The client side: the command-line client (`cli`), batch mode (`batch`), and what
//! both use to talk to a server, below: REST calls (ureq) and WebSockets (tungstenite),
//! with the token.

pub mod attach;
pub mod batch;
pub mod changes;
pub mod cli;
pub mod hosts;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::wire::envelope::{RequestType, ServerType};

pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// An error to show the user as one line.
#[derive(Debug)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

pub struct Client {
    /// `http://HOST:PORT`, without a trailing slash.
    pub base: String,
    token: TokenLookup,
    agent: ureq::Agent,
}

/// The token a client uses, where it came from, and everywhere it looked: said in full
/// when the server wants a token, so a user knows what to fix.
#[derive(Clone, Debug, Default)]
pub struct TokenLookup {
    pub token: Option<String>,
    /// Where the token came from (`--token`, `WORKERHUB_TOKEN`, a file).
    pub source: Option<String>,
    /// Every place looked at, and what was there.
    pub looked: Vec<String>,
}

impl TokenLookup {
    /// A token given by the caller (a test, batch mode's own server), or none.
    pub fn given(token: Option<String>, source: &str) -> TokenLookup {
        TokenLookup {
            source: token.as_ref().map(|_| source.to_string()),
            token,
            looked: vec![source.to_string()],
        }
    }

    /// What to say when the server answers 401.
    pub fn explain_401(&self, server: &str) -> String {
        match (&self.token, &self.source) {
            (Some(_), Some(source)) => format!(
                "{server} rejected the token from {source}: it is not one of this server's tokens (a server prints its token at start and keeps it in DATA_DIR/token)"
            ),
            _ => format!(
                "{server} wants a token and none was found; looked at: {}. Give one with --token or WORKERHUB_TOKEN (a server prints its token at start and keeps it in DATA_DIR/token)",
                self.looked.join("; ")
            ),
        }
    }
}

/// Reads a token file: its first line, trimmed.
fn token_file(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.is_empty() {
                Err(format!("{} is empty", path.display()))
            } else {
                Ok(token)
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} (no such file)", path.display()))
        }
        Err(err) => Err(format!("{} ({err})", path.display())),
    }
}

/// Finds the token for the server at `url`: `--token`, then `WORKERHUB_TOKEN`, then
/// `DATA_DIR/token` (default `./data/token`), then the data folder of a server running
/// on this machine at that port (`crate::discovery`).
pub fn find_token(flag: Option<String>, data_dir: &Path, url: &str) -> TokenLookup {
    let mut looked = Vec::new();
    let found = |token: String, source: String, looked: Vec<String>| TokenLookup {
        token: Some(token),
        source: Some(source),
        looked,
    };
    match flag.filter(|t| !t.is_empty()) {
        Some(token) => return found(token, "--token".into(), vec!["--token".into()]),
        None => looked.push("--token (not given)".to_string()),
    }
    match std::env::var("WORKERHUB_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        Some(token) => return found(token, "WORKERHUB_TOKEN".into(), looked),
        None => looked.push("WORKERHUB_TOKEN (not set)".to_string()),
    }
    let local = data_dir.join("token");
    match token_file(&local) {
        Ok(token) => return found(token, local.display().to_string(), looked),
        Err(why) => looked.push(why),
    }
    let port = url
        .rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse::<u16>().ok());
    let announced = port.and_then(crate::discovery::find);
    match announced {
        Some(server) => {
            let path = server.data_dir.join("token");
            match token_file(&path) {
                Ok(token) => return found(token, path.display().to_string(), looked),
                Err(why) => looked.push(format!(
                    "the data folder of the workerhub running at that port (pid {}): {why}",
                    server.pid
                )),
            }
        }
        None => looked.push(format!(
            "a workerhub of this user running at {url} (none found)"
        )),
    }
    TokenLookup {
        token: None,
        source: None,
        looked,
    }
}

impl Client {
    pub fn new(url: &str, token: TokenLookup) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .new_agent();
        Client {
            base: url.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    fn answer(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut response =
            result.map_err(|e| ClientError(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| ClientError(format!("{what}: could not read the answer: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status == 401 {
            return Err(ClientError(format!(
                "{what}: {} (unauthorized, HTTP 401)",
                self.token.explain_401(&self.base)
            )));
        }
        if status >= 400 {
            let message = value["error"]["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            let code = value["error"]["code"].as_str().unwrap_or("error");
            return Err(ClientError(format!(
                "{what}: {message} ({code}, HTTP {status})"
            )));
        }
        Ok(value)
    }

    fn auth(&self) -> Option<String> {
        self.token.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        self.answer(&format!("GET {path}"), req.call())
    }

    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.delete(format!("{}{path}", self.base));
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        self.answer(&format!("DELETE {path}"), req.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(auth) = self.auth() {
            req = req.header("Authorization", auth);
        }
        self.answer(&format!("POST {path}"), req.send(body.to_string()))
    }

    /// Opens a WebSocket on `path` (`/ws` or `/ws/{id}?since=N`).
    pub fn ws(&self, path: &str) -> Result<Socket, ClientError> {
        let url = match self.base.strip_prefix("http://") {
            Some(rest) => format!("ws://{rest}{path}"),
            None => {
                return Err(ClientError(format!(
                    "{} is not an http:// address (this client speaks plain WebSocket; for TLS, run it on the server's side of the proxy)",
                    self.base
                )));
            }
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError(format!("bad address {url}: {e}")))?;
        if let Some(auth) = self.auth()
            && let Ok(value) = auth.parse()
        {
            request.headers_mut().insert("Authorization", value);
        }
        let (socket, _) = tungstenite::connect(request).map_err(|e| match e {
            tungstenite::Error::Http(resp) if resp.status().as_u16() == 401 => {
                ClientError(format!(
                    "{path}: {} (unauthorized, HTTP 401)",
                    self.token.explain_401(&self.base)
                ))
            }
            tungstenite::Error::Http(resp) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(body);
                ClientError(format!(
                    "{path}: {message} (HTTP {})",
                    resp.status().as_u16()
                ))
            }
            other => ClientError(format!("cannot open {url}: {other}")),
        })?;
        Ok(socket)
    }
}

/// Sets how long a read on the socket may block.
pub fn set_read_timeout(socket: &mut Socket, timeout: Option<Duration>) {
    if let MaybeTlsStream::Plain(stream) = socket.get_mut() {
        let _ = stream.set_read_timeout(timeout);
    }
}

/// Sends one request of the agent protocol (`/ws`), with `id` to match its answers.
pub fn send_request(
    socket: &mut Socket,
    id: &str,
    kind: RequestType,
    payload: Value,
    target: Option<&str>,
) -> Result<(), ClientError> {
    let mut msg = json!({"id": id, "type": kind.name(), "timestamp": crate::clock::now_rfc3339(), "payload": payload});
    if let Some(t) = target {
        msg["target"] = json!(t);
    }
    socket
        .send(Message::text(msg.to_string()))
        .map_err(|e| ClientError(format!("cannot send to the server: {e}")))
}

/// The type of a message the server sent; None for one this build does not know.
pub fn server_type(msg: &Value) -> Option<ServerType> {
    msg["type"].as_str().and_then(ServerType::parse)
}
