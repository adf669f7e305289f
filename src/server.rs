//! Starting and stopping the server: the listener, the thread pool, the broadcast
//! thread, the writer pool, and the orderly shutdown on Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, bounded};

use crate::adapters::Registry;
use crate::config::ServeArgs;
use crate::exec::{CommandLimits, Commands, ExecLimits};
use crate::feed::FeedConfig;
use crate::feed::store::StoreLimits;
use crate::http::auth::{self, Auth, TokenSource};
use crate::http::guard::Origins;
use crate::http::static_files::StaticFiles;
use crate::protocol::clients::{Audience, Clients};
use crate::tasks::Tasks;
use crate::timer::Timer;
use crate::worker::Engine;
use crate::worker::env::ChildEnv;
use crate::worker::hub::{Hub, HubConfig};
use crate::worker::process::{Output, ProcessConfig};
use crate::ws::Listening;
use crate::ws::conn::ConnConfig;
use crate::ws::writer::Writers;
use crate::{http, private_files, sys};

/// Everything a request handler may use.
pub struct App {
    pub hub: Arc<Hub>,
    /// Every `/ws` (agent protocol) connection, for pushes.
    pub clients: Arc<Clients>,
    pub tasks: Arc<Tasks>,
    /// One-off commands.
    pub commands: Arc<Commands>,
    pub auth: Auth,
    pub max_connections_per_ip: usize,
    pub writers: Arc<Writers>,
    pub listening: Listening,
    pub conn_config: ConnConfig,
    pub origins: Origins,
    pub static_files: StaticFiles,
    pub max_body: usize,
    pub max_connections: usize,
    pub started: Instant,
    stopping: AtomicBool,
}

impl App {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, 1e9)).unwrap_or(Duration::ZERO)
}

/// The largest request head (request line and headers) a client may send (431 past it).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Starts the broadcast thread: it receives every child's output and exits, in order,
/// and hands each to its worker, which parses it and publishes the events.
fn start_broadcast() -> std::io::Result<crate::worker::process::OutputTx> {
    // Bounded: when workers print faster than events can be stored, the readers block
    // and the children's pipes fill up, which slows the children down.
    let (tx, rx) = bounded::<Output>(256);
    std::thread::Builder::new()
        .name("broadcast".into())
        .spawn(move || {
            for output in rx {
                // One worker's bad line must not stop everyone's output.
                let process = output.process;
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    output.sink.on_process_event(output.process, output.event);
                }));
                if handled.is_err() {
                    log::error!(
                        "handling output of process {process} panicked; the event was dropped"
                    );
                }
            }
        })?;
    Ok(tx)
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<(), String> {
    let fd_limit = sys::raise_fd_limit();
    if args.no_auth && !auth::is_loopback(&args.host) {
        return Err(format!(
            "refusing --no-auth on {}: without a token anyone who can reach the server can run programs; \
             --no-auth is only allowed on a loopback address",
            args.host
        ));
    }
    if args.no_auth && args.allow_origin.iter().any(|o| o.trim() == "*") {
        return Err(
            "refusing --no-auth with --allow-origin '*': any web page open in a browser on this machine \
             could then run programs here; name the origins you trust, or keep authentication on"
                .to_string(),
        );
    }
    // The data folder holds what agents did and said: private to this user.
    private_files::create_dir(&args.data_dir).map_err(|err| {
        format!(
            "cannot create the data folder {}: {err}",
            args.data_dir.display()
        )
    })?;
    match private_files::secure_tree(&args.data_dir) {
        Ok(0) => {}
        Ok(n) => log::warn!(
            "made {n} files and folders under {} private to this user (they were readable by others)",
            args.data_dir.display()
        ),
        Err(err) => log::warn!(
            "could not check the permissions under {}: {err}",
            args.data_dir.display()
        ),
    }
    let (auth, token_source) = if args.no_auth {
        (Auth::off(), TokenSource::Off)
    } else {
        Auth::load(&args.token, args.tokens.as_deref(), &args.data_dir)?
    };
    let listener = std::net::TcpListener::bind((args.host.as_str(), args.port))
        .map_err(|err| format!("cannot listen on {}:{}: {err}", args.host, args.port))?;
    // Accepted sockets inherit these, so a client that opens a connection and sends
    // nothing (or half a request) cannot hold tiny_http's thread for longer.
    sys::set_socket_timeouts(
        &listener,
        seconds(args.http_timeout).max(Duration::from_millis(100)),
    )
    .map_err(|err| format!("cannot set the listener's timeouts: {err}"))?;
    let limits = tiny_http::ConnectionLimits {
        max_head_bytes: MAX_HEAD_BYTES,
        head_timeout: Some(seconds(args.http_timeout).max(Duration::from_millis(100))),
        max_connections: args.max_http_connections.max(1),
        max_connections_per_ip: args.max_http_connections_per_ip.max(1),
    };
    let server = tiny_http::Server::from_listener_with_limits(listener, None, limits)
        .map_err(|err| format!("cannot listen on {}:{}: {err}", args.host, args.port))?;
    let addr: SocketAddr = server
        .server_addr()
        .to_ip()
        .ok_or("the listener has no IP address")?;
    let workers_dir = args.data_dir.join("workers");
    private_files::create_dir(&workers_dir).map_err(|err| {
        format!(
            "cannot create the data folder {}: {err}",
            workers_dir.display()
        )
    })?;

    let mut registry = Registry::new(args.cli_settings());
    if let Some(path) = &args.config {
        registry.load_config(path)?;
    }
    let registry = Arc::new(registry);
    let child_env = ChildEnv::new(
        std::env::vars_os(),
        &registry.credential_names(),
        &args.pass_env,
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = args.threads.unwrap_or((4 * cores).max(8)).max(1);
    let writer_threads = args.writer_threads.unwrap_or(cores).max(1);
    let timer = Timer::start();
    let writers = Writers::start(writer_threads, timer.clone())
        .map_err(|err| format!("cannot start the writer threads: {err}"))?;
    let engine = Arc::new(Engine {
        output: start_broadcast()
            .map_err(|err| format!("cannot start the broadcast thread: {err}"))?,
        timer,
        process: ProcessConfig {
            max_line: 1 << 20,
            drain_grace: Duration::from_millis(500),
        },
        kill_grace: seconds(args.stop_grace),
        turn_timeout: Duration::from_secs(args.worker_timeout),
        result_grace: Duration::from_secs(2),
        feed: FeedConfig {
            memory_events: args.memory_events,
            limits: StoreLimits {
                segment_bytes: args.history_segment_bytes.max(4096),
                max_bytes: args.history_max_bytes,
            },
        },
        workers_dir,
        registry,
        on_status: Mutex::new(Vec::new()),
        child_env,
        project_roots: canonical_roots(&args.project_root)?,
    });
    let base_dir = match &args.workers_base_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| "/".into()),
    };
    let hub = Arc::new(Hub::new(
        engine.clone(),
        HubConfig {
            max_workers: args.max_workers,
            max_stored_workers: args.max_stored_workers.max(1),
            max_workers_per_token: args.max_workers_per_token.unwrap_or(args.max_workers),
            base_dir: base_dir.clone(),
            default_kind: args.default_ai_cli.clone(),
        },
    ));
    let clients = Arc::new(Clients::default());
    // Dashboards on /ws hear of every agent's status change.
    {
        let clients = clients.clone();
        engine
            .on_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(move |worker, fields| {
                let mut payload = fields.clone();
                payload.insert("worker_id".into(), worker.id.clone().into());
                payload.insert("name".into(), worker.spec.name.clone().into());
                let stopped = fields.get("status").and_then(|s| s.as_str()) == Some("exited");
                let audience = Audience::ReadersOf(worker.owner.as_deref());
                clients.push(
                    "agent:status",
                    serde_json::Value::Object(payload.clone()),
                    Some(&worker.id),
                    audience,
                );
                if stopped {
                    clients.push(
                        "agent:stopped",
                        serde_json::Value::Object(payload),
                        Some(&worker.id),
                        audience,
                    );
                }
            }));
    }
    let restored = hub.restore();
    let tasks = Tasks::open(
        args.data_dir.join("tasks.json"),
        hub.clone(),
        clients.clone(),
        engine.timer.clone(),
    );
    let static_files = StaticFiles::new(args.static_dir.clone());
    let commands = Commands::new(
        engine.clone(),
        base_dir,
        CommandLimits {
            exec: ExecLimits {
                default_timeout: seconds(args.exec_timeout),
                max_timeout: seconds(args.exec_timeout_max),
            },
            max_running: args.max_commands,
            max_per_token: args.max_commands_per_token.unwrap_or(args.max_commands),
            stop_grace: seconds(args.stop_grace),
        },
    );
    let app = Arc::new(App {
        hub,
        clients,
        tasks,
        commands,
        auth,
        max_connections_per_ip: args.max_connections_per_ip,
        writers,
        listening: Listening { addr },
        conn_config: ConnConfig {
            outbox_bytes: args.outbox_bytes,
            stall_timeout: seconds(args.stall_timeout).max(Duration::from_millis(100)),
            max_message_bytes: args.max_message_bytes,
            ping_interval: seconds(args.ping_interval).max(Duration::from_millis(100)),
            pong_timeout: seconds(args.pong_timeout).max(Duration::from_millis(100)),
            close_grace: Duration::from_secs(2),
            // A client closed for being too slow may be stalled: give it time to read
            // up to the close frame (its kernel buffers), so it learns where to resume.
            stall_close_grace: Duration::from_secs(30),
        },
        origins: Origins::new(
            &args.host,
            addr.port(),
            &args.allow_host,
            &args.allow_origin,
        ),
        static_files,
        max_body: args.max_body_bytes,
        max_connections: args.max_connections,
        started: Instant::now(),
        stopping: AtomicBool::new(false),
    });

    print_banner(&args, &app, threads, writer_threads, restored, fd_limit);
    let shown_host = if args.host.contains(':') {
        format!("[{}]", args.host)
    } else {
        args.host.clone()
    };
    let page = format!("http://{shown_host}:{}/", addr.port());
    let tokens: Vec<String> = app
        .auth
        .describe()
        .iter()
        .map(|(name, role)| format!("{name} ({role})"))
        .collect();
    match &token_source {
        TokenSource::Off => println!("  auth          off (--no-auth, loopback only)"),
        TokenSource::Generated(path) => println!(
            "  auth          token required (generated, kept in {})",
            path.display()
        ),
        TokenSource::Kept(path) => {
            println!(
                "  auth          token required (kept in {})",
                path.display()
            )
        }
        TokenSource::Given | TokenSource::File => {
            println!("  auth          tokens: {}", tokens.join(", "))
        }
    }
    if let Some(token) = app.auth.shown() {
        println!("  open          {page}?token={token}");
    }
    println!("workerhub listening on http://{shown_host}:{}", addr.port());
    let _ = std::io::stdout().flush();

    let server = Arc::new(server);
    let mut pool = Vec::new();
    for i in 0..threads {
        let (server, app) = (server.clone(), app.clone());
        let handle = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || {
                loop {
                    match server.recv() {
                        Ok(request) => http::handle(&app, request),
                        Err(_) if app.stopping() => return,
                        Err(err) => {
                            log::error!("accepting requests failed: {err}");
                            return;
                        }
                    }
                }
            })
            .map_err(|err| format!("cannot start HTTP threads: {err}"))?;
        pool.push(handle);
    }

    // Once a second: make history durable (it is written to the page cache before anyone
    // sees it, and fdatasync'd here), and every --status-interval push system:status.
    let (stop_ticker, ticker_stop_rx) = bounded::<()>(1);
    let ticker_app = app.clone();
    let status_every = args.status_interval;
    let ticker = std::thread::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            let mut since_status = 0.0;
            let mut ticks: u64 = 0;
            loop {
                match ticker_stop_rx.recv_timeout(Duration::from_secs(1)) {
                    Err(RecvTimeoutError::Timeout) => {
                        for worker in ticker_app.hub.list() {
                            worker.feed.sync();
                            if !worker.status().is_live() {
                                worker.feed.release_memory();
                            }
                        }
                        since_status += 1.0;
                        ticks += 1;
                        if ticks.is_multiple_of(10) {
                            sys::trim_heap();
                        }
                        if status_every > 0.0 && since_status >= status_every {
                            since_status = 0.0;
                            let status = crate::api::system::status_json(&ticker_app);
                            ticker_app.clients.push(
                                "system:status",
                                status,
                                None,
                                Audience::Everyone,
                            );
                        }
                    }
                    _ => return,
                }
            }
        })
        .map_err(|err| format!("cannot start the ticker thread: {err}"))?;

    let (signal_tx, signal_rx) = bounded::<()>(1);
    let signals = Arc::new(AtomicUsize::new(0));
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) > 0 {
            eprintln!("workerhub: second interrupt, exiting at once");
            std::process::exit(130);
        }
        let _ = signal_tx.try_send(());
    })
    .map_err(|err| format!("cannot install the signal handler: {err}"))?;
    let _ = signal_rx.recv();

    shutdown(&app, &server, pool);
    let _ = stop_ticker.send(());
    let _ = ticker.join();
    Ok(())
}

/// Stops accepting, closes every WebSocket with 1001, stops every worker (SIGTERM, then
/// SIGKILL after the grace period), and makes history durable.
fn shutdown(
    app: &Arc<App>,
    server: &Arc<tiny_http::Server>,
    pool: Vec<std::thread::JoinHandle<()>>,
) {
    log::info!("shutting down");
    app.stopping.store(true, Ordering::SeqCst);
    for _ in 0..pool.len() {
        server.unblock();
    }
    for conn in app.writers.connections() {
        conn.close(1001, "server shutting down");
    }
    // Workers and one-off commands stop at the same time, each within the stop grace.
    std::thread::scope(|scope| {
        scope.spawn(|| app.commands.stop_all());
        app.hub.stop_all();
    });
    // Give close frames a moment to go out, then cut whatever is left.
    let deadline = Instant::now() + Duration::from_secs(1);
    while app
        .writers
        .connections()
        .iter()
        .any(|c| c.is_open() || c.queued_bytes() > 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for conn in app.writers.connections() {
        conn.shutdown_now();
    }
    app.writers.stop();
    for handle in pool {
        let _ = handle.join();
    }
    log::info!("stopped");
}

fn print_banner(
    args: &ServeArgs,
    app: &App,
    threads: usize,
    writers: usize,
    restored: usize,
    fd_limit: u64,
) {
    let origins = if args.allow_origin.is_empty() {
        "own origin only".to_string()
    } else {
        format!("own origin + {}", args.allow_origin.join(", "))
    };
    println!("workerhub {}", env!("CARGO_PKG_VERSION"));
    println!(
        "  data folder   {} ({restored} workers restored)",
        args.data_dir.display()
    );
    println!(
        "  workers       at most {}, turn timeout {}s, stop grace {}s",
        args.max_workers, args.worker_timeout, args.stop_grace
    );
    println!(
        "  threads       {threads} HTTP, {writers} WebSocket writers; up to {} connections ({fd_limit} descriptors)",
        app.max_connections
    );
    println!("  origins       {origins}");
    println!("  ui            {}", app.static_files.source());
    for line in app.hub.registry.settings.describe() {
        println!("  ai            {line}");
    }
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
