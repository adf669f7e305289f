//! What a client asks for when it creates a worker (`POST /api/workers`, `agent:create`),
//! checked field by field so a mistake gets a message that names the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::approval::ApprovalPolicy;
use crate::error::Error;
use crate::event::TerminalSize;

/// Options passed to the program the way it takes them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How the kind runs, where it has a choice (Claude Code: print, stream, watch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// An existing session to continue (or, in watch mode, to follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// One process for many turns, or one per turn (the kind's default when None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionKind>,
    /// What happens when the program asks to use a tool (the kind's default when None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    /// A `command` in a pseudo-terminal of this size at the start (a terminal worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<TerminalSize>,
}

/// How an AI worker's program lives across turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionKind {
    /// One process for many turns, each message written to it.
    Live,
    /// A process per turn, resuming the session.
    PerTurn,
}

/// When a long-running worker's process is started again (see `worker::restart`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never by itself.
    #[default]
    No,
    /// When it failed (an exit code other than 0, or a signal), and after the server
    /// restarted while it ran.
    OnFailure,
    /// Whenever it ends, but when stopped on purpose.
    Always,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkerSpec {
    pub name: String,
    pub project_path: PathBuf,
    pub ai_cli_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub options: WorkerOptions,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The host it runs on (`--hosts`), over ssh; this machine when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where it works: the project folder itself, or a git worktree of its own.
    #[serde(default, skip_serializing_if = "Isolation::is_none")]
    pub isolation: Isolation,
    /// The commit or branch its worktree starts from (the repository's `HEAD` when None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    /// Globs (relative to the repository) of files git ignores that its worktree gets a
    /// copy of (`.env`, local settings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_files: Vec<String>,
}

/// Where a worker works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In its `project_path`, with whoever else works there.
    #[default]
    None,
    /// In a git worktree of its own, on a branch of its own (`worktree/`).
    Worktree,
}

impl Isolation {
    pub fn is_none(&self) -> bool {
        *self == Isolation::None
    }

    /// Reads an `isolation` field (absent or null is none).
    pub fn from_field(value: Option<&Value>) -> Result<Isolation, Error> {
        match value {
            None | Some(Value::Null) => Ok(Isolation::None),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|_| Error::invalid("`isolation` must be \"none\" or \"worktree\"")),
        }
    }
}

/// The spec as clients see it: values of environment variables that look secret are
/// masked.
#[derive(Clone, Debug, Serialize)]
pub struct PublicSpec {
    pub name: String,
    pub project_path: PathBuf,
    pub ai_cli_type: String,
    pub command: Option<Vec<String>>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Vec<String>,
    pub extra_args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub mode: Option<String>,
    pub restart: RestartPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Isolation::is_none")]
    pub isolation: Isolation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copy_files: Vec<String>,
    pub terminal: Option<TerminalSize>,
}

const FIELDS: &[&str] = &[
    "name",
    "project_path",
    "ai_cli_type",
    "command",
    "model",
    "permission_mode",
    "allowed_tools",
    "extra_args",
    "env",
    "mode",
    "session_id",
    "restart",
    "session",
    "approval",
    "host",
    "isolation",
    "base_ref",
    "copy_files",
    "terminal",
    "cols",
    "rows",
];

fn string_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(format!("`{key}` must be a string"))),
    }
}

fn string_list(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("`{key}` must be an array of strings"))),
        Some(_) => Err(Error::invalid(format!(
            "`{key}` must be an array of strings"
        ))),
    }
}

impl WorkerSpec {
    /// Reads a create request. `default_kind` is used when `ai_cli_type` is absent and
    /// `base_dir` resolves a relative `project_path`.
    pub fn from_json(
        body: &Value,
        default_kind: &str,
        base_dir: &Path,
    ) -> Result<WorkerSpec, Error> {
        let Some(body) = body.as_object() else {
            return Err(Error::invalid("the body must be a JSON object"));
        };
        if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "unknown field `{unknown}`; known fields: {}",
                FIELDS.join(", ")
            )));
        }
        // A `command` without a kind is a `command` worker.
        let kind = match string_field(body, "ai_cli_type")? {
            Some(kind) => kind,
            None if body.contains_key("command") => "command".to_string(),
            None => default_kind.to_string(),
        };
        let project = string_field(body, "project_path")?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::invalid("`project_path` is required: the folder the worker runs in")
            })?;
        let host = string_field(body, "host")?;
        if host.as_deref() == Some("") {
            return Err(Error::invalid(
                "`host` must name a host (or be left out for this machine)",
            ));
        }
        // On another host the folder is a path there: it cannot be taken from here.
        let project_path = match &host {
            None => base_dir.join(project),
            Some(host) if project.starts_with('/') && !project.contains('\0') => {
                PathBuf::from(project)
            }
            Some(host) => {
                return Err(Error::invalid(format!(
                    "`project_path` {project:?} must be an absolute path on host `{host}`"
                )));
            }
        };
        let name = string_field(body, "name")?.unwrap_or_default();
        check_name(&name)?;
        let env = env_vars(body.get("env"))?;
        let restart = match body.get("restart") {
            None | Some(Value::Null) => RestartPolicy::No,
            Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
                Error::invalid("`restart` must be \"no\", \"on-failure\" or \"always\"")
            })?,
        };
        let isolation = Isolation::from_field(body.get("isolation"))?;
        let base_ref = string_field(body, "base_ref")?;
        let copy_files = string_list(body, "copy_files")?.unwrap_or_default();
        if isolation.is_none() && (base_ref.is_some() || !copy_files.is_empty()) {
            return Err(Error::invalid(
                "`base_ref` and `copy_files` go with `\"isolation\": \"worktree\"`",
            ));
        }
        if let Some(base) = &base_ref {
            check_ref(base, "base_ref")?;
        }
        for glob in &copy_files {
            check_relative_glob(glob)?;
        }
        let terminal = terminal_field(body, &kind)?;
        if let (Some(_), Some(host)) = (&terminal, &host) {
            return Err(Error::invalid(format!(
                "a terminal worker runs on this machine for now, not on host `{host}`"
            )));
        }
        Ok(WorkerSpec {
            name,
            project_path,
            ai_cli_type: kind,
            restart,
            host,
            isolation,
            base_ref,
            copy_files,
            command: string_list(body, "command")?,
            options: WorkerOptions {
                model: string_field(body, "model")?,
                permission_mode: string_field(body, "permission_mode")?,
                allowed_tools: string_list(body, "allowed_tools")?.unwrap_or_default(),
                extra_args: string_list(body, "extra_args")?.unwrap_or_default(),
                env,
                mode: string_field(body, "mode")?,
                session_id: string_field(body, "session_id")?,
                session: match body.get("session") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(serde_json::from_value(value.clone()).map_err(|_| {
                        Error::invalid("`session` must be \"live\" or \"per-turn\"")
                    })?),
                },
                approval: match body.get("approval") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(ApprovalPolicy::from_field(value)?),
                },
                terminal,
            },
        })
    }

    /// The spec as shown to clients.
    pub fn public(&self) -> PublicSpec {
        PublicSpec {
            name: self.name.clone(),
            project_path: self.project_path.clone(),
            ai_cli_type: self.ai_cli_type.clone(),
            command: self.command.clone(),
            model: self.options.model.clone(),
            permission_mode: self.options.permission_mode.clone(),
            allowed_tools: self.options.allowed_tools.clone(),
            extra_args: self.options.extra_args.clone(),
            env: self
                .options
                .env
                .iter()
                .map(|(k, v)| (k.clone(), mask_if_secret(k, v)))
                .collect(),
            mode: self.options.mode.clone(),
            restart: self.restart,
            session: self.options.session,
            approval: self.options.approval.clone(),
            host: self.host.clone(),
            isolation: self.isolation,
            base_ref: self.base_ref.clone(),
            copy_files: self.copy_files.clone(),
            terminal: self.options.terminal,
        }
    }
}

/// A git ref a client names (`base_ref`, a merge's `into`): never an option to git (no
/// leading `-`), no spaces, control characters or the characters git forbids in refs.
pub fn check_ref(name: &str, field: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.len() > 256
        || name.starts_with('-')
        || name.contains("..")
        || name.contains("@{")
        || name.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        });
    if bad {
        return Err(Error::invalid(format!(
            "`{field}` {name:?} is not a ref git takes: a branch, tag or commit, without spaces, `..`, `~`, `^`, `:` or a leading `-`"
        )));
    }
    Ok(())
}

/// A `copy_files` glob: relative to the repository, and staying inside it (no `..`, no
/// absolute path, no `.git`).
pub fn check_relative_glob(glob: &str) -> Result<(), Error> {
    let parts: Vec<&str> = glob.split('/').collect();
    let bad = glob.is_empty()
        || glob.starts_with('/')
        || glob.contains('\0')
        || glob.contains('\\')
        || parts
            .iter()
            .any(|p| *p == ".." || *p == "." || *p == ".git" || p.is_empty());
    if bad {
        return Err(Error::invalid(format!(
            "`copy_files` {glob:?} cannot be used: a glob relative to the repository (`.env`, `config/*.local`, `**/.env`), without `..`, `.git` or a leading `/`"
        )));
    }
    Ok(())
}

/// `"terminal": true` with optional `cols` and `rows`: a `command` in a pseudo-terminal.
fn terminal_field(body: &Map<String, Value>, kind: &str) -> Result<Option<TerminalSize>, Error> {
    let size_field = |key: &str, default: u16| match body.get(key) {
        None | Some(Value::Null) => Ok(u64::from(default)),
        Some(value) => value
            .as_u64()
            .ok_or_else(|| Error::invalid(format!("`{key}` must be a whole number"))),
    };
    match body.get("terminal") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {
            if body.contains_key("cols") || body.contains_key("rows") {
                return Err(Error::invalid(
                    "`cols` and `rows` size a terminal: they need `\"terminal\": true`",
                ));
            }
            Ok(None)
        }
        Some(Value::Bool(true)) if kind == "command" => {
            let cols = size_field("cols", TerminalSize::DEFAULT.cols)?;
            let rows = size_field("rows", TerminalSize::DEFAULT.rows)?;
            TerminalSize::checked(cols, rows)
                .map(Some)
                .map_err(Error::invalid)
        }
        Some(Value::Bool(true)) => Err(Error::invalid(format!(
            "`terminal` runs a `command` in a terminal, not `{kind}`: give `command` (for example [\"claude\"]) instead"
        ))),
        Some(_) => Err(Error::invalid("`terminal` must be true or false")),
    }
}

/// Whether an environment variable's name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| upper.contains(w))
}

/// Shows at most the last four characters of a secret.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "****".into();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

pub fn mask_if_secret(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        mask(value)
    } else {
        value.to_string()
    }
}

/// The fewest characters of an id that name it, as with git.
pub const MIN_PREFIX: usize = 4;

/// The one item whose id starts with `prefix` (at least `MIN_PREFIX` characters), as
/// git takes the start of a commit's hash: None when none does, an `ambiguous_id` error
/// naming them when several do. `what` names the items in messages ("workers").
pub fn unique_prefix<T>(
    items: impl IntoIterator<Item = T>,
    prefix: &str,
    id_of: impl Fn(&T) -> &str,
    name_of: impl Fn(&T) -> String,
    what: &str,
) -> Result<Option<T>, Error> {
    if prefix.len() < MIN_PREFIX {
        return Ok(None);
    }
    let mut matching: Vec<T> = items
        .into_iter()
        .filter(|item| id_of(item).starts_with(prefix))
        .collect();
    if matching.len() <= 1 {
        return Ok(matching.pop());
    }
    let names: Vec<String> = matching.iter().map(name_of).collect();
    Err(Error::invalid(format!(
        "`{prefix}` is the start of {} {what}' ids ({}): give more of it",
        names.len(),
        names.join(", ")
    ))
    .with_code(crate::error::ErrorCode::AmbiguousId))
}

/// Most characters in a worker's name.
pub const MAX_NAME: usize = 64;

/// A worker's name is used in URLs and on command lines in place of its id: letters,
/// digits, `.`, `_` and `-`, starting with a letter or digit, at most 64 characters.
/// So `/`, `..`, spaces and anything that would need quoting are refused up front,
/// rather than accepted and then unusable by name.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Ok(());
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !all_ok || name.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "`name` {name:?} cannot be used: a name is 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        )));
    }
    Ok(())
}

/// An `env` field: an object of strings whose names a process can take (not empty, no
/// `=`, no NUL); absent or null is none.
pub fn env_vars(value: Option<&Value>) -> Result<BTreeMap<String, String>, Error> {
    let env = match value {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect::<Option<BTreeMap<_, _>>>()
            .ok_or_else(|| Error::invalid("`env` must be an object of strings"))?,
        Some(_) => return Err(Error::invalid("`env` must be an object of strings")),
    };
    if let Some(bad) = env.keys().find(|k| k.is_empty() || k.contains(['=', '\0'])) {
        return Err(Error::invalid(format!(
            "`env` has an invalid variable name `{bad}`"
        )));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn fields_with_the_wrong_type_are_named_in_the_error() {
        let err = WorkerSpec::from_json(
            &json!({"project_path": "/tmp", "command": "cat"}),
            "command",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.message.contains("`command` must be an array"));
        let err = WorkerSpec::from_json(
            &json!({"project_path": "/tmp", "colour": 1}),
            "command",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.message.contains("unknown field `colour`"));
    }

    #[test]
    fn secrets_are_masked_in_the_public_view() {
        let spec = WorkerSpec::from_json(
            &json!({"project_path": "/tmp", "command": ["cat"], "env": {"OPENAI_API_KEY": "sk-1234567890abcd", "MODE": "x"}}),
            "command",
            Path::new("/"),
        )
        .unwrap();
        let shown = spec.public();
        assert_eq!(shown.env["OPENAI_API_KEY"], "****abcd");
        assert_eq!(shown.env["MODE"], "x");
    }

    #[test]
    fn an_id_is_taken_by_its_start_when_only_one_matches() {
        let ids = ["abcd1234", "abcd9999", "ef012345"];
        let pick =
            |prefix: &str| unique_prefix(ids, prefix, |id| id, |id| id.to_string(), "things");
        assert_eq!(pick("ef01").unwrap(), Some("ef012345"));
        assert_eq!(pick("abcd1").unwrap(), Some("abcd1234"));
        assert_eq!(pick("abc").unwrap(), None, "shorter than MIN_PREFIX");
        assert_eq!(pick("0000").unwrap(), None);
        let err = pick("abcd").unwrap_err();
        assert_eq!(err.code, ErrorCode::AmbiguousId);
        assert!(err.message.contains("abcd1234") && err.message.contains("abcd9999"));
    }

    #[test]
    fn names_are_what_a_url_and_a_command_line_carry() {
        for good in ["", "echo", "a.b_c-1", "9lives", &"n".repeat(MAX_NAME)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "a/b",
            "..",
            ".x",
            "-x",
            "a b",
            "é",
            &"n".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
