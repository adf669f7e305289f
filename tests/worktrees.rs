//! Workers in git worktrees of their own (`"isolation": "worktree"`), with real git in
//! temporary repositories: the worktree and its branch, the diff of every kind of
//! change (untracked files too, the user's index untouched), commit, squash-merge, a
//! merge that conflicts and changes nothing, discard, deletion with and without the
//! branch, three workers on one repository, a server restart, and a real Claude Code
//! (against the mock model) writing a file with a tool call.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::mock_llm::{Behaviour, MockLlm, cli_path};
use support::server::Workerhub;
use support::turns::env_object;

const T: Duration = Duration::from_secs(30);

/// `git ARGS` in `dir`; panics with what git said when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository on `main` with a few files, one commit, and an ignored `.env`.
fn repository(tmp: &TempDir) -> PathBuf {
    let repo = tmp.subdir("repo").unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    git(&repo, &["config", "user.name", "Test"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    std::fs::write(repo.join("a.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(repo.join("gone.txt"), "to be deleted\n").unwrap();
    let long: String = (1..=20)
        .map(|i| format!("line {i} of a file that moves\n"))
        .collect();
    std::fs::write(repo.join("old.md"), long).unwrap();
    std::fs::write(repo.join(".gitignore"), ".env\n").unwrap();
    std::fs::write(repo.join(".env"), "SECRET=local\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "base"]);
    repo
}

/// What a merge must never change in the user's checkout: HEAD, the working tree's
/// state, what is staged, and the index itself.
fn checkout_state(repo: &Path) -> (String, String, String, String, String) {
    (
        git(repo, &["rev-parse", "HEAD"]),
        git(repo, &["status", "--porcelain", "--untracked-files=all"]),
        git(repo, &["diff"]),
        git(repo, &["diff", "--cached"]),
        git(repo, &["ls-files", "--stage"]),
    )
}

/// A `command` worker in a worktree of `repo`, running `script` with `sh -c`.
fn script_worker(hub: &Workerhub, repo: &Path, name: &str, script: &str) -> Value {
    let resp = hub.post_json(
        "/api/workers",
        &json!({
            "name": name,
            "command": ["sh", "-c", script],
            "project_path": repo,
            "isolation": "worktree",
            "copy_files": [".env"],
        }),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()
}

/// Waits for the worker's program to end and its `diff` event; returns the event.
fn wait_diff(hub: &Workerhub, id: &str) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let events = hub.history(id);
        if let Some(diff) = events.iter().rev().find(|e| e["type"] == "diff") {
            return diff.clone();
        }
        assert!(Instant::now() < deadline, "no diff event: {events:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file<'a>(diff: &'a Value, path: &str) -> &'a Value {
    diff["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("{path} not in {diff}"))
}

fn paths(diff: &Value) -> Vec<String> {
    let mut paths: Vec<String> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

#[test]
fn a_worker_edits_its_own_worktree_and_its_diff_shows_every_kind_of_change() {
    let tmp = TempDir::new("wh-worktree").unwrap();
    let repo = repository(&tmp);
    let base = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    let hub = Workerhub::start(&[]);
    let script = "printf 'one\\nTWO\\nthree\\nfour\\n' > a.txt && rm gone.txt && mv old.md moved.md \
                  && printf 'new file\\n' > new.txt && mkdir -p sub && printf 'deep\\n' > sub/untracked.txt \
                  && printf '\\000\\001\\002binary' > blob.bin && git add sub/untracked.txt";
    let worker = script_worker(&hub, &repo, "editor", script);
    let id = worker["id"].as_str().unwrap().to_string();

    // Its own folder under the data folder, its own branch, its base recorded.
    let wt = &worker["worktree"];
    let path = PathBuf::from(wt["path"].as_str().unwrap());
    let short = &id[..8];
    assert_eq!(wt["branch"], format!("workerhub/editor-{short}"));
    assert_eq!(wt["base_commit"], base.as_str());
    assert_eq!(wt["base_branch"], "main");
    assert!(
        path.starts_with(hub.data_dir.join("worktrees").canonicalize().unwrap()),
        "{path:?}"
    );
    assert_eq!(
        worker["project_path"], wt["path"],
        "the worker runs in its worktree"
    );
    assert!(git(&repo, &["worktree", "list"]).contains(path.to_str().unwrap()));
    assert_eq!(
        std::fs::read_to_string(path.join(".env")).unwrap(),
        "SECRET=local\n",
        "copy_files brought the ignored .env"
    );

    let event = wait_diff(&hub, &id);
    assert_eq!(
        paths(&event),
        [
            "a.txt",
            "blob.bin",
            "gone.txt",
            "moved.md",
            "new.txt",
            "sub/untracked.txt"
        ]
    );
    assert_eq!(file(&event, "a.txt")["status"], "modified");
    assert_eq!(file(&event, "a.txt")["added"], 2);
    assert_eq!(file(&event, "a.txt")["removed"], 1);
    assert_eq!(file(&event, "gone.txt")["status"], "deleted");
    assert_eq!(file(&event, "moved.md")["status"], "renamed");
    assert_eq!(file(&event, "moved.md")["old_path"], "old.md");
    assert_eq!(file(&event, "new.txt")["status"], "new");
    assert_eq!(file(&event, "sub/untracked.txt")["status"], "new");
    assert_eq!(file(&event, "blob.bin")["status"], "binary");
    assert_eq!(file(&event, "blob.bin")["binary"], true);
    assert_eq!(event["base_commit"], base.as_str());

    // The same over REST, with the unified diff; the worktree's own index (where the
    // script staged one file) is as the script left it.
    let index_before = git(&path, &["ls-files", "--stage"]);
    let full = hub.get(&format!("/api/workers/{id}/diff")).json();
    assert_eq!(paths(&full), paths(&event));
    let text = full["diff"].as_str().unwrap();
    assert!(text.contains("+TWO") && text.contains("-two"), "{text}");
    assert!(
        text.contains("+new file"),
        "untracked files are in the diff"
    );
    assert!(text.contains("rename from old.md"), "{text}");
    assert!(text.contains("Binary files"), "{text}");
    assert!(!text.contains("SECRET"), "ignored files stay out");
    assert_eq!(git(&path, &["ls-files", "--stage"]), index_before);
    let stat = hub.get(&format!("/api/workers/{id}/diff?stat=1")).json();
    assert!(stat.get("diff").is_none());
    assert_eq!(stat["files"], full["files"]);
    // The user's checkout saw none of it.
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");

    // Commit on the worker's branch; nothing more to commit afterwards.
    let resp = hub.post_json(
        &format!("/api/workers/{id}/commit"),
        &json!({"message": "the editor's work"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let committed = resp.json();
    assert_eq!(
        git(
            &repo,
            &[
                "log",
                "-1",
                "--format=%s",
                &format!("workerhub/editor-{short}")
            ]
        )
        .trim(),
        "the editor's work"
    );
    assert_eq!(
        paths(&committed["diff"]),
        paths(&event),
        "still counted from the base"
    );
    let again = hub.post_json(&format!("/api/workers/{id}/commit"), &json!({}));
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "nothing_to_commit");

    // Into a branch the repository lacks: refused, nothing changed.
    let resp = hub.post_json(
        &format!("/api/workers/{id}/merge"),
        &json!({"into": "no-such-branch"}),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.error_code(), "unknown_ref");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]).trim(), base);

    // Squash-merge into main, which is checked out: one new commit, the files there.
    let resp = hub.post_json(&format!("/api/workers/{id}/merge"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let merged = resp.json();
    assert_eq!(merged["strategy"], "squash");
    assert_eq!(merged["into"], "main");
    assert_eq!(merged["previous"], base.as_str());
    let head = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(merged["commit"], head.as_str());
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD^"]).trim(),
        base,
        "one commit, a squash"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("new.txt")).unwrap(),
        "new file\n"
    );
    assert!(!repo.join("gone.txt").exists());
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    // The worker goes on from what is merged: nothing left to show or merge.
    let after = hub.get(&format!("/api/workers/{id}/diff?stat=1")).json();
    assert_eq!(after["files"], json!([]));
    assert_eq!(after["base_commit"], head.as_str());
    let again = hub.post_json(&format!("/api/workers/{id}/merge"), &json!({}));
    assert_eq!(again.error_code(), "nothing_to_merge");

    // Deleted without its branch: the worktree and the branch are gone.
    let resp = hub.delete(&format!("/api/workers/{id}?keep_branch=false"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["worktree"]["branch_kept"], false);
    assert!(!git(&repo, &["worktree", "list"]).contains(path.to_str().unwrap()));
    assert!(!path.exists());
    assert_eq!(git(&repo, &["branch", "--list", "workerhub/*"]), "");
}

#[test]
fn three_workers_on_one_repository_keep_their_diffs_apart_and_a_conflict_changes_nothing() {
    let tmp = TempDir::new("wh-worktree3").unwrap();
    let repo = repository(&tmp);
    let hub = Workerhub::start(&[]);
    let ids: Vec<String> = ["first", "second", "third"]
        .iter()
        .map(|name| {
            let script = format!("printf 'one from {name}\\ntwo\\nthree\\n' > a.txt");
            script_worker(&hub, &repo, name, &script)["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for (id, name) in ids.iter().zip(["first", "second", "third"]) {
        let event = wait_diff(&hub, id);
        assert_eq!(paths(&event), ["a.txt"]);
        let text = hub.get(&format!("/api/workers/{id}/diff")).json()["diff"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.contains(&format!("+one from {name}")), "{text}");
        for other in ["first", "second", "third"].iter().filter(|o| **o != name) {
            assert!(
                !text.contains(&format!("from {other}")),
                "{name}'s diff: {text}"
            );
        }
    }

    let resp = hub.post_json(&format!("/api/workers/{}/merge", ids[0]), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "one from first\ntwo\nthree\n"
    );

    // The user has work of their own in the checkout: staged and not.
    std::fs::write(repo.join("mine.txt"), "staged\n").unwrap();
    git(&repo, &["add", "mine.txt"]);
    std::fs::write(repo.join("old.md"), "my own edit\n").unwrap();
    let before = checkout_state(&repo);
    let index = std::fs::read(repo.join(".git/index")).unwrap();
    for id in &ids[1..] {
        let resp = hub.post_json(
            &format!("/api/workers/{id}/merge"),
            &json!({"strategy": "merge"}),
        );
        assert_eq!(resp.status, 409, "{}", resp.text());
        assert_eq!(resp.error_code(), "conflict");
        assert_eq!(resp.json()["error"]["paths"], json!(["a.txt"]));
        assert_eq!(
            checkout_state(&repo),
            before,
            "the checkout and index are untouched"
        );
        assert_eq!(std::fs::read(repo.join(".git/index")).unwrap(), index);
        assert!(!repo.join(".git/MERGE_HEAD").exists());
    }

    // Discard: the third worktree is its base again.
    let resp = hub.post_json(&format!("/api/workers/{}/discard", ids[2]), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["diff"]["files"], json!([]));
    let third = hub.worker(&ids[2]);
    let third_path = PathBuf::from(third["worktree"]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(third_path.join("a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );

    // Deleted keeping its branch: the worktree goes, the branch stays.
    let second = hub.worker(&ids[1]);
    let branch = second["worktree"]["branch"].as_str().unwrap().to_string();
    let second_path = second["worktree"]["path"].as_str().unwrap().to_string();
    let resp = hub.delete(&format!("/api/workers/{}?keep_branch=true", ids[1]));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(!git(&repo, &["worktree", "list"]).contains(&second_path));
    assert_eq!(
        git(&repo, &["branch", "--list", &branch])
            .trim()
            .trim_start_matches("+ "),
        branch
    );
    assert_eq!(checkout_state(&repo), before);
}

/// `workerhub ARGS --url URL --token TOKEN`: its stdout, and whether it succeeded.
fn cli(hub: &Workerhub, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_workerhub"));
    command
        .args(args)
        .args(["--url", &format!("http://{}", hub.addr())]);
    if let Some(token) = &hub.token {
        command.args(["--token", token]);
    }
    let out = command.output().expect("the CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_shows_a_workers_diff_and_merges_it() {
    let tmp = TempDir::new("wh-worktree-cli").unwrap();
    let repo = repository(&tmp);
    let hub = Workerhub::start(&[]);
    let id = script_worker(&hub, &repo, "clier", "printf 'cli\\n' >> a.txt")["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_diff(&hub, &id);
    let (ok, out, err) = cli(&hub, &["diff", "clier", "--stat"]);
    assert!(ok, "{err}");
    assert!(out.contains("modified") && out.contains("a.txt"), "{out}");
    let (ok, out, err) = cli(&hub, &["diff", "clier"]);
    assert!(ok, "{err}");
    assert!(out.contains("+cli"), "{out}");
    let (ok, out, err) = cli(&hub, &["merge", "clier", "--rebase", "-m", "from the cli"]);
    assert!(ok, "{err}");
    assert!(out.contains("into main (rebase)"), "{out}");
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s"]).trim(),
        "from the cli"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "one\ntwo\nthree\ncli\n"
    );
    let (ok, _, err) = cli(&hub, &["merge", "clier"]);
    assert!(!ok && err.contains("nothing_to_merge"), "{err}");
}

#[test]
fn worktrees_branches_and_diffs_survive_a_server_restart() {
    let tmp = TempDir::new("wh-worktree-restart").unwrap();
    let repo = repository(&tmp);
    let data = tmp.path().join("data");
    let mut hub = Workerhub::start_in(&data, &[]);
    let worker = script_worker(&hub, &repo, "keeper", "printf 'kept\\n' > kept.txt");
    let id = worker["id"].as_str().unwrap().to_string();
    let event = wait_diff(&hub, &id);
    let before = hub.get(&format!("/api/workers/{id}/diff")).json();
    hub.stop_with(libc::SIGTERM, T);

    let hub = Workerhub::start_in(&data, &[]);
    let again = hub.worker(&id);
    assert_eq!(again["worktree"], worker["worktree"]);
    let after = hub.get(&format!("/api/workers/{id}/diff")).json();
    assert_eq!(after["files"], before["files"]);
    assert_eq!(after["diff"], before["diff"]);
    assert_eq!(paths(&event), ["kept.txt"]);
    let events = hub.history(&id);
    assert!(
        events.iter().any(|e| e["type"] == "diff"),
        "the diff event is in the history"
    );
}

#[test]
fn worktree_requests_that_cannot_work_are_refused_clearly() {
    let tmp = TempDir::new("wh-worktree-refused").unwrap();
    let repo = repository(&tmp);
    let plain = tmp.subdir("plain").unwrap();
    let hub = Workerhub::start(&[]);
    let create = |body: Value| hub.post_json("/api/workers", &body);
    let base = json!({"command": ["true"], "isolation": "worktree"});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };

    let resp = create(with(json!({"project_path": plain})));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.error_code(), "not_a_repository");
    let resp = create(with(
        json!({"project_path": repo, "base_ref": "--output=x"}),
    ));
    assert_eq!(resp.status, 400);
    let resp = create(with(
        json!({"project_path": repo, "base_ref": "no-such-branch"}),
    ));
    assert_eq!(resp.error_code(), "unknown_ref", "{}", resp.text());
    for bad in ["../outside", "/etc/passwd", "a/../../b", ".git/config"] {
        let resp = create(with(json!({"project_path": repo, "copy_files": [bad]})));
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
    }
    let resp = create(json!({"command": ["true"], "project_path": repo, "base_ref": "main"}));
    assert_eq!(resp.status, 400, "base_ref without isolation");
    // A worker without a worktree has no diff.
    let id = hub.create_worker(json!({"command": ["true"], "project_path": repo}));
    let resp = hub.get(&format!("/api/workers/{id}/diff"));
    assert_eq!(resp.status, 409);
    assert_eq!(resp.error_code(), "not_isolated");
    assert_eq!(
        git(&repo, &["worktree", "list"]).lines().count(),
        1,
        "nothing was made"
    );
}

#[test]
fn a_real_claude_code_writes_a_file_in_its_worktree_and_the_diff_follows_the_turn() {
    let Some(claude) = cli_path("claude") else {
        println!("skipped: claude is not installed (run `make clis`)");
        return;
    };
    let tmp = TempDir::new("wh-worktree-claude").unwrap();
    let repo = repository(&tmp);
    let home = tmp.subdir("home").unwrap();
    let hub = Workerhub::start_in(
        &tmp.path().join("data"),
        &["--claude-binary", claude.to_str().unwrap()],
    );
    let mock = MockLlm::start(Behaviour::tool_then_text(
        "printf 'written by claude\\n' > claude.txt",
        "MOCK wrote the file: {tool_output}",
    ))
    .unwrap();
    let env = env_object(mock.claude_env(&home).unwrap());
    let id = hub.create_worker(json!({
        "name": "claude",
        "ai_cli_type": "claude",
        "project_path": repo,
        "isolation": "worktree",
        "approval": "auto",
        "env": env,
    }));
    let path = PathBuf::from(hub.worker(&id)["worktree"]["path"].as_str().unwrap());
    let resp = hub.post_json(
        &format!("/api/workers/{id}/messages"),
        &json!({"content": "write the file"}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    let event = wait_diff(&hub, &id);
    assert_eq!(paths(&event), ["claude.txt"], "{event}");
    assert_eq!(file(&event, "claude.txt")["status"], "new");
    assert_eq!(
        std::fs::read_to_string(path.join("claude.txt")).unwrap(),
        "written by claude\n"
    );
    assert!(
        !repo.join("claude.txt").exists(),
        "the user's checkout is untouched"
    );
}

#[test]
fn a_task_with_worktree_isolation_gets_a_worker_and_a_branch_of_its_own() {
    let tmp = TempDir::new("wh-worktree-task").unwrap();
    let repo = repository(&tmp);
    // A stand-in Claude Code whose `ask bash …` turn writes approved.txt once allowed.
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/fake-claude.mjs");
    if Command::new("node").arg("--version").output().is_err() {
        println!("skipped: node is not installed");
        return;
    }
    let hub = Workerhub::start(&["--claude-binary", fake.to_str().unwrap()]);
    let busy = hub
        .create_worker(json!({"name": "idle-one", "ai_cli_type": "claude", "project_path": repo}));
    let resp = hub.post_json(
        "/api/tasks",
        &json!({"instruction": "ask bash from the task", "ai_cli_type": "claude", "project_path": repo,
                "isolation": "worktree", "approval": "auto"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let task = resp.json()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + T;
    let worker = loop {
        let t = hub.get(&format!("/api/tasks/{task}")).json();
        if let Some(w) = t["assigned_worker"].as_str() {
            break w.to_string();
        }
        assert!(Instant::now() < deadline, "the task was not assigned: {t}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(
        worker, busy,
        "an idle worker outside a worktree is not picked"
    );
    let event = wait_diff(&hub, &worker);
    assert_eq!(paths(&event), ["approved.txt"]);
    assert!(
        event["branch"]
            .as_str()
            .unwrap()
            .starts_with("workerhub/task-")
    );
    assert!(!repo.join("approved.txt").exists());
}
