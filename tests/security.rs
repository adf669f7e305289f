//! Safe to expose: tokens on every route, slow and idle clients that cannot exhaust the
//! server, paths that cannot leave their folders.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::TempDir;
use support::server::Workerhub;

const T: Duration = Duration::from_secs(20);

#[test]
fn bound_to_every_address_without_a_token_every_route_but_healthz_needs_the_generated_one() {
    let tmp = TempDir::new("wh-auth").unwrap();
    let data = tmp.path().join("data");
    let mut hub = Workerhub::start_untouched(&data, &["--host", "0.0.0.0"]);
    let token = std::fs::read_to_string(data.join("token"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64, "256 random bits, hex");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("token")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let open_lines: Vec<&String> = hub
        .banner
        .iter()
        .filter(|l| l.contains("?token="))
        .collect();
    assert_eq!(
        open_lines.len(),
        1,
        "the page address with the token is printed once"
    );
    assert!(open_lines[0].contains(&token));

    // Every route of the API, without the token: 401 with a clear error.
    let openapi: serde_json::Value =
        serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            let path = path.replace("{id}", "x");
            let resp = hub.request_raw(
                &method.to_ascii_uppercase(),
                &path,
                &[("Content-Type", "application/json")],
                b"{}",
            );
            if path == "/healthz" {
                assert_eq!(resp.status, 200, "{method} {path} is open");
            } else if path == "/api/auth/login" {
                // Open, but an empty token is no token.
                assert_eq!(resp.json()["error"]["message"], "that token is not valid");
            } else {
                assert_eq!(resp.status, 401, "{method} {path} needs the token");
                assert_eq!(resp.error_code(), "unauthorized");
            }
        }
    }
    let wrong = hub.request_raw(
        "GET",
        "/api/workers",
        &[("Authorization", "Bearer not-the-token-at-all-0000")],
        b"",
    );
    assert_eq!(wrong.status, 401);

    // With the token: the header works...
    let bearer = format!("Bearer {token}");
    let ok = hub.request_raw("GET", "/api/workers", &[("Authorization", &bearer)], b"");
    assert_eq!(ok.status, 200);
    // ...the page trades ?token= for a cookie and drops it from the address bar...
    let page = hub.request_raw("GET", &format!("/?token={token}"), &[], b"");
    assert_eq!(page.status, 303);
    assert_eq!(page.header("Location"), Some("/"));
    let cookie = page.header("Set-Cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = hub.request_raw("GET", "/api/workers", &[("Cookie", &pair)], b"");
    assert_eq!(with_cookie.status, 200);
    // ...and so does ?token= on a WebSocket (and the cookie, and the header).
    let id = {
        let resp = hub.request_raw(
            "POST",
            "/api/workers",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            json!({"project_path": std::env::temp_dir(), "command": ["cat"]})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()["id"].as_str().unwrap().to_string()
    };
    let connect = |path: &str, headers: &[(&str, &str)]| {
        support::server::ws_connect(&hub.addr(), path, headers)
    };
    assert!(connect(&format!("/ws/{id}?token={token}"), &[]).is_ok());
    assert!(connect(&format!("/ws/{id}"), &[("Cookie", &pair)]).is_ok());
    assert!(connect("/ws", &[("Authorization", &bearer)]).is_ok());
    match connect(&format!("/ws/{id}"), &[]) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // The login form's way in.
    let login = hub.request_raw(
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        json!({"token": token}).to_string().as_bytes(),
    );
    assert_eq!(login.status, 200);
    assert!(login.header("Set-Cookie").unwrap().contains("HttpOnly"));
    let bad = hub.request_raw(
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        br#"{"token":"nope"}"#,
    );
    assert_eq!(bad.status, 401);
    assert_eq!(hub.request_raw("GET", "/healthz", &[], b"").status, 200);
    assert_eq!(
        hub.request_raw("GET", "/", &[], b"").status,
        200,
        "the page itself is public; its data is not"
    );

    // The token survives a restart, and never shows up in the log.
    hub.stop_with(15, T).unwrap();
    let log = hub.log();
    assert!(!log.contains(&token), "the token is not in the log");
    let hub = Workerhub::start_untouched(&data, &["--host", "0.0.0.0"]);
    let again = hub.request_raw("GET", "/api/workers", &[("Authorization", &bearer)], b"");
    assert_eq!(again.status, 200);
}

#[test]
fn no_auth_is_refused_off_loopback() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workerhub"))
        .args([
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--no-auth",
            "--data-dir",
            "/tmp/never-used",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-auth"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_workerhub"))
        .args(["--port", "0", "--token", "short"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

#[test]
fn idle_and_half_sent_connections_cannot_starve_the_server_and_are_closed() {
    // Past the per-address cap (tests/attacks.rs), here a thousand from the client's own
    // address: each must be closed within the timeout, and none may starve the others.
    let hub = Workerhub::start(&[
        "--http-timeout",
        "2",
        "--max-http-connections-per-ip",
        "2000",
    ]);
    let mut idle = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(hub.addr()).unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
        }
        idle.push(s);
    }
    let started = Instant::now();
    let resp = hub.get("/api/workers");
    let took = started.elapsed();
    assert_eq!(resp.status, 200);
    println!("GET /api/workers with 1000 idle or half-sent connections open: {took:?}");

    // Every one of them is closed by the server within the timeout (plus a margin).
    std::thread::sleep(Duration::from_secs(3));
    let mut closed = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(_) => closed += 1, // EOF, or a 408 before it
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 1000, "idle connections were closed by the server");
    assert_eq!(hub.get("/api/workers").status, 200);
}

#[test]
fn paths_cannot_leave_their_folders() {
    let tmp = TempDir::new("wh-paths").unwrap();
    let ui = tmp.subdir("ui").unwrap();
    std::fs::write(
        ui.join("index.html"),
        "<!doctype html><title>dev page</title>",
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ui.join("passwd")).unwrap();
    let root = tmp.subdir("projects").unwrap();
    let inside = tmp.subdir("projects/app").unwrap();
    let outside = tmp.subdir("elsewhere").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("sneaky")).unwrap();
    let hub = Workerhub::start(&[
        "--static-dir",
        ui.to_str().unwrap(),
        "--project-root",
        root.to_str().unwrap(),
    ]);
    assert!(
        hub.get("/").text().contains("dev page"),
        "--static-dir serves from disk"
    );
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
    ] {
        let resp = hub.get(path);
        assert_eq!(resp.status, 404, "{path}");
        assert!(!resp.text().contains("root:"), "{path}");
    }
    let create = |p: &std::path::Path| {
        hub.post_json(
            "/api/workers",
            &json!({"project_path": p, "command": ["cat"]}),
        )
    };
    assert_eq!(create(&inside).status, 201);
    for bad in [
        outside.clone(),
        root.join("sneaky"),
        root.join("../elsewhere"),
        "/".into(),
    ] {
        let resp = create(&bad);
        assert_eq!(resp.status, 403, "{}: {}", bad.display(), resp.text());
        assert_eq!(resp.error_code(), "forbidden_path");
    }
    let exec = hub.post_json("/api/exec", &json!({"argv": ["true"], "cwd": outside}));
    assert_eq!(exec.status, 403, "one-off commands obey the roots too");
}

#[test]
fn per_token_and_per_address_limits_are_clear() {
    let hub = Workerhub::start(&[
        "--max-workers-per-token",
        "1",
        "--max-connections-per-ip",
        "2",
    ]);
    hub.command_worker(&["cat"]);
    let resp = hub.post_json(
        "/api/workers",
        &json!({"project_path": "/tmp", "command": ["cat"]}),
    );
    assert_eq!(resp.status, 429);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-workers-per-token")
    );
    let _a = hub.ws("/ws");
    let _b = hub.ws("/ws");
    std::thread::sleep(Duration::from_millis(100));
    match hub.ws_with("/ws", &[]) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
}
