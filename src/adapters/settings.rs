//! What the server's settings say about each kind: its program, its default model, its
//! API key and base, and which kinds are enabled. Any kind, built in or new, is set with
//! `WORKERHUB_<KIND>_BINARY`, `_MODEL`, `_API_KEY` or `_API_BASE` (for example
//! `WORKERHUB_CLAUDE_MODEL`); the flags of the built-in kinds (`--claude-binary`, ...) set
//! the same. A new kind needs no new setting here.

use std::collections::HashMap;

use crate::spec::mask;

/// One kind's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindSettings {
    /// The program to run (a path, or a name on PATH) instead of the kind's default.
    pub binary: Option<String>,
    /// The model of workers that name none.
    pub model: Option<String>,
    /// Given to the program the way the kind takes its key.
    pub api_key: Option<String>,
    /// An API endpoint the kind should use.
    pub api_base: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct CliSettings {
    /// Given explicitly (flags), by kind.
    given: HashMap<String, KindSettings>,
    /// Only these kinds may be used (all when None).
    pub enabled: Option<Vec<String>>,
}

/// `value` unless empty.
fn some(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl CliSettings {
    pub fn new(given: HashMap<String, KindSettings>, enabled: Option<Vec<String>>) -> CliSettings {
        CliSettings { given, enabled }
    }

    /// The settings of `kind`: given explicitly, else from the environment.
    pub fn of(&self, kind: &str) -> KindSettings {
        let given = self.given.get(kind).cloned().unwrap_or_default();
        let env = |what: &str| {
            let name = format!(
                "WORKERHUB_{}_{what}",
                kind.to_ascii_uppercase().replace('-', "_")
            );
            some(std::env::var(name).ok())
        };
        KindSettings {
            binary: some(given.binary).or_else(|| env("BINARY")),
            model: some(given.model).or_else(|| env("MODEL")),
            api_key: some(given.api_key).or_else(|| env("API_KEY")),
            api_base: some(given.api_base).or_else(|| env("API_BASE")),
        }
    }

    /// Lines for the banner, secrets masked, for `kinds`.
    pub fn describe<'a>(&self, kinds: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut lines = Vec::new();
        for kind in kinds {
            let s = self.of(kind);
            let parts: Vec<String> = [
                s.binary.map(|b| format!("binary {b}")),
                s.model.map(|m| format!("model {m}")),
                s.api_key.map(|k| format!("api key {}", mask(&k))),
                s.api_base.map(|b| format!("api base {b}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !parts.is_empty() {
                lines.push(format!("{kind}: {}", parts.join(", ")));
            }
        }
        if let Some(enabled) = &self.enabled {
            lines.push(format!("enabled kinds {}", enabled.join(",")));
        }
        lines
    }
}
