//! workerhub behind nginx terminating TLS, WebSockets included, as docs/DEPLOY.md shows.
//! The TLS client is the `openssl s_client` program; the WebSocket client (tungstenite)
//! speaks through it. Skipped, with one line, where nginx or openssl is missing.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::TempDir;
use support::server::Workerhub;
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

fn found(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).exists())
}

/// The nginx configuration of docs/DEPLOY.md, with paths and ports for a test.
fn nginx_conf(dir: &Path, listen: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    server {{
        listen 127.0.0.1:{listen} ssl;
        server_name localhost;
        ssl_certificate     {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;

        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

/// A TLS connection made by `openssl s_client`, as a byte stream.
struct TlsPipe {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl TlsPipe {
    fn connect(port: u16, ca: &Path) -> TlsPipe {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-servername",
                "localhost",
                "-CAfile",
            ])
            .arg(ca)
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        TlsPipe {
            child,
            stdin,
            stdout,
        }
    }
}

impl Read for TlsPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Write for TlsPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stdin.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stdin.flush()
    }
}

impl Drop for TlsPipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_websocket_session_works_end_to_end_through_nginx_with_tls() {
    if !found("nginx") || !found("openssl") {
        println!(
            "skipped: the nginx proxy test needs nginx and openssl (apt-get install nginx openssl)"
        );
        return;
    }
    let tmp = TempDir::new("wh-nginx").unwrap();
    let dir = tmp.path();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "a self-signed certificate");

    let hub = Workerhub::start(&[]);
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("nginx.conf"), nginx_conf(dir, listen, hub.port)).unwrap();
    let mut nginx = Command::new(if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    })
    .arg("-p")
    .arg(dir)
    .arg("-c")
    .arg(dir.join("nginx.conf"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let id = hub.command_worker(&["cat"]);
    let token = hub.token.clone().unwrap();
    let mut request = format!("ws://localhost:{listen}/ws/{id}?token={token}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Host", format!("localhost:{listen}").parse().unwrap());
    let pipe = TlsPipe::connect(listen, &dir.join("cert.pem"));
    // Whatever happens, nothing waits forever.
    let pid = pipe.child.id();
    let (done, finished) = crossbeam_channel::bounded::<()>(0);
    let watchdog = std::thread::spawn(move || {
        if finished
            .recv_timeout(Duration::from_secs(30))
            .is_err_and(|e| e.is_timeout())
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let (mut ws, response) =
        tungstenite::client(request, pipe).expect("WebSocket handshake through nginx");
    assert_eq!(response.status(), 101);
    ws.send(Message::text(
        json!({"type": "message", "content": "through TLS"}).to_string(),
    ))
    .unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| e["type"] == "output") {
        match ws.read().expect("a message through nginx") {
            Message::Text(t) => seen.push(serde_json::from_str(&t).unwrap()),
            _ => continue,
        }
    }
    assert_eq!(seen[0]["type"], "user_message");
    assert_eq!(seen[0]["content"], "through TLS");
    let output = seen.iter().find(|e| e["type"] == "output").unwrap();
    assert_eq!(output["content"]["text"], "through TLS");
    let _ = ws.close(None);
    drop(ws);
    drop(done);
    let _ = watchdog.join();

    let _ = nginx.kill();
    let _ = nginx.wait();
}
