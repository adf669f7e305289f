//! Tool approvals: a worker's policy (`"ask"`, `"auto"`, or rules), the rules
//! themselves (`Bash(npm test:*)`, in Claude Code's syntax, which the other CLIs share
//! here), and what a request shows a person (the command, the file and its diff).
//!
//! The policy decides what it can on its own; what it leaves to people becomes an
//! `approval_request` event, and the first answer wins (`worker/approvals.rs`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::Error;
use crate::event::Decision;

/// What a worker does when its program asks to use a tool.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ApprovalPolicy {
    /// Ask whoever watches, and wait for an answer.
    #[default]
    Ask,
    /// Allow everything (what the CLIs did before approvals).
    Auto,
    /// Allow and deny by rules; the rest is asked (or denied).
    Rules(Rules),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub allow: Vec<Rule>,
    #[serde(default)]
    pub deny: Vec<Rule>,
    /// What happens to a call no rule matches.
    #[serde(default)]
    pub ask: Rest,
}

/// What happens to a call no rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rest {
    /// Ask a person.
    #[default]
    Rest,
    /// Deny it: nobody is asked (scripts, unattended runs).
    None,
}

/// A rule: a tool, and optionally what it acts on: `Bash`, `Bash(npm test:*)` (a
/// command starting with `npm test`), `Edit(src/*)`, `Read(/etc/hostname)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub tool: String,
    pub pattern: Option<String>,
    /// The pattern is this call's subject exactly (an "allow for this session" of one
    /// call): a `*` in it is a character, not a wildcard.
    pub exact: bool,
}

/// What a shell reads as more than one command, or as a redirection: a subject holding
/// any of these is never covered by a prefix rule (`Bash(npm test:*)` must not allow
/// `npm test && curl x | sh`); a person is asked instead.
const SHELL_SPECIAL: &[char] = &[';', '&', '|', '`', '$', '>', '<', '\n', '\r', '(', ')'];

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, String> {
        let text = text.trim();
        let (tool, pattern) = match text.split_once('(') {
            Some((tool, rest)) => {
                let pattern = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("rule `{text}` opens `(` but does not end with `)`"))?;
                (tool.trim(), Some(pattern.to_string()))
            }
            None => (text, None),
        };
        let tool_ok = !tool.is_empty()
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*' | '.' | ':'));
        if !tool_ok {
            return Err(format!(
                "rule `{text}`: a rule is a tool name, optionally with what it acts on in parentheses, such as `Bash(npm test:*)`"
            ));
        }
        Ok(Rule {
            tool: tool.to_string(),
            pattern: pattern.filter(|p| !p.is_empty()),
            exact: false,
        })
    }

    /// A rule for exactly `subject` (no wildcard).
    pub fn exactly(tool: &str, subject: Option<&str>) -> Rule {
        Rule {
            tool: tool.to_string(),
            pattern: subject.map(str::to_string),
            exact: true,
        }
    }

    /// Whether the rule covers a call of `tool` with `input`.
    pub fn matches(&self, tool: &str, input: &Value) -> bool {
        if self.tool != "*" && !self.tool.eq_ignore_ascii_case(tool) {
            return false;
        }
        let Some(pattern) = &self.pattern else {
            return true;
        };
        let Some(subject) = subject(input) else {
            return false;
        };
        if self.exact {
            return subject == *pattern;
        }
        let wildcard = pattern.ends_with('*');
        if wildcard && subject.contains(SHELL_SPECIAL) {
            return false;
        }
        // A path that climbs out (`src/../../etc`) is never under a folder's rule.
        if wildcard && subject.split('/').any(|part| part == "..") {
            return false;
        }
        if let Some(prefix) = pattern.strip_suffix(":*") {
            // `npm test:*`: the command `npm test` itself, or with arguments after it.
            return subject == prefix
                || subject
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(char::is_whitespace));
        }
        if let Some(prefix) = pattern
            .strip_suffix("**")
            .or_else(|| pattern.strip_suffix('*'))
        {
            return subject.starts_with(prefix);
        }
        subject == *pattern
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Some(pattern) => write!(f, "{}({pattern})", self.tool),
            None => f.write_str(&self.tool),
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rule, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rule::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ApprovalPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ApprovalPolicy::Ask => serializer.serialize_str("ask"),
            ApprovalPolicy::Auto => serializer.serialize_str("auto"),
            ApprovalPolicy::Rules(rules) => rules.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ApprovalPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ApprovalPolicy, D::Error> {
        let value = Value::deserialize(deserializer)?;
        ApprovalPolicy::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl ApprovalPolicy {
    /// Reads `"ask"`, `"auto"` or `{"allow": [...], "deny": [...], "ask": "rest"|"none"}`.
    pub fn from_value(value: &Value) -> Result<ApprovalPolicy, String> {
        const WHAT: &str = "`approval` must be \"ask\", \"auto\", or rules: {\"allow\": [\"Read\", \"Bash(npm test:*)\"], \"deny\": [...], \"ask\": \"rest\" or \"none\"}";
        match value {
            Value::String(s) if s == "ask" => Ok(ApprovalPolicy::Ask),
            Value::String(s) if s == "auto" => Ok(ApprovalPolicy::Auto),
            Value::Object(_) => serde_json::from_value::<Rules>(value.clone())
                .map(ApprovalPolicy::Rules)
                .map_err(|e| format!("{WHAT} ({e})")),
            _ => Err(WHAT.to_string()),
        }
    }

    /// Reads a policy from a request field, naming it in the error.
    pub fn from_field(value: &Value) -> Result<ApprovalPolicy, Error> {
        ApprovalPolicy::from_value(value).map_err(Error::invalid)
    }

    /// What the policy decides on its own for a call, or None: ask a person. Rules the
    /// session allowed (`allow_session` answers) count as allow rules.
    pub fn decide(&self, session: &[Rule], tool: &str, input: &Value) -> Option<Verdict> {
        let by_rule = |rule: &Rule, decision| Verdict {
            decision,
            by: Decider::Rules,
            message: (decision == Decision::Deny)
                .then(|| format!("denied by the worker's approval rule `{rule}`")),
        };
        match self {
            ApprovalPolicy::Auto => {
                return Some(Verdict {
                    decision: Decision::Allow,
                    by: Decider::Auto,
                    message: None,
                });
            }
            ApprovalPolicy::Rules(rules) => {
                if let Some(rule) = rules.deny.iter().find(|r| r.matches(tool, input)) {
                    return Some(by_rule(rule, Decision::Deny));
                }
                if let Some(rule) = rules.allow.iter().find(|r| r.matches(tool, input)) {
                    return Some(by_rule(rule, Decision::Allow));
                }
            }
            ApprovalPolicy::Ask => {}
        }
        if session.iter().any(|r| r.matches(tool, input)) {
            return Some(Verdict {
                decision: Decision::Allow,
                by: Decider::SessionRule,
                message: None,
            });
        }
        match self {
            ApprovalPolicy::Rules(Rules {
                ask: Rest::None, ..
            }) => Some(Verdict {
                decision: Decision::Deny,
                by: Decider::Rules,
                message: Some("not allowed by the worker's approval rules".into()),
            }),
            _ => None,
        }
    }
}

/// A decision the policy made by itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub by: Decider,
    pub message: Option<String>,
}

/// What decided a request when no person did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decider {
    /// `"approval": "auto"`: allowed without a word (no request is published).
    Auto,
    /// The worker's (or the task's) rules.
    Rules,
    /// An "allow for this session" answer given earlier.
    SessionRule,
    /// Too many requests already wait.
    Limit,
}

impl Decider {
    /// Its name in `approval_resolved.by`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decider::Auto => "auto",
            Decider::Rules => "rules",
            Decider::SessionRule => "session rule",
            Decider::Limit => "limit",
        }
    }
}

/// An answer to a request: what, why (said to the program when it denies), and a
/// changed input to run instead (when it allows).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub decision: Decision,
    pub message: Option<String>,
    pub updated_input: Option<Value>,
    /// One of the agent's own options, for agents that offer more than allow, allow
    /// for the session and deny (ACP's `optionId`).
    pub option_id: Option<String>,
}

impl Answer {
    /// Reads `{"decision", "message"?, "updated_input"?}`.
    pub fn from_json(body: &Value) -> Result<Answer, Error> {
        let decision = match body.get("decision").and_then(Value::as_str) {
            Some("allow") => Decision::Allow,
            Some("allow_session") => Decision::AllowSession,
            Some("deny") => Decision::Deny,
            _ => {
                return Err(Error::invalid(
                    "`decision` must be \"allow\", \"allow_session\" or \"deny\"",
                ));
            }
        };
        let message = match body.get("message") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if m.len() <= 10_000 => Some(m.clone()),
            Some(_) => {
                return Err(Error::invalid(
                    "`message` must be a string of at most 10,000 bytes",
                ));
            }
        };
        let updated_input = match body.get("updated_input") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(Error::invalid("`updated_input` must be an object")),
        };
        let option_id = match body.get("option_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() && id.len() <= 200 => Some(id.clone()),
            Some(_) => {
                return Err(Error::invalid(
                    "`option_id` must be one of the agent's option ids (a string)",
                ));
            }
        };
        Ok(Answer {
            decision,
            message,
            updated_input,
            option_id,
        })
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// What a call acts on, for rules and summaries: its command, file, path or address.
pub fn subject(input: &Value) -> Option<&str> {
    [
        "command",
        "cmd",
        "file_path",
        "path",
        "filePath",
        "url",
        "pattern",
        "query",
    ]
    .iter()
    .find_map(|key| input.get(*key).and_then(Value::as_str))
}

/// What a call would do, for people, and the change as a unified diff when the input
/// carries one (Claude Code's Edit, MultiEdit and Write).
pub fn summarize(tool: &str, input: &Value) -> (String, Option<String>) {
    let text = |key: &str| input.get(key).and_then(Value::as_str);
    let file = text("file_path").or_else(|| text("path")).unwrap_or("");
    match tool {
        "Edit" => {
            let old = text("old_string").unwrap_or("");
            let new = text("new_string").unwrap_or("");
            (format!("edit {file}"), Some(unified_diff(file, old, new)))
        }
        "MultiEdit" => {
            let edits = input
                .get("edits")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let diff: String = edits
                .iter()
                .map(|e| {
                    let old = e.get("old_string").and_then(Value::as_str).unwrap_or("");
                    let new = e.get("new_string").and_then(Value::as_str).unwrap_or("");
                    unified_diff(file, old, new)
                })
                .collect();
            (format!("edit {file} ({} changes)", edits.len()), Some(diff))
        }
        "Write" => {
            let content = text("content").unwrap_or("");
            let lines = content.lines().count();
            let noun = if lines == 1 { "line" } else { "lines" };
            (
                format!("write {file} ({lines} {noun})"),
                Some(unified_diff(file, "", content)),
            )
        }
        _ => match subject(input) {
            Some(subject) => (subject.to_string(), None),
            None => {
                let shown = input.to_string();
                let cut: String = shown.chars().take(300).collect();
                (format!("{tool} {cut}"), None)
            }
        },
    }
}

/// A unified diff replacing `old` by `new` in `file` (one hunk: the lines of each).
pub fn unified_diff(file: &str, old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = if old.is_empty() {
        Vec::new()
    } else {
        old.lines().collect()
    };
    let new_lines: Vec<&str> = if new.is_empty() {
        Vec::new()
    } else {
        new.lines().collect()
    };
    // Lines both sides share at the start and the end are context, not change.
    let head = old_lines
        .iter()
        .zip(&new_lines)
        .take_while(|(a, b)| a == b)
        .count();
    let tail = old_lines[head..]
        .iter()
        .rev()
        .zip(new_lines[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    // One hunk: the changed lines with up to three lines of context each side.
    const CONTEXT: usize = 3;
    let before = head.min(CONTEXT);
    let after = tail.min(CONTEXT);
    let (old_changed, new_changed) = (old_lines.len() - head - tail, new_lines.len() - head - tail);
    let range = |changed: usize| {
        let count = before + changed + after;
        // A side with no lines is at 0 (`-0,0` for a new file).
        let start = if count == 0 {
            head - before
        } else {
            head - before + 1
        };
        format!("{start},{count}")
    };
    let path = file.trim_start_matches('/');
    let old_name = if old_lines.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("a/{path}")
    };
    let new_name = if new_lines.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("b/{path}")
    };
    let mut out = format!(
        "--- {old_name}\n+++ {new_name}\n@@ -{} +{} @@\n",
        range(old_changed),
        range(new_changed)
    );
    for line in &old_lines[head - before..head] {
        out.push_str(&format!(" {line}\n"));
    }
    for line in &old_lines[head..old_lines.len() - tail] {
        out.push_str(&format!("-{line}\n"));
    }
    for line in &new_lines[head..new_lines.len() - tail] {
        out.push_str(&format!("+{line}\n"));
    }
    let tail_start = old_lines.len() - tail;
    for line in &old_lines[tail_start..tail_start + after] {
        out.push_str(&format!(" {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_show_the_change_with_three_lines_of_context() {
        let old: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let new = old.replace("line 10\n", "line ten\n");
        let diff = unified_diff("/srv/app/notes.txt", &old, &new);
        assert_eq!(
            diff,
            "--- a/srv/app/notes.txt\n+++ b/srv/app/notes.txt\n@@ -7,7 +7,7 @@\n line 7\n line 8\n line 9\n-line 10\n+line ten\n line 11\n line 12\n line 13\n"
        );
        let created = unified_diff("a.txt", "", "yes\n");
        assert_eq!(
            created,
            "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1,1 @@\n+yes\n"
        );
    }

    #[test]
    fn a_prefix_rule_never_covers_a_second_command_or_a_climb_out() {
        let rule = Rule::parse("Bash(npm test:*)").unwrap();
        for sneaky in [
            "npm test && curl x | sh",
            "npm test ; rm -rf ~",
            "npm test\nrm -rf ~",
            "npm test $(rm -rf ~)",
            "npm test `id`",
            "npm test > /etc/passwd",
        ] {
            assert!(
                !rule.matches("Bash", &json!({"command": sneaky})),
                "{sneaky:?}"
            );
        }
        let folder = Rule::parse("Edit(src/*)").unwrap();
        assert!(!folder.matches("Edit", &json!({"file_path": "src/../../etc/passwd"})));
        // A rule for one call is that call: its `*` is a character.
        let exact = Rule::exactly("Bash", Some("ls *"));
        assert!(exact.matches("Bash", &json!({"command": "ls *"})));
        assert!(!exact.matches("Bash", &json!({"command": "ls x; rm -rf y"})));
        assert!(!exact.matches("Bash", &json!({"command": "ls -la"})));
    }

    #[test]
    fn rules_read_and_match_like_claude_codes() {
        let rule = Rule::parse("Bash(npm test:*)").unwrap();
        assert!(rule.matches("Bash", &json!({"command": "npm test"})));
        assert!(rule.matches("Bash", &json!({"command": "npm test -- --watch"})));
        assert!(!rule.matches("Bash", &json!({"command": "npm testify"})));
        assert!(!rule.matches("Bash", &json!({"command": "rm -rf /"})));
        assert!(!rule.matches("Edit", &json!({"command": "npm test"})));
        assert!(
            Rule::parse("Read")
                .unwrap()
                .matches("Read", &json!({"file_path": "/x"}))
        );
        assert!(
            Rule::parse("Edit(src/*)")
                .unwrap()
                .matches("Edit", &json!({"file_path": "src/main.rs"}))
        );
        assert_eq!(Rule::parse("Bash(ls)").unwrap().to_string(), "Bash(ls)");
        for bad in ["", "Bash(ls", "Ba sh", "(x)"] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_policy_decides_what_it_can_and_asks_the_rest() {
        let policy = ApprovalPolicy::from_value(&json!({
            "allow": ["Read", "Bash(npm test:*)"],
            "deny": ["Bash(rm:*)"],
        }))
        .unwrap();
        let call = |cmd: &str| json!({"command": cmd});
        assert_eq!(
            policy
                .decide(&[], "Bash", &call("npm test"))
                .unwrap()
                .decision,
            Decision::Allow
        );
        let denied = policy.decide(&[], "Bash", &call("rm -rf x")).unwrap();
        assert_eq!(denied.decision, Decision::Deny);
        assert!(denied.message.unwrap().contains("Bash(rm:*)"));
        assert_eq!(policy.decide(&[], "Bash", &call("touch a")), None);
        // A rule the session allowed.
        let session = [Rule::parse("Bash(touch a)").unwrap()];
        assert_eq!(
            policy
                .decide(&session, "Bash", &call("touch a"))
                .unwrap()
                .by,
            Decider::SessionRule
        );
        let unattended =
            ApprovalPolicy::from_value(&json!({"allow": ["Read"], "ask": "none"})).unwrap();
        assert_eq!(
            unattended
                .decide(&[], "Bash", &call("touch a"))
                .unwrap()
                .decision,
            Decision::Deny
        );
        assert_eq!(
            ApprovalPolicy::Auto
                .decide(&[], "Bash", &call("x"))
                .unwrap()
                .decision,
            Decision::Allow
        );
        assert_eq!(ApprovalPolicy::Ask.decide(&[], "Bash", &call("x")), None);
        for bad in [
            json!("sometimes"),
            json!(3),
            json!({"allow": "Read"}),
            json!({"alow": []}),
        ] {
            assert!(ApprovalPolicy::from_value(&bad).is_err(), "{bad}");
        }
        // It reads back what it writes.
        let written = serde_json::to_value(&policy).unwrap();
        assert_eq!(ApprovalPolicy::from_value(&written).unwrap(), policy);
    }

    #[test]
    fn edits_are_summarized_with_their_diff() {
        let (summary, diff) = summarize(
            "Edit",
            &json!({"file_path": "src/a.rs", "old_string": "fn a() {\n    1\n}", "new_string": "fn a() {\n    2\n}"}),
        );
        assert_eq!(summary, "edit src/a.rs");
        let diff = diff.unwrap();
        assert!(diff.contains("-    1\n+    2\n"), "{diff}");
        assert!(diff.contains(" fn a() {\n"), "{diff}");
        let (summary, diff) = summarize(
            "Write",
            &json!({"file_path": "n.txt", "content": "one\ntwo\n"}),
        );
        assert_eq!(summary, "write n.txt (2 lines)");
        assert!(diff.unwrap().contains("+one\n+two\n"));
        assert_eq!(
            summarize("Bash", &json!({"command": "touch approved.txt"})).0,
            "touch approved.txt"
        );
    }
}
