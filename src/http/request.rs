//! What a handler sees of a request: its normalized path and parameters, its query, its
//! body as JSON (capped, `application/json` only), and who made it.

use std::io::Read;

use serde_json::Value;

use super::guard;
use crate::auth::Caller;
use crate::error::{Error, ErrorCode, ErrorKind};

/// What a handler sees of a request.
pub struct Request<'a> {
    pub inner: &'a mut tiny_http::Request,
    /// The normalized path (`routes::normalize`).
    pub path: String,
    /// The `{...}` segments of the route, in order.
    pub params: Vec<String>,
    pub(super) query: Vec<(String, String)>,
    pub(super) max_body: usize,
    /// Who made the request (the token it presented); None only on public routes
    /// reached without a token.
    pub caller: Option<Caller>,
}

impl Request<'_> {
    /// Who made the request; every route behind a token has one.
    pub fn caller(&self) -> Result<&Caller, Error> {
        self.caller.as_ref().ok_or_else(unauthorized)
    }

    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter that must be a non-negative integer when present.
    pub fn query_u64(&self, key: &str) -> Result<Option<u64>, Error> {
        match self.query(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::invalid(format!(
                    "query parameter `{key}` must be a non-negative integer, not `{v}`"
                ))
            }),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.inner, name)
    }

    /// The body as JSON. Only `application/json` is accepted, so that a cross-site form
    /// or a `text/plain` post cannot reach a handler; bodies are capped.
    pub fn json(&mut self) -> Result<Value, Error> {
        let bytes = self.body()?;
        if bytes.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        let content_type = self.header("Content-Type").unwrap_or("");
        if !guard::is_json_content_type(content_type) {
            return Err(Error::new(
                ErrorKind::UnsupportedMedia,
                ErrorCode::UnsupportedMediaType,
                format!("send the body as `Content-Type: application/json`, not `{content_type}`"),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|err| Error::invalid(format!("the body is not valid JSON: {err}")))
    }

    fn body(&mut self) -> Result<Vec<u8>, Error> {
        let too_large = |max: usize| {
            Error::new(
                ErrorKind::TooLarge,
                ErrorCode::BodyTooLarge,
                format!("the body is over the limit of {max} bytes"),
            )
        };
        if self
            .inner
            .body_length()
            .is_some_and(|len| len > self.max_body)
        {
            return Err(too_large(self.max_body));
        }
        let mut bytes = Vec::new();
        self.inner
            .as_reader()
            .take(self.max_body as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| Error::invalid(format!("could not read the body: {err}")))?;
        if bytes.len() > self.max_body {
            return Err(too_large(self.max_body));
        }
        Ok(bytes)
    }
}

pub fn header<'r>(request: &'r tiny_http::Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The request line as safe to log: the query string (which may carry a token) masked.
pub fn loggable_url(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => url.to_string(),
    }
}

/// The answer to a request without a valid token.
pub fn unauthorized() -> Error {
    Error::new(
        ErrorKind::Unauthorized,
        ErrorCode::Unauthorized,
        "a token is required: send `Authorization: Bearer TOKEN` (WebSockets may also use `?token=`); the server prints the page address with the token when it starts",
    )
}
