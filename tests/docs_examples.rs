//! Every shell example in README.md and docs/*.md runs as pasted against a fresh server
//! started as `make run` starts it (the release binary, in a folder of its own, port
//! 7788, data in `./data`, its own generated token), and does what its text says.
//!
//! Each ```sh block carries a comment right above it:
//! * `<!-- example: run -->`: run it (with `bash -e -o pipefail`) in the server's folder,
//!   `workerhub` being this build; it must succeed;
//! * `<!-- example: run until stopped -->`: it runs until interrupted (a follower): it
//!   is stopped after a few seconds, and must not have failed before;
//! * `; prints "TEXT"` after either: its output must contain TEXT;
//! * `<!-- example: skip: WHY -->`: not run here, for the reason given.
//!
//! A block without the comment fails the test, so no new example goes untested. Blocks
//! run in the order of the files, README.md first, as a reader would paste them. When
//! port 7788 is taken on this machine, the server gets a free port and the examples the
//! same port in their text and in `WORKERHUB_URL`: the only change made to them.

mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::TempDir;

#[derive(Debug)]
struct Example {
    file: String,
    line: usize,
    code: String,
    how: How,
    prints: Option<String>,
}

#[derive(Debug, PartialEq)]
enum How {
    Run,
    RunUntilStopped,
    Skip(String),
}

/// The files whose shell examples are tested, README first.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    let mut files = vec![root.join("README.md")];
    files.extend(docs);
    files
}

fn parse_marker(marker: &str) -> Result<(How, Option<String>), String> {
    let body = marker
        .trim()
        .strip_prefix("<!-- example:")
        .and_then(|m| m.strip_suffix("-->"))
        .ok_or("not an example comment")?
        .trim();
    if let Some(why) = body.strip_prefix("skip:") {
        let why = why.trim();
        if why.is_empty() {
            return Err("`skip:` needs a reason".into());
        }
        return Ok((How::Skip(why.to_string()), None));
    }
    let (mode, prints) = match body.split_once(';') {
        Some((mode, rest)) => {
            let rest = rest.trim();
            let text = rest
                .strip_prefix("prints \"")
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| format!("expected `prints \"TEXT\"`, got `{rest}`"))?;
            (mode.trim(), Some(text.to_string()))
        }
        None => (body, None),
    };
    let how = match mode {
        "run" => How::Run,
        "run until stopped" => How::RunUntilStopped,
        other => return Err(format!("unknown example kind `{other}`")),
    };
    Ok((how, prints))
}

fn examples() -> Vec<Example> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).expect("read doc");
        let lines: Vec<&str> = text.lines().collect();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut i = 0;
        while i < lines.len() {
            let fence = lines[i].trim_start();
            if fence.starts_with("```") && matches!(fence.trim(), "```sh" | "```bash" | "```shell")
            {
                let start = i;
                let mut code = Vec::new();
                i += 1;
                while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                    code.push(lines[i]);
                    i += 1;
                }
                let marker = lines[..start]
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .copied()
                    .unwrap_or("");
                match parse_marker(marker) {
                    Ok((how, prints)) => found.push(Example {
                        file: name.clone(),
                        line: start + 1,
                        code: code.join("\n"),
                        how,
                        prints,
                    }),
                    Err(why) => problems.push(format!(
                        "{name}:{}: a shell example needs `<!-- example: run -->`, `<!-- example: run until stopped -->` or `<!-- example: skip: WHY -->` right above it ({why})",
                        start + 1
                    )),
                }
            } else if fence.starts_with("```") {
                // Another language: skip to its end.
                i += 1;
                while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                    i += 1;
                }
            }
            i += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    found
}

/// The server, started as `make run` does: in its own folder, default data folder.
struct MadeRun {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for MadeRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_like_make_run(dir: &Path) -> MadeRun {
    let port_free = std::net::TcpListener::bind("127.0.0.1:7788").is_ok();
    let mut command = Command::new(env!("CARGO_BIN_EXE_workerhub"));
    command
        .current_dir(dir)
        .env_remove("WORKERHUB_TOKEN")
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !port_free {
        command.args(["--port", "0"]);
    }
    let mut child = command.spawn().expect("start workerhub");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(rest) = all.split("workerhub listening on http://").nth(1)
                && let Some(line) = rest.lines().next()
                && rest.contains('\n')
            {
                let _ = tx.send(line.to_string());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server's listening line");
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    MadeRun {
        child,
        dir: dir.to_path_buf(),
        port,
    }
}

/// Runs one example; returns its output (stdout and stderr) or why it failed.
fn run(example: &Example, server: &MadeRun) -> Result<String, String> {
    let mut code = example.code.clone();
    if server.port != 7788 {
        code = code.replace(":7788", &format!(":{}", server.port));
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_workerhub"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out_path = server.dir.join(format!("example-{}.out", example.line));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut command = Command::new("bash");
    command
        .args(["-e", "-o", "pipefail", "-c", &code])
        .current_dir(&server.dir)
        .env("PATH", path)
        .env_remove("WORKERHUB_TOKEN")
        .env("XDG_RUNTIME_DIR", server.dir.join("run"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    if server.port != 7788 {
        command.env("WORKERHUB_URL", format!("http://127.0.0.1:{}", server.port));
    }
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let limit = match example.how {
        How::RunUntilStopped => Duration::from_secs(3),
        _ => Duration::from_secs(60),
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Ctrl-C to the whole group the example started, as a terminal would. (Not
            // through kill(1): procps reads `-12345` as options, and `-1` is everyone.)
            let group = libc::pid_t::try_from(child.id()).unwrap_or(0);
            if group > 1 {
                // SAFETY: kill has no memory effects; a negative pid is a process group.
                unsafe { libc::kill(-group, libc::SIGINT) };
            }
            std::thread::sleep(Duration::from_millis(300));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match (&example.how, status) {
        (How::Run, Some(status)) if !status.success() => {
            return Err(format!("exited with {status}:\n{output}"));
        }
        (How::Run, None) => return Err(format!("still running after {limit:?}:\n{output}")),
        (How::RunUntilStopped, Some(status)) if !status.success() => {
            return Err(format!("ended by itself with {status}:\n{output}"));
        }
        _ => {}
    }
    if let Some(text) = &example.prints
        && !output.contains(text.as_str())
    {
        return Err(format!("its output does not contain {text:?}:\n{output}"));
    }
    Ok(output)
}

#[test]
fn every_shell_example_in_the_docs_runs_as_pasted() {
    let examples = examples();
    let runnable: Vec<&Example> = examples
        .iter()
        .filter(|e| !matches!(e.how, How::Skip(_)))
        .collect();
    assert!(
        runnable.len() >= 3,
        "the README's examples are found: {examples:?}"
    );
    let tmp = TempDir::new("wh-docs").unwrap();
    let server = start_like_make_run(tmp.path());
    let mut failures = Vec::new();
    for example in &runnable {
        if let Err(why) = run(example, &server) {
            failures.push(format!("{}:{}: {why}", example.file, example.line));
        }
    }
    for example in &examples {
        if let How::Skip(why) = &example.how {
            eprintln!("skipped {}:{}: {why}", example.file, example.line);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
