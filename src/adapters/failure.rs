//! Failures between a CLI and its model API, told the same way for every CLI: a missing
//! key, a refused key, an API that cannot be reached. Each adapter recognizes them in
//! its CLI's own output (see each parser) and reports them once, in plain words, with a
//! hint on what to set (`error` events with codes `credentials_missing`,
//! `credentials_rejected`, `api_unreachable`). Retries the CLI makes meanwhile become
//! `retry` events; a retry that cannot help (a refused key, an endless wait for the
//! network) ends the turn at once instead of after minutes.

use crate::error::ErrorCode;
use crate::event::{ErrorEvent, Event, Retry};

/// What went wrong between a CLI and its model API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFailure {
    /// No key at all.
    CredentialsMissing,
    /// The API refused the key.
    CredentialsRejected,
    /// The API could not be reached.
    Unreachable,
}

impl ApiFailure {
    pub fn code(self) -> ErrorCode {
        match self {
            ApiFailure::CredentialsMissing => ErrorCode::CredentialsMissing,
            ApiFailure::CredentialsRejected => ErrorCode::CredentialsRejected,
            ApiFailure::Unreachable => ErrorCode::ApiUnreachable,
        }
    }

    /// The `error` event: what happened for `cli` ("Claude Code"), what it said, and
    /// what to do (`credential_hint` for key problems).
    pub fn event(self, cli: &str, said: &str, credential_hint: &str) -> Event {
        let (message, hint) = match self {
            ApiFailure::CredentialsMissing => (
                format!("{cli} has no key for its model API ({})", said.trim()),
                credential_hint.to_string(),
            ),
            ApiFailure::CredentialsRejected => (
                format!("{cli}'s model API refused its key ({})", said.trim()),
                credential_hint.to_string(),
            ),
            ApiFailure::Unreachable => (
                format!("{cli} could not reach its model API ({})", said.trim()),
                "check that this machine reaches the API (network, proxy) and the API address the CLI uses (WORKERHUB_<KIND>_API_BASE or the worker's env)".to_string(),
            ),
        };
        let mut error = ErrorEvent::new(self.code(), message);
        error.hint = Some(hint);
        Event::Error(error)
    }
}

/// A retry event.
pub fn retry(
    attempt: Option<u32>,
    max_attempts: Option<u32>,
    delay_ms: Option<u64>,
    status: Option<u16>,
    error: impl Into<String>,
    raw: &str,
) -> Event {
    Event::agent(crate::event::AgentContent::Retry(Retry {
        attempt,
        max_attempts,
        delay_ms,
        status,
        error: error.into(),
        raw: raw.to_string(),
    }))
}

/// A refused key in an HTTP status.
pub fn rejects_key(status: Option<u64>) -> bool {
    matches!(status, Some(401) | Some(403))
}

/// What an error message in words says about the API, when it says something: a
/// refused key (401, 403, "UNAUTHENTICATED", "invalid api key") or no connection.
pub fn classify_text(text: &str) -> Option<ApiFailure> {
    let lower = text.to_ascii_lowercase();
    // A status is a number of its own, not digits inside an id or a duration.
    if lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "401" || w == "403")
    {
        return Some(ApiFailure::CredentialsRejected);
    }
    let refused = [
        "unauthenticated",
        "unauthorized",
        "permission_denied",
        "invalid api key",
        "invalid x-api-key",
        "api key not valid",
    ];
    let unreachable = [
        "econnrefused",
        "enotfound",
        "fetch failed",
        "cannot connect",
        "connection refused",
        "network error",
    ];
    if refused.iter().any(|w| lower.contains(w)) {
        Some(ApiFailure::CredentialsRejected)
    } else if unreachable.iter().any(|w| lower.contains(w)) {
        Some(ApiFailure::Unreachable)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_a_word_of_its_own() {
        assert_eq!(
            classify_text("HTTP 401 Unauthorized"),
            Some(ApiFailure::CredentialsRejected)
        );
        assert_eq!(
            classify_text("{\"code\":403}"),
            Some(ApiFailure::CredentialsRejected)
        );
        assert_eq!(classify_text("request req_4013 took 4013 ms"), None);
        assert_eq!(
            classify_text("connect ECONNREFUSED 127.0.0.1:1"),
            Some(ApiFailure::Unreachable)
        );
    }
}
