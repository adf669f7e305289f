//! Routes: a method, a path and who may reach it, matched against a request's path
//! after `normalize` (once, before anything else looks at it). `{}` in a path is a
//! parameter (`Request::param`). The table itself, with its handlers, is the API's
//! (`api::routes`).

use tiny_http::Method;

/// Who may reach a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Anyone: health, the login exchange.
    Public,
    /// A valid token (or `--no-auth`).
    Token,
    /// A valid token, and the request is a WebSocket upgrade (which may carry the token
    /// as `?token=`, since browsers cannot set headers on WebSockets).
    Upgrade,
}

pub struct Route<H> {
    pub method: Method,
    pub path: &'static str,
    pub handler: H,
    pub gate: Gate,
}

pub enum Found<'a, H> {
    Route(&'a Route<H>, Vec<String>),
    /// The path exists with other methods.
    WrongMethod(Vec<String>),
    Nothing,
}

/// Matches `path` against `pattern`, returning the `{}` segments.
fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some("{}"), Some(part)) if !part.is_empty() => params.push(part.to_string()),
            (Some(want), Some(part)) if want == part => {}
            _ => return None,
        }
    }
}

/// The path as every later step sees it: percent-decoded once, `.` and empty segments
/// dropped, `..` applied (never above the root), no trailing slash. So `/metrics/`,
/// `/metrics//`, `/metrics%2F` and `/api/../metrics` are all `/metrics`, and the decision
/// whether a path is public is made on the same string that is routed.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "the path is not valid UTF-8")?;
    if decoded.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Finds the route of `table` for a normalized path.
pub fn find<'a, H>(table: &'a [Route<H>], method: &Method, path: &str) -> Found<'a, H> {
    let mut allowed = Vec::new();
    for route in table {
        if let Some(params) = matches(route.path, path) {
            if &route.method == method || (method == &Method::Head && route.method == Method::Get) {
                return Found::Route(route, params);
            }
            allowed.push(route.method.to_string());
        }
    }
    if allowed.is_empty() {
        Found::Nothing
    } else {
        Found::WrongMethod(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_whole_segments() {
        assert_eq!(
            matches("/api/workers/{}", "/api/workers/abc"),
            Some(vec!["abc".into()])
        );
        assert_eq!(matches("/api/workers/{}", "/api/workers/"), None);
        assert_eq!(matches("/api/workers/{}", "/api/workers/a/b"), None);
        assert_eq!(
            matches("/api/workers/{}/events", "/api/workers/x/events"),
            Some(vec!["x".into()])
        );
    }

    #[test]
    fn paths_are_normalized_once_before_routing() {
        for raw in [
            "/metrics/",
            "/metrics//",
            "/metrics%2F",
            "//metrics",
            "/api/../metrics",
            "/./metrics",
        ] {
            assert_eq!(normalize(raw).unwrap(), "/metrics", "{raw}");
        }
        assert_eq!(normalize("/../..").unwrap(), "/");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("/a%00b").is_err());
        assert!(normalize("/%ff").is_err());
    }
}
