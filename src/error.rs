//! What can go wrong, as the domain knows it: a case ([`ErrorKind`]), a code a client can
//! match on ([`ErrorCode`], part of the wire format) and a message for people.
//!
//! The domain (workers, the hub, tasks, commands) returns [`Error`] and knows nothing of
//! transports. `http::status_of` turns a kind into an HTTP status, in one place; the
//! agent protocol turns an error into its error envelope, in one place; WebSocket
//! clients of one worker get it as an `error` event.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The cases the domain knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or out of range.
    Invalid,
    /// No valid token.
    Unauthorized,
    /// The caller may not do this (or may not do it from there).
    Forbidden,
    /// No such thing (or one the caller may not see).
    NotFound,
    /// The method does not apply to the path.
    MethodNotAllowed,
    /// The thing is not in a state that allows it (running, busy, taken).
    Conflict,
    /// The request is larger than allowed.
    TooLarge,
    /// The body is not in a format the server takes.
    UnsupportedMedia,
    /// The endpoint is a WebSocket.
    UpgradeRequired,
    /// A limit is reached (workers, commands, queue, attempts).
    Limit,
    /// The server failed.
    Internal,
    /// The server cannot do it now (shutting down, a program that does not read).
    Unavailable,
}

/// The code of an error, as clients see it (`{"error":{"code":...}}`, an `error` event's
/// `code`, an error envelope's `code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Requests.
    BadRequest,
    NotFound,
    Unauthorized,
    Forbidden,
    ForbiddenHost,
    ForbiddenOrigin,
    ForbiddenPath,
    MethodNotAllowed,
    UnsupportedMediaType,
    BodyTooLarge,
    UpgradeRequired,
    UnsupportedVersion,
    SinceOutOfRange,
    /// The start of an id that more than one thing's id starts with.
    AmbiguousId,
    // Limits.
    TooManyWorkers,
    TooManyCommands,
    TooManyConnections,
    TooManyAttempts,
    QueueFull,
    InputFull,
    // States.
    NameTaken,
    AlreadyRunning,
    NotRestartable,
    NothingRunning,
    NotBusy,
    /// Someone answered the approval first.
    AlreadyDecided,
    ReadOnly,
    WorkerNotRunning,
    TaskRunning,
    ShuttingDown,
    // What happened to a worker.
    /// The CLI has no credentials for its model API.
    CredentialsMissing,
    /// The model API refused the CLI's credentials.
    CredentialsRejected,
    /// The CLI could not reach its model API (after its retries).
    ApiUnreachable,
    StartFailed,
    /// The worker's host cannot be reached over ssh right now.
    HostUnreachable,
    TurnFailed,
    Timeout,
    HistoryGap,
    // A client's WebSocket input.
    InvalidJson,
    InvalidEnvelope,
    UnknownType,
    BadMessage,
    MessageTooLarge,
    BinaryNotSupported,
    // The server.
    Internal,
    // Worktrees (`"isolation": "worktree"`).
    /// `project_path` is not inside a git repository (with a work tree).
    NotARepository,
    /// `base_ref` (or a merge's `into`) names no commit or branch.
    UnknownRef,
    /// The worker's branch exists already.
    BranchExists,
    /// The worker has no worktree.
    NotIsolated,
    /// A merge would conflict: nothing was touched (`paths` names the files).
    Conflict,
    /// There is nothing to commit, or nothing to merge.
    NothingToCommit,
    NothingToMerge,
    /// The checkout the merge goes into has changes the merge would overwrite.
    DirtyCheckout,
    /// A turn is running: the worktree is the agent's until it ends.
    WorkerBusy,
    /// git failed (or did not answer in time).
    GitFailed,
}

impl ErrorCode {
    /// A code that says why an AI turn cannot succeed (said once per turn).
    pub fn explains_failure(self) -> bool {
        matches!(
            self,
            ErrorCode::CredentialsMissing
                | ErrorCode::CredentialsRejected
                | ErrorCode::ApiUnreachable
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ForbiddenHost => "forbidden_host",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::ForbiddenPath => "forbidden_path",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::SinceOutOfRange => "since_out_of_range",
            ErrorCode::AmbiguousId => "ambiguous_id",
            ErrorCode::TooManyWorkers => "too_many_workers",
            ErrorCode::TooManyCommands => "too_many_commands",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::InputFull => "input_full",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::AlreadyRunning => "already_running",
            ErrorCode::NotRestartable => "not_restartable",
            ErrorCode::NothingRunning => "nothing_running",
            ErrorCode::NotBusy => "not_busy",
            ErrorCode::AlreadyDecided => "already_decided",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::WorkerNotRunning => "worker_not_running",
            ErrorCode::TaskRunning => "task_running",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::CredentialsMissing => "credentials_missing",
            ErrorCode::CredentialsRejected => "credentials_rejected",
            ErrorCode::ApiUnreachable => "api_unreachable",
            ErrorCode::StartFailed => "start_failed",
            ErrorCode::HostUnreachable => "host_unreachable",
            ErrorCode::TurnFailed => "turn_failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::HistoryGap => "history_gap",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidEnvelope => "invalid_envelope",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::Internal => "internal",
            ErrorCode::NotARepository => "not_a_repository",
            ErrorCode::UnknownRef => "unknown_ref",
            ErrorCode::BranchExists => "branch_exists",
            ErrorCode::NotIsolated => "not_isolated",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NothingToCommit => "nothing_to_commit",
            ErrorCode::NothingToMerge => "nothing_to_merge",
            ErrorCode::DirtyCheckout => "dirty_checkout",
            ErrorCode::WorkerBusy => "worker_busy",
            ErrorCode::GitFailed => "git_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub code: ErrorCode,
    pub message: String,
    /// The files the error is about (a merge's conflicting paths), listed in the body.
    pub paths: Vec<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            kind,
            code,
            message: message.into(),
            paths: Vec::new(),
        }
    }

    /// A malformed or out-of-range request (`bad_request`).
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, ErrorCode::NotFound, message)
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Forbidden, code, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, code, message)
    }

    pub fn limit(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Limit, code, message)
    }

    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unavailable, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, ErrorCode::Internal, message)
    }

    /// The same error with another code.
    pub fn with_code(self, code: ErrorCode) -> Error {
        Error { code, ..self }
    }

    /// The same error about these files.
    pub fn with_paths(self, paths: Vec<String>) -> Error {
        Error { paths, ..self }
    }

    /// `{"error": {"code", "message", "paths"?}}`, the body of every error answer.
    pub fn body(&self) -> serde_json::Value {
        if self.paths.is_empty() {
            return json!({"error": {"code": self.code, "message": self.message}});
        }
        json!({"error": {"code": self.code, "message": self.message, "paths": self.paths}})
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_their_names() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::ForbiddenPath,
            ErrorCode::SinceOutOfRange,
            ErrorCode::TooManyAttempts,
            ErrorCode::BinaryNotSupported,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
    }
}
