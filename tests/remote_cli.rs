//! The command line and workers on other hosts, against the real server and a real
//! OpenSSH server this test starts (`local-ssh`, on a loopback port): `workerhub hosts`,
//! `workerhub hosts check NAME`, `workerhub create --host`, and the host column of
//! `workerhub workers`.

mod support;

use std::process::Command;

use support::remote::Remote;

fn start() -> Option<Remote> {
    Remote::start("wh-remote-cli", &[])
}

/// `workerhub ARGS --url URL --token TOKEN`: whether it succeeded, stdout, stderr.
fn cli(remote: &Remote, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_workerhub"));
    command
        .args(args)
        .env("WORKERHUB_URL", format!("http://{}", remote.hub.addr()));
    if let Some(token) = &remote.hub.token {
        command.env("WORKERHUB_TOKEN", token);
    }
    let out = command.output().expect("the CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of `table` that starts with `name` (a column of its own).
fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
}

#[test]
fn hosts_are_listed_and_checked_from_the_command_line() {
    let Some(remote) = start() else { return };

    // Before any check: each host and its state; why an entry cannot be used.
    let (ok, out, err) = cli(&remote, &["hosts"]);
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or("");
    for column in ["NAME", "STATE", "LATENCY", "OS", "CLIS", "WORKERS"] {
        assert!(header.contains(column), "{out}");
    }
    assert!(row(&out, "local-ssh").contains("unknown"), "{out}");
    assert!(row(&out, "bad").contains("invalid"), "{out}");
    let bad_at = out.lines().position(|l| l.starts_with("bad ")).unwrap();
    let why = out.lines().nth(bad_at + 1).unwrap_or("");
    assert!(why.starts_with("  ") && why.contains('-'), "{out}");

    // A check: reachable, the round trip, the OS, the CLIs looked for.
    let (ok, out, err) = cli(&remote, &["hosts", "check", "local-ssh"]);
    assert!(ok, "{out}{err}");
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.starts_with("local-ssh: reachable in ") && first.ends_with(" ms"),
        "{out}"
    );
    assert!(out.contains("  os       Linux"), "{out}");
    assert!(out.contains("  claude   "), "{out}");
    assert!(out.contains("  workers  0 connected"), "{out}");
    let (ok, out, err) = cli(&remote, &["hosts", "check", "local-ssh", "--json"]);
    assert!(ok, "{err}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(answer["state"], "reachable", "{answer}");

    // One that is down: said with why, and the exit code says it.
    let (ok, out, _) = cli(&remote, &["hosts", "check", "down"]);
    assert!(!ok, "{out}");
    assert!(out.starts_with("down: unreachable ("), "{out}");
    // One the hosts file does not name: the server's error, as one line.
    let (ok, _, err) = cli(&remote, &["hosts", "check", "nowhere"]);
    assert!(!ok);
    assert!(
        err.starts_with("workerhub: ") && err.contains("nowhere"),
        "{err}"
    );

    // The list now has what the checks found.
    let (ok, out, err) = cli(&remote, &["hosts"]);
    assert!(ok, "{err}");
    let line = row(&out, "local-ssh");
    assert!(
        line.contains("reachable") && line.contains(" ms") && line.contains("Linux"),
        "{out}"
    );
    assert!(row(&out, "down").contains("unreachable"), "{out}");
}

#[test]
fn a_worker_is_created_on_a_host_and_listed_with_it() {
    let Some(remote) = start() else { return };
    let project = remote.project();
    let path = project.to_str().unwrap();

    // A folder that is not absolute on the host: the error speaks of the flags.
    let (ok, _, err) = cli(
        &remote,
        &[
            "create",
            "nope",
            "--host",
            "local-ssh",
            "--path",
            "project",
            "--",
            "cat",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("`--path`") && !err.contains("`project_path`"),
        "{err}"
    );
    let (ok, _, err) = cli(
        &remote,
        &["create", "nope", "--host", "", "--path", path, "--", "cat"],
    );
    assert!(!ok);
    assert!(err.contains("`--host`") && !err.contains("`host`"), "{err}");

    let (ok, out, err) = cli(
        &remote,
        &[
            "create",
            "far",
            "--host",
            "local-ssh",
            "--path",
            path,
            "--",
            "cat",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(" far (command, "), "{out}");
    let view = remote.hub.wait_status(
        "far",
        |s| s == "running",
        std::time::Duration::from_secs(20),
    );
    assert_eq!(view["host"], "local-ssh", "{view}");
    assert_eq!(view["project_path"], path, "{view}");

    // Messages reach cat on the host unchanged, a leading `--` too: `send` shows the
    // message (`> ...`), then what cat printed (the first answer over ssh can take a
    // few hundred ms: `send` waits longer for a remote worker's).
    for message in ["'; rm -rf ~ #", "$HOME `id` \"q\" \\ ünï ✓"] {
        let (ok, out, err) = cli(&remote, &["send", "far", message]);
        assert!(ok, "{err}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [&format!("> {message}"), message]
        );
    }
    let (ok, out, err) = cli(&remote, &["send", "far", "--", "--version"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["> --version", "--version"]
    );

    // Without any remote worker the list has no host column; with one, it has.
    let (ok, out, err) = cli(
        &remote,
        &[
            "create", "near", "--path", path, "--kind", "command", "--", "cat",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out_list, err) = cli(&remote, &["workers"]);
    assert!(ok, "{err}{out}");
    let header = out_list.lines().next().unwrap_or("");
    assert!(header.contains(" HOST "), "{out_list}");
    let columns = |name: &str| -> Vec<String> {
        row(&out_list, name)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(columns("far")[4], "local-ssh", "{out_list}");
    assert_eq!(columns("near")[4], "-", "{out_list}");

    // The host counts its connected worker.
    let (ok, out, err) = cli(&remote, &["hosts"]);
    assert!(ok, "{err}");
    assert!(row(&out, "local-ssh").ends_with("1 connected"), "{out}");

    let (ok, _, err) = cli(&remote, &["rm", "far"]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&remote, &["workers"]);
    assert!(ok, "{err}");
    assert!(!out.lines().next().unwrap_or("").contains("HOST"), "{out}");
}
