//! Terminal workers (`"terminal": true`): real programs in real pseudo-terminals,
//! driven over `/ws/{id}` and read back through a terminal-state parser, as a browser
//! would show them.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::TempDir;
use support::server::Workerhub;
use support::terminal::{Viewer, session_members, terminal_worker};

const T: Duration = Duration::from_secs(30);

fn bash(hub: &Workerhub, dir: &TempDir) -> (String, Viewer) {
    let id = terminal_worker(hub, &["bash", "--norc", "--noprofile", "-i"], dir.path());
    let mut viewer = Viewer::open(hub, &id, Some(0));
    viewer.input("PS1='$ '\r");
    viewer.wait_screen(T, |s| s.lines().any(|l| l.trim_end() == "$"));
    (id, viewer)
}

#[test]
fn bash_has_a_terminal_job_control_and_its_project_folder() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-bash").unwrap();
    let (_, mut viewer) = bash(&hub, &dir);
    viewer.input("tty; pwd; echo TERM=$TERM\r");
    let screen = viewer.wait_screen(T, |s| s.contains("TERM=xterm-256color"));
    assert!(screen.contains("/dev/pts/"), "{screen}");
    let folder = dir.path().canonicalize().unwrap();
    assert!(screen.contains(folder.to_str().unwrap()), "{screen}");
    assert!(!screen.contains("no job control"), "{screen}");
    viewer.input("sleep 100 &\r");
    viewer.input("jobs\r");
    let screen = viewer.wait_screen(T, |s| s.contains("Running"));
    assert!(screen.contains("sleep 100"), "{screen}");
    viewer.input("kill %1\r");
}

#[test]
fn ctrl_c_is_a_byte_that_interrupts_the_foreground_program_not_the_worker() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-ctrlc").unwrap();
    let (id, mut viewer) = bash(&hub, &dir);
    viewer.input("sleep 30; echo not-interrupted\r");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    viewer.input("\u{3}");
    viewer.input("echo after-$((6*7))\r");
    let screen = viewer.wait_screen(T, |s| s.contains("after-42"));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(screen.contains("^C"), "{screen}");
    assert!(
        !screen.lines().any(|l| l.trim_end() == "not-interrupted"),
        "{screen}"
    );
    assert_eq!(hub.worker(&id)["status"], "running");
}

#[test]
fn a_resize_reaches_the_program() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-resize").unwrap();
    let (id, mut viewer) = bash(&hub, &dir);
    viewer.input("stty size\r");
    viewer.wait_screen(T, |s| s.contains("24 80"));
    viewer.resize(100, 30);
    viewer.wait_message(T, |m| m["type"] == "terminal_resize" && m["cols"] == 100);
    viewer.input("clear; stty size\r");
    viewer.wait_screen(T, |s| s.contains("30 100"));
    // Out of range: refused, the terminal keeps its size.
    viewer.resize(0, 30);
    let error = viewer.wait_message(T, |m| m["type"] == "error");
    assert_eq!(error["code"], "bad_message", "{error}");
    let history = hub.history(&id);
    assert!(history.iter().any(|e| e["type"] == "terminal_resize"));
}

#[test]
fn bytes_that_are_not_utf8_arrive_exactly_as_base64() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-raw").unwrap();
    // Invalid bytes, then a character whose bytes come in two writes.
    let id = terminal_worker(
        &hub,
        &[
            "sh",
            "-c",
            r"sleep 0.3; printf 'a\377\376b'; sleep 0.2; printf '\342\230'; sleep 0.2; printf '\203 done'; sleep 5",
        ],
        dir.path(),
    );
    let mut viewer = Viewer::open(&hub, &id, Some(0));
    viewer.wait_screen(T, |s| s.contains("done"));
    let expected: &[u8] = b"a\xff\xfeb\xe2\x98\x83 done";
    assert_eq!(viewer.bytes, expected);
    let terminal: Vec<_> = viewer
        .messages
        .iter()
        .filter(|m| m["type"] == "terminal")
        .collect();
    assert!(terminal.iter().any(|m| m["encoding"] == "base64"));
    // The snowman was not cut in two: it came as text, whole.
    assert!(
        terminal
            .iter()
            .any(|m| m["data"].as_str().is_some_and(|d| d.contains('☃'))),
        "{terminal:#?}"
    );
}

#[test]
fn a_ten_megabyte_burst_arrives_complete_in_few_events() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-burst").unwrap();
    const SIZE: usize = 10 << 20;
    let id = terminal_worker(
        &hub,
        &[
            "sh",
            "-c",
            &format!("sleep 0.3; head -c {SIZE} /dev/zero | tr '\\0' x; printf END; sleep 5"),
        ],
        dir.path(),
    );
    let mut viewer = Viewer::open(&hub, &id, Some(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !viewer.bytes.ends_with(b"END") && Instant::now() < deadline {
        viewer.pump(Duration::from_secs(1), Duration::from_secs(1));
    }
    assert!(
        viewer.bytes.ends_with(b"END"),
        "{} bytes",
        viewer.bytes.len()
    );
    assert_eq!(viewer.bytes.len(), SIZE + 3);
    assert!(viewer.bytes[..SIZE].iter().all(|&b| b == b'x'));
    let events = viewer
        .messages
        .iter()
        .filter(|m| m["type"] == "terminal")
        .count();
    // Batched per read of the terminal, up to 64 KiB: not one event per 4 KiB read.
    assert!(events < SIZE / 4096, "{events} events");
}

/// A full-screen program (python3 curses); the browser test runs it too.
const CURSES_DEMO: &str = include_str!("fixtures/terminal/curses_demo.py");

#[test]
fn a_curses_program_draws_and_reads_keys() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-curses").unwrap();
    std::fs::write(dir.path().join("demo.py"), CURSES_DEMO).unwrap();
    let id = terminal_worker(&hub, &["python3", "demo.py"], dir.path());
    let mut viewer = Viewer::open(&hub, &id, Some(0));
    viewer.wait_screen(T, |s| s.contains("press a key"));
    assert!(viewer.parser.screen().alternate_screen());
    viewer.input("k");
    viewer.wait_screen(T, |s| s.contains("got key: k"));
    viewer.input("\u{1b}OA"); // the up arrow, in the application cursor mode curses asked for
    viewer.wait_screen(T, |s| s.contains("got key: KEY_UP"));
    viewer.input("q");
    viewer.wait_screen(T, |s| s.contains("curses demo ended"));
    hub.wait_status(&id, |s| s == "exited", T);
}

#[test]
fn a_late_viewer_gets_the_same_screen_as_one_who_watched_from_the_start() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-late").unwrap();
    std::fs::write(dir.path().join("demo.py"), CURSES_DEMO).unwrap();
    let (id, mut early) = bash(&hub, &dir);
    for i in 0..40 {
        early.input(&format!("echo scroll-line-{i}\r"));
    }
    early.wait_screen(T, |s| s.contains("scroll-line-39\n"));
    early.input("python3 demo.py\r");
    early.wait_screen(T, |s| s.contains("press a key"));
    early.input("z");
    early.wait_screen(T, |s| s.contains("got key: z"));
    early.pump(Duration::from_secs(2), Duration::from_millis(300));

    let mut late = Viewer::open(&hub, &id, None);
    late.pump(Duration::from_secs(2), Duration::from_millis(300));
    let snapshot = late.snapshot.clone().expect("a terminal_snapshot first");
    assert_eq!(late.messages[0]["type"], "terminal_snapshot");
    assert_eq!(snapshot["alternate_screen"], true);
    assert_eq!(late.screen(), early.screen());
    assert_eq!(
        late.parser.screen().contents_formatted(),
        early.parser.screen().contents_formatted()
    );
    assert_eq!(
        late.parser.screen().cursor_position(),
        early.parser.screen().cursor_position()
    );
    // Then it follows live, and may type too.
    late.input("w");
    late.wait_screen(T, |s| s.contains("got key: w"));
    early.wait_screen(T, |s| s.contains("got key: w"));
    late.input("q");
    early.wait_screen(T, |s| s.contains("curses demo ended"));
    late.wait_screen(T, |s| s.contains("curses demo ended"));
    early.pump(Duration::from_secs(1), Duration::from_millis(300));
    late.pump(Duration::from_secs(1), Duration::from_millis(300));
    assert_eq!(late.screen(), early.screen());

    // A late viewer of the primary screen gets its scrollback too.
    let mut later = Viewer::open(&hub, &id, None);
    later.pump(Duration::from_secs(2), Duration::from_millis(300));
    let snapshot = later.snapshot.clone().expect("snapshot");
    assert_eq!(snapshot["alternate_screen"], false);
    assert!(snapshot["scrollback"].as_u64().unwrap() > 0, "{snapshot}");
    assert_eq!(later.screen(), early.screen());

    // `since` within memory replays the bytes exactly.
    let mut replay = Viewer::open(&hub, &id, Some(0));
    replay.pump(Duration::from_secs(3), Duration::from_millis(500));
    assert!(replay.snapshot.is_none());
    assert_eq!(replay.bytes, early.bytes);
}

#[test]
fn less_uses_the_alternate_screen() {
    if std::process::Command::new("less")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("less is not installed: skipped");
        return;
    }
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-less").unwrap();
    let text: String = (0..200).map(|i| format!("row {i}\n")).collect();
    std::fs::write(dir.path().join("file.txt"), text).unwrap();
    let (id, mut viewer) = bash(&hub, &dir);
    viewer.input("less file.txt\r");
    viewer.wait_screen(T, |s| s.contains("row 0\n"));
    assert!(viewer.parser.screen().alternate_screen());
    viewer.input(" ");
    viewer.wait_screen(T, |s| s.contains("row 30\n"));
    let mut late = Viewer::open(&hub, &id, None);
    late.pump(Duration::from_secs(1), Duration::from_millis(300));
    assert_eq!(late.screen(), viewer.screen());
    viewer.input("q");
    viewer.wait_screen(T, |s| !s.contains("row 30\n"));
    assert!(!viewer.parser.screen().alternate_screen());
}

#[test]
fn stop_and_delete_end_the_whole_session_with_its_jobs() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-stop").unwrap();
    let (id, mut viewer) = bash(&hub, &dir);
    viewer.input("sleep 1000 & sleep 1001 &\r");
    viewer.input("jobs\r");
    viewer.wait_screen(T, |s| s.contains("sleep 1001"));
    let pid = hub.worker(&id)["pid"].as_u64().expect("pid") as u32;
    assert!(session_members(pid).len() >= 3, "bash and two jobs");
    let stopped = hub.post_json(&format!("/api/workers/{id}/stop"), &json!({}));
    assert!(stopped.status < 300, "{}", stopped.text());
    hub.wait_status(&id, |s| s == "exited", T);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(session_members(pid), Vec::<u32>::new());

    // Started again, then deleted: nothing of it is left either.
    let restarted = hub.post_json(&format!("/api/workers/{id}/start"), &json!({}));
    assert!(restarted.status < 300, "{}", restarted.text());
    hub.wait_status(&id, |s| s == "running", T);
    let pid = hub.worker(&id)["pid"].as_u64().expect("pid") as u32;
    let mut viewer = Viewer::open(&hub, &id, None);
    viewer.input("sleep 1002 &\r");
    viewer.input("jobs\r");
    viewer.wait_screen(T, |s| s.contains("sleep 1002"));
    let deleted = hub.delete(&format!("/api/workers/{id}"));
    assert!(deleted.status < 300, "{}", deleted.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(session_members(pid), Vec::<u32>::new());
}

#[test]
fn a_terminal_is_asked_for_with_a_size_in_range_on_a_command() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-spec").unwrap();
    let bad = [
        json!({"command": ["bash"], "terminal": true, "cols": 1}),
        json!({"command": ["bash"], "terminal": true, "rows": 501}),
        json!({"command": ["bash"], "terminal": "yes"}),
        json!({"command": ["bash"], "cols": 80}),
        json!({"ai_cli_type": "claude", "terminal": true}),
    ];
    for mut body in bad {
        body["project_path"] = json!(dir.path());
        let resp = hub.post_json("/api/workers", &body);
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
    }
    let id = hub.create_worker(json!({
        "command": ["sh", "-c", "stty size; sleep 5"],
        "terminal": true, "cols": 132, "rows": 43,
        "project_path": dir.path(),
    }));
    let mut viewer = Viewer::open(&hub, &id, Some(0));
    viewer.wait_screen(T, |s| s.contains("43 132"));
    assert_eq!(
        hub.worker(&id)["terminal"],
        json!({"cols": 132, "rows": 43})
    );
    // Input to a worker without a terminal is refused with a reason.
    let plain = hub.command_worker(&["cat"]);
    let mut ws = hub.ws(&format!("/ws/{plain}"));
    ws.send_json(&json!({"type": "input", "data": "x"}));
    let error = ws.recv_until(T, |m| m["type"] == "error").pop().unwrap();
    assert_eq!(error["code"], "bad_message", "{error}");
}

/// `workerhub attach` in a pseudo-terminal of the test's own, with its output read.
struct Attached {
    child: std::process::Child,
    master: std::os::fd::OwnedFd,
    slave: std::os::fd::OwnedFd,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Attached {
    fn start(hub: &Workerhub, worker: &str) -> Attached {
        use rustix::pty::OpenptFlags;
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .unwrap();
        rustix::pty::grantpt(&master).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
        let slave = rustix::fs::open(
            name.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: 30,
                ws_col: 100,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_workerhub"));
        command
            .args(["attach", worker, "--url", &format!("http://{}", hub.addr())])
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        if let Some(token) = &hub.token {
            command.args(["--token", token]);
        }
        let child = command.spawn().expect("start workerhub attach");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sink, mut reader) = (
            output.clone(),
            std::fs::File::from(master.try_clone().unwrap()),
        );
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Attached {
            child,
            master,
            slave,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + T;
        while !self.text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "attach never showed {what:?}; it showed:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_keys(&self, keys: &[u8]) {
        use std::io::Write;
        std::fs::File::from(self.master.try_clone().unwrap())
            .write_all(keys)
            .unwrap();
    }
}

#[test]
fn attach_and_a_websocket_viewer_drive_the_same_shell() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-attach").unwrap();
    let (id, mut viewer) = bash(&hub, &dir);
    let before = rustix::termios::tcgetattr(&{
        // The settings of a fresh terminal, to compare with what attach leaves.
        let probe = Attached::start(&hub, "no-such-worker");
        let status = wait_exit(probe.child);
        assert!(!status.success(), "attach to a missing worker fails");
        probe.slave
    })
    .unwrap();
    let mut attached = Attached::start(&hub, &id);
    attached.wait_for("detach with Ctrl-]");
    // From the browser's side: the attached terminal shows it.
    viewer.input("echo from-$((1+1))-ws\r");
    attached.wait_for("from-2-ws");
    // From the attached terminal: the other viewer sees it, and the terminal takes the
    // size of the one who typed.
    attached.type_keys(b"echo from-$((2+1))-attach; stty size\r");
    viewer.wait_screen(T, |s| s.contains("from-3-attach\n30 100"));
    // Ctrl-C from the attached terminal is a byte for the shell.
    attached.type_keys(b"sleep 30\r");
    std::thread::sleep(Duration::from_millis(300));
    attached.type_keys(b"\x03echo still-$((3+1))\r");
    viewer.wait_screen(T, |s| s.contains("still-4"));
    // Ctrl-] detaches: attach ends, the terminal's settings are back, the shell runs on.
    attached.type_keys(&[0x1d]);
    let status = wait_exit(std::mem::replace(
        &mut attached.child,
        std::process::Command::new("true").spawn().unwrap(),
    ));
    assert!(status.success(), "{status:?}: {}", attached.text());
    attached.wait_for("detached from");
    let after = rustix::termios::tcgetattr(&attached.slave).unwrap();
    assert_eq!(after.local_modes, before.local_modes);
    assert_eq!(after.input_modes, before.input_modes);
    assert_eq!(after.output_modes, before.output_modes);
    assert_eq!(hub.worker(&id)["status"], "running");
}

fn wait_exit(mut child: std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + T;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_agent_protocol_subscribes_with_a_snapshot_and_types_and_sizes() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-agent").unwrap();
    let (id, mut viewer) = bash(&hub, &dir);
    viewer.input("echo before-agent\r");
    viewer.wait_screen(T, |s| s.contains("before-agent\n"));
    let mut ws = hub.ws("/ws");
    ws.recv_until(T, |m| m["type"] == "connection:ack");
    let request =
        |ws: &mut support::server::Ws, rid: &str, kind: &str, payload: serde_json::Value| {
            ws.send_json(&json!({"id": rid, "type": kind, "payload": payload}));
        };
    request(&mut ws, "s", "agent:subscribe", json!({"worker_id": id}));
    let got = ws.recv_until(T, |m| {
        m["type"] == "agent:event" && m["payload"]["type"] == "terminal_snapshot"
    });
    let subscribed = got
        .iter()
        .find(|m| m["type"] == "agent:subscribed")
        .unwrap();
    let snapshot = &got.last().unwrap()["payload"];
    assert_eq!(subscribed["payload"]["since"], snapshot["seq"]);
    let data: workerhub::event::TerminalData = serde_json::from_value(snapshot.clone()).unwrap();
    let text = String::from_utf8(data.bytes().unwrap()).unwrap();
    assert!(text.contains("before-agent"), "{text}");

    request(
        &mut ws,
        "r",
        "agent:resize",
        json!({"worker_id": id, "cols": 90, "rows": 20}),
    );
    let answer = ws
        .recv_until(T, |m| m["correlation_id"] == "r")
        .pop()
        .unwrap();
    assert_eq!(answer["type"], "agent:resize", "{answer}");
    request(
        &mut ws,
        "i",
        "agent:input",
        json!({"worker_id": id, "data": "stty size; echo agent-$((5*5))\r"}),
    );
    let answer = ws
        .recv_until(T, |m| m["correlation_id"] == "i")
        .pop()
        .unwrap();
    assert_eq!(answer["type"], "agent:input", "{answer}");
    viewer.wait_screen(T, |s| s.contains("20 90\nagent-25"));
    ws.recv_until(T, |m| {
        m["type"] == "agent:event"
            && m["payload"]["type"] == "terminal"
            && m["payload"]["data"]
                .as_str()
                .is_some_and(|d| d.contains("agent-25"))
    });
    // Out of range, and a worker without a terminal: errors that say so.
    request(
        &mut ws,
        "bad",
        "agent:resize",
        json!({"worker_id": id, "cols": 5000, "rows": 20}),
    );
    let answer = ws
        .recv_until(T, |m| m["correlation_id"] == "bad")
        .pop()
        .unwrap();
    assert_eq!(answer["type"], "agent:error", "{answer}");
}

#[test]
fn input_that_is_not_utf8_goes_as_base64_and_arrives_exactly() {
    let hub = Workerhub::start(&[]);
    let dir = TempDir::new("term-input-raw").unwrap();
    let id = terminal_worker(
        &hub,
        &[
            "sh",
            "-c",
            "stty raw -echo; echo ready; od -An -tx1 -N4; sleep 5",
        ],
        dir.path(),
    );
    let mut viewer = Viewer::open(&hub, &id, Some(0));
    viewer.wait_screen(T, |s| s.contains("ready"));
    // 0xff 0xfe 'A' 0x03: Ctrl-C is a plain byte in a raw terminal.
    viewer
        .ws
        .send_json(&json!({"type": "input", "data": "//5BAw==", "encoding": "base64"}));
    viewer.wait_screen(T, |s| s.contains("ff fe 41 03"));
    viewer
        .ws
        .send_json(&json!({"type": "input", "data": "not base64!", "encoding": "base64"}));
    let error = viewer.wait_message(T, |m| m["type"] == "error");
    assert_eq!(error["code"], "bad_message", "{error}");
}
