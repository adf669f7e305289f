//! The kinds this server offers: the built-in adapters, kinds from `--config`, where
//! each program is, whether it answers, and whether it is enabled.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::settings::CliSettings;
use super::{Adapter, claude, codex, command, custom, gemini, opencode};
use crate::error::Error;

/// What probing a kind's program found.
#[derive(Clone, Debug)]
pub struct Probe {
    pub binary: Option<PathBuf>,
    pub available: bool,
    pub version: Option<String>,
    pub reason: Option<String>,
    /// Whether the installed version can run a live session (None: not asked).
    pub live: Option<bool>,
}

pub struct Registry {
    adapters: BTreeMap<String, Arc<dyn Adapter>>,
    pub settings: CliSettings,
    probes: Mutex<HashMap<String, (Instant, Probe)>>,
    /// What the last turn of each kind said about its key.
    last_use: Mutex<HashMap<String, (KeyUse, String)>>,
}

/// What a turn showed about its kind's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUse {
    /// The model API answered.
    Worked,
    /// The CLI had no key.
    Missing,
    /// The model API refused the key.
    Rejected,
}

/// Whether a kind has a key for its model API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Found,
    Missing,
    /// The model API refused it on its last use.
    Rejected,
    /// The kind needs none (`command`).
    NotNeeded,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Found => "found",
            KeyState::Missing => "missing",
            KeyState::Rejected => "rejected",
            KeyState::NotNeeded => "not_needed",
        }
    }
}

/// A kind's credentials, as far as the server can tell.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Credentials {
    pub state: KeyState,
    /// Which variable or login was found, or what was looked for.
    pub detail: String,
    /// What to do when it is missing or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// How long a probe result is trusted.
const PROBE_TTL: Duration = Duration::from_secs(30);
/// How long `--version` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The built-in kinds. A new kind is its file in `adapters/` and one line here.
fn builtin() -> Vec<Arc<dyn Adapter>> {
    vec![
        Arc::new(command::Command),
        Arc::new(claude::Claude),
        Arc::new(codex::Codex),
        Arc::new(gemini::Gemini),
        Arc::new(opencode::OpenCode),
        Arc::new(super::acp::Acp),
        #[cfg(test)]
        Arc::new(super::scratch::Scratch),
    ]
}

impl Registry {
    pub fn new(settings: CliSettings) -> Registry {
        Registry {
            adapters: builtin()
                .into_iter()
                .map(|a| (a.kind().to_string(), a))
                .collect(),
            settings,
            probes: Mutex::new(HashMap::new()),
            last_use: Mutex::new(HashMap::new()),
        }
    }

    /// Adds the kinds of a `--config` file.
    pub fn load_config(&mut self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let builtin: Vec<String> = builtin().iter().map(|a| a.kind().to_string()).collect();
        let kinds = custom::parse_config(&text, |name| builtin.iter().any(|b| b == name))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let n = kinds.len();
        for kind in kinds {
            self.adapters
                .insert(kind.kind().to_string(), Arc::new(kind));
        }
        Ok(n)
    }

    /// Every kind's credential variables (withheld from children of other kinds).
    pub fn credential_names(&self) -> std::collections::BTreeSet<String> {
        self.adapters
            .values()
            .flat_map(|a| a.credentials())
            .collect()
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.get(kind).cloned()
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn Adapter>> {
        self.adapters.values()
    }

    pub fn is_enabled(&self, kind: &str) -> bool {
        kind == "command"
            || self
                .settings
                .enabled
                .as_ref()
                .is_none_or(|list| list.iter().any(|k| k == kind))
    }

    /// The program a kind runs, as configured or its default name.
    pub fn binary_setting(&self, adapter: &dyn Adapter) -> Option<String> {
        self.settings
            .of(adapter.kind())
            .binary
            .or_else(|| adapter.binary_name().map(str::to_string))
    }

    /// Finds the kind's program (a path, or a name on PATH).
    pub fn resolve_binary(&self, adapter: &dyn Adapter) -> Option<PathBuf> {
        let name = self.binary_setting(adapter)?;
        find_program(&name)
    }

    /// Whether the kind's program is there and answers `--version` (cached a while).
    pub fn probe(&self, adapter: &dyn Adapter) -> Probe {
        let kind = adapter.kind().to_string();
        if adapter.binary_name().is_none() && self.settings.of(&kind).binary.is_none() {
            return Probe {
                binary: None,
                available: true,
                version: None,
                reason: None,
                live: None,
            };
        }
        if let Some((at, probe)) = self.lock_probes().get(&kind)
            && at.elapsed() < PROBE_TTL
        {
            return probe.clone();
        }
        let probe = match self.resolve_binary(adapter) {
            None => Probe {
                binary: None,
                available: false,
                version: None,
                live: None,
                reason: Some(format!(
                    "`{}` was not found on PATH (set WORKERHUB_{}_BINARY to its path)",
                    self.binary_setting(adapter).unwrap_or_default(),
                    kind.to_ascii_uppercase().replace('-', "_")
                )),
            },
            Some(path) => match adapter
                .version_args()
                .map(|args| version_of(&path, &args))
                .transpose()
            {
                Ok(version) => Probe {
                    // The help text names the live protocol when this version has it.
                    live: adapter.live_probe().map(|(args, needle)| {
                        crate::process::bounded::run(&path, &args, PROBE_TIMEOUT).is_ok_and(|out| {
                            out.stdout.contains(needle) || out.stderr.contains(needle)
                        })
                    }),
                    binary: Some(path),
                    available: true,
                    version,
                    reason: None,
                },
                Err(reason) => Probe {
                    binary: Some(path),
                    available: false,
                    version: None,
                    reason: Some(reason),
                    live: None,
                },
            },
        };
        self.lock_probes()
            .insert(kind, (Instant::now(), probe.clone()));
        probe
    }

    fn lock_probes(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Probe)>> {
        self.probes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every kind with its program, availability, version, default model and whether
    /// it is enabled. Programs are probed in parallel.
    pub fn describe(&self) -> Vec<KindInfo> {
        let adapters: Vec<Arc<dyn Adapter>> = self.adapters.values().cloned().collect();
        let probes: Vec<Probe> = std::thread::scope(|scope| {
            let handles: Vec<_> = adapters
                .iter()
                .map(|a| scope.spawn(move || self.probe(a.as_ref())))
                .collect();
            handles
                .into_iter()
                .zip(&adapters)
                .map(|(h, a)| {
                    h.join().unwrap_or_else(|_| Probe {
                        binary: None,
                        available: false,
                        version: None,
                        reason: Some(format!("probing {} failed", a.kind())),
                        live: None,
                    })
                })
                .collect()
        });
        adapters
            .iter()
            .zip(probes)
            .map(|(adapter, probe)| {
                let enabled = self.is_enabled(adapter.kind());
                let reason = if !enabled {
                    Some("disabled by configuration (ENABLED_AI_CLIS)".to_string())
                } else {
                    probe.reason.clone()
                };
                // What the installed version can do: a live session only when its help
                // names the protocol (or it was not asked).
                let sessions: Vec<&'static str> = adapter
                    .session_modes()
                    .iter()
                    .copied()
                    .filter(|m| *m != "live" || probe.live != Some(false))
                    .collect();
                // A live session asks; a per-turn process can only be allowed all.
                let approvals = if sessions.contains(&"live") {
                    vec!["ask", "auto", "rules"]
                } else {
                    Vec::new()
                };
                KindInfo {
                    name: adapter.kind().to_string(),
                    label: adapter.label().to_string(),
                    options: adapter.options(),
                    binary: probe.binary.as_ref().map(|p| p.display().to_string()),
                    available: probe.available,
                    version: probe.version.as_deref().and_then(clean_version),
                    version_text: probe.version.clone(),
                    default_model: adapter.default_model(&self.settings),
                    enabled,
                    usable: enabled && probe.available,
                    reason,
                    credentials: self.credentials(adapter.as_ref()),
                    needs_command: adapter.binary_name().is_none(),
                    sessions,
                    approvals,
                }
            })
            .collect()
    }

    /// Records what a turn of `kind` showed about its key.
    pub fn note_key_use(&self, kind: &str, what: KeyUse) {
        self.last_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind.to_string(), (what, crate::clock::now_rfc3339()));
    }

    /// A kind's credentials: a key in the server's environment (or the kind's
    /// settings), or a login of the CLI's own in the server user's home; and what its
    /// last use showed. A worker may still bring its own key in its `env`.
    pub fn credentials(&self, adapter: &dyn Adapter) -> Credentials {
        let names = adapter.credentials();
        let logins = adapter.login_files();
        if names.is_empty() && logins.is_empty() {
            return Credentials {
                state: KeyState::NotNeeded,
                detail: String::new(),
                hint: None,
            };
        }
        let last = self
            .last_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(adapter.kind())
            .cloned();
        if let Some((KeyUse::Rejected, at)) = &last {
            return Credentials {
                state: KeyState::Rejected,
                detail: format!("its model API refused the key on its last use ({at})"),
                hint: Some(adapter.credential_hint()),
            };
        }
        let set = names
            .iter()
            .find(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()))
            .cloned()
            .or_else(|| {
                self.settings
                    .of(adapter.kind())
                    .api_key
                    .map(|_| format!("WORKERHUB_{}_API_KEY", adapter.kind().to_ascii_uppercase()))
            });
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let login = home.as_ref().and_then(|home| {
            logins
                .iter()
                .map(|rel| home.join(rel))
                .find(|path| path.is_file())
        });
        match (set, login) {
            (Some(name), _) => Credentials {
                state: KeyState::Found,
                detail: format!("{name} is set"),
                hint: None,
            },
            (None, Some(path)) => Credentials {
                state: KeyState::Found,
                detail: format!("a login in {}", path.display()),
                hint: None,
            },
            (None, None) => Credentials {
                state: KeyState::Missing,
                detail: {
                    let mut looked: Vec<String> = names.clone();
                    looked.extend(logins.iter().map(|l| format!("~/{l}")));
                    format!("none of {} is set or there", looked.join(", "))
                },
                hint: Some(adapter.credential_hint()),
            },
        }
    }

    /// Refuses kinds that are disabled or whose program does not answer.
    pub fn check_usable(&self, adapter: &dyn Adapter) -> Result<(), Error> {
        if !self.is_enabled(adapter.kind()) {
            return Err(Error::invalid(format!(
                "the kind `{}` is disabled on this server (ENABLED_AI_CLIS)",
                adapter.kind()
            )));
        }
        let probe = self.probe(adapter);
        if !probe.available {
            return Err(Error::invalid(format!(
                "the kind `{}` is not available: {}",
                adapter.kind(),
                probe.reason.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

/// One kind as `GET /api/ai-clis` and the banner show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KindInfo {
    pub name: String,
    /// Its name for people ("Claude Code").
    pub label: String,
    pub options: Vec<super::OptionSpec>,
    pub binary: Option<String>,
    pub available: bool,
    /// The version number its program reports (`2.1.197`).
    pub version: Option<String>,
    /// The whole line its program printed for `--version`.
    pub version_text: Option<String>,
    pub default_model: Option<String>,
    pub enabled: bool,
    pub usable: bool,
    /// Why it is not usable.
    pub reason: Option<String>,
    /// Whether it has a key for its model API.
    pub credentials: Credentials,
    /// A worker of this kind runs the `command` it is given (`command`, `acp`): there is
    /// no program to find, and a task cannot start one by the kind alone.
    pub needs_command: bool,
    /// The `session` modes it takes, and the `approval` policies.
    pub sessions: Vec<&'static str>,
    pub approvals: Vec<&'static str>,
}

/// The version number in a `--version` line: `2.1.197 (Claude Code)` → `2.1.197`,
/// `codex-cli 0.169.0` → `0.169.0`.
pub fn clean_version(line: &str) -> Option<String> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(|word| word.trim_start_matches('v'))
        .find(|word| {
            let mut parts = word.split('.');
            let numeric = |p: Option<&str>| {
                p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            };
            numeric(parts.next()) && numeric(parts.next())
        })
        .map(str::to_string)
}

/// A program by path, or by name on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let is_executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

/// Runs `PROGRAM --version` (or `args`) with a time limit; returns the first line it
/// printed.
fn version_of(program: &Path, args: &[String]) -> Result<String, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let run = crate::process::bounded::run(program, args, PROBE_TIMEOUT)?;
    let (success, out) = (run.success, run.stdout);
    let line = out
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    if success && !line.is_empty() {
        Ok(line)
    } else {
        Err(format!("`{shown}` failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::clean_version;

    #[test]
    fn versions_are_read_out_of_version_lines() {
        for (line, want) in [
            ("2.1.197 (Claude Code)", Some("2.1.197")),
            ("codex-cli 0.169.0", Some("0.169.0")),
            ("0.61.0", Some("0.61.0")),
            ("opencode v1.18.33", Some("1.18.33")),
            ("mycli 3.2", Some("3.2")),
            ("no version here", None),
            ("build 12345", None),
        ] {
            assert_eq!(clean_version(line).as_deref(), want, "{line}");
        }
    }
}
