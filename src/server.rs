//! Starting and stopping the server: `Server::start` assembles the services from a
//! checked `ServerConfig` and starts the threads; `Server::stop` (or dropping it) stops
//! them in order and joins every thread it started. Nothing else happens here.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender, bounded};

use crate::adapters::Registry;
use crate::adapters::registry::KeyState;
use crate::app::App;
use crate::auth::{Auth, TokenSource};
use crate::config::ServerConfig;
use crate::dashboards::{Audience, Dashboards};
use crate::exec::{CommandLimits, Commands, ExecLimits};
use crate::http::Web;
use crate::http::guard::Origins;
use crate::http::static_files::StaticFiles;
use crate::process::broadcast::Broadcast;
use crate::process::env::ChildEnv;
use crate::process::launcher::Launcher;
use crate::process::ledger::{self, Ledger};
use crate::process::{ProcessConfig, Processes};
use crate::tasks::Tasks;
use crate::timer::Timer;
use crate::worker::hub::{Hub, HubConfig};
use crate::worker::{Engine, Timing};
use crate::ws::Sockets;
use crate::ws::registry::Connections;
use crate::ws::writer::Writers;
use crate::{private_files, sys};

/// A running server. Dropping it stops it.
pub struct Server {
    app: Arc<App>,
    /// Taken at shutdown: dropping it closes the listener.
    http: Option<Arc<tiny_http::Server>>,
    addr: SocketAddr,
    pool: Vec<JoinHandle<()>>,
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
    broadcast: Option<Broadcast>,
    timer: Timer,
    /// This server's file for local clients (`discovery`), removed at shutdown.
    announced: Option<PathBuf>,
    /// What the banner reports.
    report: Report,
}

struct Report {
    token_source: TokenSource,
    restored: usize,
    fd_limit: u64,
    config: ServerConfig,
}

impl Server {
    /// Binds, prepares the data folder, restores workers and tasks, and starts serving.
    pub fn start(config: ServerConfig) -> Result<Server, String> {
        let fd_limit = sys::raise_fd_limit();
        // The port first: a server that cannot listen leaves nothing behind (no empty
        // data folder).
        let (http_server, addr) = listen(&config)?;
        let data = &config.data_dir;
        // The data folder holds what agents did and said: private to this user.
        private_files::create_dir(data)
            .map_err(|err| format!("cannot create the data folder {}: {err}", data.display()))?;
        match private_files::secure_tree(data) {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "made {n} files and folders under {} private to this user (they were readable by others)",
                data.display()
            ),
            Err(err) => log::warn!(
                "could not check the permissions under {}: {err}",
                data.display()
            ),
        }
        let (auth, token_source) = if config.auth.off {
            (Auth::off(), TokenSource::Off)
        } else {
            Auth::load(
                &config.auth.tokens,
                config.auth.tokens_file.as_deref(),
                data,
            )?
        };
        let workers_dir = data.join("workers");
        private_files::create_dir(&workers_dir).map_err(|err| {
            format!(
                "cannot create the data folder {}: {err}",
                workers_dir.display()
            )
        })?;

        let mut registry = Registry::new(config.cli.clone());
        if let Some(path) = &config.kinds_file {
            registry.load_config(path)?;
        }
        let registry = Arc::new(registry);
        let child_env = ChildEnv::new(
            std::env::vars_os(),
            &registry.credential_names(),
            &config.pass_env,
        );
        // Children a previous server left behind (killed outright) are ended before
        // anything starts, and their workers told.
        let (ledger, left_over) = Ledger::open(&data.join("processes.json"));
        let ended = ledger::end_left_over(left_over, config.workers.stop_grace);
        let timer = Timer::start();
        let (broadcast, output) = Broadcast::start()
            .map_err(|err| format!("cannot start the broadcast thread: {err}"))?;
        let launcher =
            Launcher::start().map_err(|err| format!("cannot start the launcher thread: {err}"))?;
        let processes = Processes::new(
            launcher,
            ledger,
            output,
            ProcessConfig {
                max_line: 1 << 20,
                drain_grace: Duration::from_millis(500),
            },
        );
        let hosts = match &config.hosts_file {
            Some(file) => crate::hosts::Hosts::load(file, data)?,
            None => crate::hosts::Hosts::none(data),
        };
        let hosts = Arc::new(
            hosts
                .with_env(child_env.build(&[], &[]))
                .allow_adhoc(config.allow_adhoc_hosts),
        );
        hosts.start_cleanups();
        let w = &config.workers;
        let engine = Arc::new(Engine::new(
            processes,
            timer.clone(),
            Timing {
                kill_grace: w.stop_grace,
                turn_timeout: w.turn_timeout,
                result_grace: w.result_grace,
                approval_timeout: w.approval_timeout,
            },
            w.feed,
            workers_dir,
            registry,
            child_env,
            canonical_roots(&w.project_roots)?,
            hosts.clone(),
        ));
        let hub = Arc::new(Hub::new(
            engine.clone(),
            HubConfig {
                max_workers: w.max_workers,
                max_stored_workers: w.max_stored_workers,
                max_workers_per_token: w.max_workers_per_token,
                base_dir: w.base_dir.clone(),
                default_kind: w.default_kind.clone(),
                worktrees_dir: w.worktrees_dir.clone(),
            },
        ));
        let dashboards = Arc::new(Dashboards::default());
        engine.observe(dashboards.clone());
        let restored = hub.restore(&ended);
        let tasks = Tasks::open(
            data.join("tasks.json"),
            hub.clone(),
            dashboards.clone(),
            timer.clone(),
        );
        let c = &config.commands;
        let commands = Commands::new(
            engine,
            w.base_dir.clone(),
            CommandLimits {
                exec: ExecLimits {
                    default_timeout: c.default_timeout,
                    max_timeout: c.max_timeout,
                },
                max_running: c.max_running,
                max_per_token: c.max_per_token,
                stop_grace: w.stop_grace,
            },
        );
        let writers = Writers::start(config.writer_threads)
            .map_err(|err| format!("cannot start the writer threads: {err}"))?;
        let app = Arc::new(App {
            hub,
            tasks,
            commands,
            hosts,
            dashboards,
            sockets: Sockets {
                writers,
                registry: Connections::new(),
                timer: timer.clone(),
                config: config.sockets.conn,
                max_connections: config.sockets.max_connections,
                max_connections_per_ip: config.sockets.max_connections_per_ip,
            },
            web: Web {
                auth,
                origins: Origins::new(
                    &config.host,
                    addr.port(),
                    &config.http.allow_hosts,
                    &config.http.allow_origins,
                ),
                static_files: StaticFiles::new(config.static_dir.clone()),
                max_body: config.http.max_body,
            },
            started: Instant::now(),
        });

        let http_server = Arc::new(http_server);
        let mut pool = Vec::new();
        for i in 0..config.threads {
            let (server, app) = (http_server.clone(), app.clone());
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    // `recv` fails only when unblocked at shutdown.
                    while let Ok(request) = server.recv() {
                        crate::api::serve(&app, request);
                    }
                })
                .map_err(|err| format!("cannot start HTTP threads: {err}"))?;
            pool.push(handle);
        }
        let ticker = start_ticker(app.clone(), config.status_every)?;
        let announced = crate::discovery::announce(
            addr.port(),
            &format!("http://{}", host_port(&config.host, addr.port())),
            data,
        );
        Ok(Server {
            app,
            http: Some(http_server),
            addr,
            pool,
            ticker: Some(ticker),
            broadcast: Some(broadcast),
            timer,
            announced,
            report: Report {
                token_source,
                restored,
                fd_limit,
                config,
            },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Prints what this server is and how to reach it; its last line is
    /// `workerhub listening on http://HOST:PORT` (scripts wait for it).
    pub fn print_banner(&self) {
        let report = &self.report;
        let config = &report.config;
        let app = &self.app;
        let origins = if config.http.allow_origins.is_empty() {
            "own origin only".to_string()
        } else {
            format!("own origin + {}", config.http.allow_origins.join(", "))
        };
        println!("workerhub {}", env!("CARGO_PKG_VERSION"));
        let data = config
            .data_dir
            .canonicalize()
            .unwrap_or_else(|_| config.data_dir.clone());
        println!(
            "  data folder   {} ({})",
            data.display(),
            count(report.restored, "worker restored", "workers restored")
        );
        println!(
            "  workers       at most {}, turn timeout {}s, stop grace {}s",
            config.workers.max_workers,
            config.workers.turn_timeout.as_secs(),
            config.workers.stop_grace.as_secs_f64()
        );
        println!(
            "  threads       {} HTTP, {} WebSocket writers; up to {} connections ({} descriptors)",
            config.threads, config.writer_threads, config.sockets.max_connections, report.fd_limit
        );
        println!("  origins       {origins}");
        println!("  ui            {}", app.web.static_files.source());
        let registry = &app.hub.registry;
        for line in registry
            .settings
            .describe(registry.kinds().map(|a| a.kind()))
        {
            println!("  ai            {line}");
        }
        let page = format!("http://{}/", host_port(&config.host, self.addr.port()));
        match &report.token_source {
            TokenSource::Off => println!("  auth          off (--no-auth, loopback only)"),
            TokenSource::Generated(path) => println!(
                "  auth          token required (generated, kept in {})",
                absolute(path).display()
            ),
            TokenSource::Kept(path) => {
                println!(
                    "  auth          token required (kept in {})",
                    absolute(path).display()
                )
            }
            TokenSource::Given | TokenSource::File => {
                let tokens: Vec<String> = app
                    .web
                    .auth
                    .describe()
                    .iter()
                    .map(|(name, role)| format!("{name} ({role})"))
                    .collect();
                println!("  auth          tokens: {}", tokens.join(", "))
            }
        }
        if let Some(token) = app.web.auth.shown() {
            println!("  open          {page}?token={token}");
        }
        println!(
            "workerhub listening on http://{}",
            host_port(&config.host, self.addr.port())
        );
        let _ = std::io::stdout().flush();
    }

    /// Prints, once every kind's program has been probed (in parallel, each within a
    /// few seconds), what this server can run: each kind with its version, or why it
    /// cannot, and a warning when the default kind cannot run. Runs after the banner
    /// so probing never delays the start.
    pub fn print_kinds(&self) {
        let app = self.app.clone();
        let default_kind = self.report.config.workers.default_kind.clone();
        let spawned = std::thread::Builder::new()
            .name("kinds-probe".into())
            .spawn(move || {
                let kinds = app.hub.registry.describe();
                let shown: Vec<String> = kinds
                    .iter()
                    .map(|k| match (&k.version, k.usable) {
                        (Some(version), true) => format!("{} {version}", k.name),
                        (None, true) => k.name.clone(),
                        (_, false) => format!(
                            "{} (unavailable: {})",
                            k.name,
                            k.reason.as_deref().unwrap_or("unknown")
                        ),
                    })
                    .collect();
                println!("  kinds         {}", shown.join("; "));
                let keys: Vec<String> = kinds
                    .iter()
                    .filter(|k| k.usable && k.credentials.state != KeyState::NotNeeded)
                    .map(|k| match k.credentials.state {
                        KeyState::Found => format!("{}: {}", k.name, k.credentials.detail),
                        state => format!(
                            "{}: {} ({}; {})",
                            k.name,
                            state.as_str(),
                            k.credentials.detail,
                            k.credentials.hint.as_deref().unwrap_or("")
                        ),
                    })
                    .collect();
                if !keys.is_empty() {
                    println!("  credentials   {}", keys.join("; "));
                }
                if let Some(default) = kinds.iter().find(|k| k.name == default_kind)
                    && !default.usable
                {
                    println!(
                        "  warning       the default kind `{}` (--default-ai-cli) cannot run here: workers created without `ai_cli_type` will be refused",
                        default.name
                    );
                }
                let _ = std::io::stdout().flush();
            });
        if let Err(err) = spawned {
            log::warn!("could not probe the kinds: {err}");
        }
    }

    /// Stops accepting, closes every WebSocket with 1001, stops every worker and one-off
    /// command (SIGTERM, then SIGKILL after the grace), makes history durable, and joins
    /// every thread it started.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.http.is_none() && self.ticker.is_none() {
            return;
        }
        log::info!("shutting down");
        if let Some(path) = self.announced.take() {
            crate::discovery::withdraw(&path);
        }
        // Stop taking requests first, and close the listener: a client that connects
        // while the server stops is refused at once rather than left waiting.
        if let Some(http) = self.http.take() {
            for _ in 0..self.pool.len() {
                http.unblock();
            }
            for handle in self.pool.drain(..) {
                let _ = handle.join();
            }
        }
        let app = &self.app;
        let sockets = &app.sockets;
        for conn in sockets.registry.all() {
            conn.close(1001, "server shutting down");
        }
        // Workers and one-off commands stop at the same time, each within the grace.
        std::thread::scope(|scope| {
            scope.spawn(|| app.commands.stop_all());
            app.hub.stop_all();
        });
        // The ssh connections kept open for the hosts end with the server.
        app.hosts.close();
        // Give close frames a moment to go out, then cut whatever is left.
        let deadline = Instant::now() + Duration::from_secs(1);
        while sockets
            .registry
            .all()
            .iter()
            .any(|c| c.is_open() || c.queued_bytes() > 0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for conn in sockets.registry.all() {
            conn.shutdown_now();
        }
        sockets.writers.stop();
        if let Some((stop, ticker)) = self.ticker.take() {
            let _ = stop.send(());
            let _ = ticker.join();
        }
        self.timer.stop();
        if let Some(broadcast) = self.broadcast.take() {
            // Every process is reaped by now: what it printed last is handed on first.
            broadcast.join(Duration::from_secs(2));
        }
        log::info!("stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// "1 worker restored", "2 workers restored".
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `path` from the root, for messages (as far as it can be resolved).
fn absolute(path: &std::path::Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::env::current_dir().map(|d| d.join(path)))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `HOST:PORT` as a URL has it (an IPv6 address in brackets).
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Binds the listener with the HTTP limits.
fn listen(config: &ServerConfig) -> Result<(tiny_http::Server, SocketAddr), String> {
    let where_ = format!("{}:{}", config.host, config.port);
    let listener =
        std::net::TcpListener::bind((config.host.as_str(), config.port)).map_err(|err| {
            if err.kind() != std::io::ErrorKind::AddrInUse {
                return format!("cannot listen on {where_}: {err}");
            }
            let who = match crate::discovery::find(config.port) {
                Some(other) => format!(
                    "another workerhub (pid {}, data folder {}) is running there",
                    other.pid,
                    other.data_dir.display()
                ),
                None => "another program is listening there".to_string(),
            };
            format!(
                "cannot listen on {where_}: the port is taken ({who}). Stop it, or choose another port with --port PORT (--port 0 picks a free one)"
            )
        })?;
    // Accepted sockets inherit these, so a client that opens a connection and sends
    // nothing (or half a request) cannot hold tiny_http's thread for longer.
    sys::set_socket_timeouts(&listener, config.http.timeout)
        .map_err(|err| format!("cannot set the listener's timeouts: {err}"))?;
    let limits = tiny_http::ConnectionLimits {
        max_head_bytes: config.http.max_head_bytes,
        head_timeout: Some(config.http.timeout),
        max_connections: config.http.max_connections,
        max_connections_per_ip: config.http.max_connections_per_ip,
    };
    let server = tiny_http::Server::from_listener_with_limits(listener, None, limits)
        .map_err(|err| format!("cannot listen on {where_}: {err}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the listener has no IP address")?;
    Ok((server, addr))
}

/// Once a second: make history durable (it is written to the page cache before anyone
/// sees it, and fdatasync'd here), let stopped workers drop their memory and
/// descriptors, give freed memory back; every `status_every`, push `system:status`.
fn start_ticker(
    app: Arc<App>,
    status_every: Option<Duration>,
) -> Result<(Sender<()>, JoinHandle<()>), String> {
    let (stop, stopped) = bounded::<()>(1);
    let thread = std::thread::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            let mut last_status = Instant::now();
            let mut ticks: u64 = 0;
            loop {
                match stopped.recv_timeout(Duration::from_secs(1)) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                for worker in app.hub.list() {
                    worker.feed.sync();
                    if !worker.status().is_live() {
                        worker.feed.release_memory();
                    }
                }
                ticks += 1;
                if ticks.is_multiple_of(10) {
                    sys::trim_heap();
                }
                if let Some(every) = status_every
                    && last_status.elapsed() >= every
                {
                    last_status = Instant::now();
                    let status = crate::status::status_json(&app);
                    app.dashboards.push(
                        crate::protocol::ServerType::SystemStatus,
                        status,
                        None,
                        Audience::Everyone,
                    );
                }
            }
        })
        .map_err(|err| format!("cannot start the ticker thread: {err}"))?;
    Ok((stop, thread))
}

/// The project roots, resolved (symlinks and all) so later checks compare real paths.
fn canonical_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    roots
        .iter()
        .map(|r| {
            r.canonicalize()
                .map_err(|e| format!("--project-root {}: {e}", r.display()))
        })
        .collect()
}

/// Runs the server until Ctrl-C or SIGTERM (a second one exits at once).
pub fn serve(config: ServerConfig) -> Result<(), String> {
    let server = Server::start(config)?;
    server.print_banner();
    server.print_kinds();
    let (signal_tx, signal_rx) = bounded::<()>(1);
    let signals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            eprintln!("workerhub: second interrupt, exiting at once");
            std::process::exit(130);
        }
        let _ = signal_tx.try_send(());
    })
    .map_err(|err| format!("cannot install the signal handler: {err}"))?;
    let _ = signal_rx.recv();
    server.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use clap::Parser;
    use serde_json::{Value, json};

    use super::Server;
    use crate::client::Client;
    use crate::config::Cli;

    /// `scratch`, a kind that exists only in the unit tests (`adapters/scratch.rs`, one
    /// line in the registry), runs end to end: nothing else had to learn of it.
    #[test]
    fn a_kind_added_in_one_file_runs_end_to_end() {
        let data = std::env::temp_dir().join(format!("wh-scratch-{}", std::process::id()));
        let cli = Cli::try_parse_from([
            "workerhub",
            "--port",
            "0",
            "--no-auth",
            "--data-dir",
            data.to_str().expect("utf-8 temp dir"),
        ])
        .expect("arguments");
        let server = Server::start(cli.serve.config().expect("config")).expect("server");
        let client = Client::new(
            &format!("http://{}", server.addr()),
            crate::client::TokenLookup::default(),
        );

        // Listed, with its label and the options every AI kind has.
        let kinds = client.get("/api/ai-clis").expect("ai-clis");
        let scratch = kinds["ai_clis"]
            .as_array()
            .and_then(|all| all.iter().find(|k| k["name"] == "scratch"))
            .cloned()
            .unwrap_or_else(|| panic!("scratch is not listed: {kinds}"));
        assert_eq!(scratch["label"], "Scratch (tests only)");
        assert_eq!(scratch["usable"], true, "{scratch}");
        assert!(
            scratch["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["name"] == "model"))
        );

        // A worker of the kind runs a turn; its output is typed events.
        let worker = client
            .post(
                "/api/workers",
                &json!({"ai_cli_type": "scratch", "project_path": std::env::temp_dir()}),
            )
            .expect("create");
        let id = worker["id"].as_str().expect("id").to_string();
        client
            .post(
                &format!("/api/workers/{id}/messages"),
                &json!({"content": "hello; $(touch /tmp/never)"}),
            )
            .expect("send");
        let deadline = Instant::now() + Duration::from_secs(30);
        let events = loop {
            let page = client
                .get(&format!("/api/workers/{id}/events?since=0"))
                .expect("events");
            let events = page["events"].as_array().cloned().unwrap_or_default();
            let ended = events
                .iter()
                .any(|e| e["type"] == "status" && e["last_turn"]["outcome"].is_string());
            if ended || Instant::now() >= deadline {
                break events;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text: Vec<&Value> = events
            .iter()
            .filter(|e| e["content"]["kind"] == "text")
            .collect();
        assert_eq!(text.len(), 1, "{events:?}");
        assert_eq!(text[0]["content"]["text"], "hello; $(touch /tmp/never)");
        let last_turn = events
            .iter()
            .rev()
            .find_map(|e| e["last_turn"].as_object())
            .expect("the turn ended");
        assert_eq!(last_turn["outcome"], "completed");

        server.stop();
        let _ = std::fs::remove_dir_all(&data);
    }
}
