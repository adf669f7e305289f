//! The environment every child process gets, built on purpose rather than inherited.
//!
//! A token is a shell, and every agent workerhub runs can read its own environment: so
//! a child never receives workerhub's own settings (`WORKERHUB_*`, and the py-worker
//! names workerhub consumed, such as `MAX_WORKERS` or `CLAUDE_API_KEY`), and the API keys
//! of the AI kinds (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, ...) go only to workers of the
//! kind they belong to. Everything else of the server's environment (`PATH`, `HOME`,
//! `LANG`, ...) is passed on, then what the kind adds, then the worker's own `env`.
//! docs/SECURITY.md lists exactly what a child receives.

use std::collections::BTreeSet;
use std::ffi::OsString;

/// The names workerhub reads for itself besides `WORKERHUB_*` (see `config.rs`).
pub const CONSUMED: &[&str] = &[
    "MAX_WORKERS",
    "WORKER_TIMEOUT",
    "DEFAULT_AI_CLI",
    "ENABLED_AI_CLIS",
    "WORKERS_BASE_DIR",
    "CLAUDE_BINARY",
    "CLAUDE_MODEL",
    "CLAUDE_API_KEY",
    "CODEX_BINARY",
    "GEMINI_BINARY",
    "OPENCODE_BINARY",
    "OPENCODE_MODEL",
    "OPENCODE_API_KEY",
    "OPENCODE_API_BASE",
];

/// The server's environment, sorted into what every child may have and the credentials
/// that only their own kind may have.
#[derive(Clone, Debug, Default)]
pub struct ChildEnv {
    /// Passed to every child.
    common: Vec<(OsString, OsString)>,
    /// Credentials found in the server's environment, by name.
    credentials: Vec<(String, OsString)>,
}

impl ChildEnv {
    /// Sorts `vars` (the server's environment): `credential_names` are every kind's
    /// credentials; `pass` names variables to pass to every child all the same
    /// (`--pass-env`).
    pub fn new(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        credential_names: &BTreeSet<String>,
        pass: &[String],
    ) -> ChildEnv {
        let mut env = ChildEnv::default();
        for (name, value) in vars {
            let Some(text) = name.to_str() else {
                env.common.push((name, value));
                continue;
            };
            if pass.iter().any(|p| p == text) {
                env.common.push((name, value));
            } else if text.starts_with("WORKERHUB_") || CONSUMED.contains(&text) {
                // workerhub's own: never passed on.
            } else if credential_names.contains(text) {
                env.credentials.push((text.to_string(), value));
            } else {
                env.common.push((name, value));
            }
        }
        env
    }

    /// The whole environment of a child of a kind whose credentials are `own`, with
    /// `added` set last (the kind's settings, then the worker's own `env`).
    pub fn build(&self, own: &[String], added: &[(String, String)]) -> Vec<(OsString, OsString)> {
        let mut env = self.common.clone();
        env.extend(
            self.credentials
                .iter()
                .filter(|(name, _)| own.contains(name))
                .map(|(name, value)| (OsString::from(name), value.clone())),
        );
        for (name, value) in added {
            if name.starts_with("WORKERHUB_") {
                continue;
            }
            env.retain(|(n, _)| n != name.as_str());
            env.push((name.into(), value.into()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn own_settings_never_and_credentials_only_to_their_kind() {
        let creds: BTreeSet<String> = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = ChildEnv::new(
            vars(&[
                ("PATH", "/bin"),
                ("WORKERHUB_TOKEN", "secret"),
                ("CLAUDE_API_KEY", "k1"),
                ("ANTHROPIC_API_KEY", "k2"),
                ("OPENAI_API_KEY", "k3"),
                ("KEEP_ME", "x"),
            ]),
            &creds,
            &["KEEP_ME".into()],
        );
        let names = |e: &[(OsString, OsString)]| -> Vec<String> {
            e.iter()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect()
        };
        let plain = env.build(&[], &[]);
        assert_eq!(names(&plain), vec!["PATH", "KEEP_ME"]);
        let claude = env.build(&["ANTHROPIC_API_KEY".into()], &[("X".into(), "1".into())]);
        assert_eq!(
            names(&claude),
            vec!["PATH", "KEEP_ME", "ANTHROPIC_API_KEY", "X"]
        );
        let sneaky = env.build(&[], &[("WORKERHUB_TOKEN".into(), "again".into())]);
        assert!(!names(&sneaky).contains(&"WORKERHUB_TOKEN".to_string()));
        let replaced = env.build(&[], &[("PATH".into(), "/mine".into())]);
        assert_eq!(replaced, vars(&[("KEEP_ME", "x"), ("PATH", "/mine")]));
    }
}
