use std::process::ExitCode;

use clap::Parser;
use workerhub::client::{batch, changes, cli, hosts};
use workerhub::config::{self, Cli, Command};

fn init_logging(level: &str) {
    env_logger::Builder::new()
        .parse_filters(&std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string()))
        .format_timestamp_millis()
        .init();
}

fn serve(args: config::ServeArgs) -> ExitCode {
    init_logging(&args.log);
    match args.config().and_then(workerhub::server::serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workerhub: {message}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    config::load_environment();
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Batch(args)) => batch::run(&args),
        Some(Command::Workers(args)) => cli::run(|| cli::workers(&args)),
        Some(Command::Create(args)) => cli::run(|| cli::create(&args)),
        Some(Command::Rm { worker, client }) => cli::run(|| cli::remove(&client, &worker)),
        Some(Command::Send(args)) => cli::run(|| cli::send(&args)),
        Some(Command::Watch(args)) => cli::run(|| cli::watch(&args)),
        Some(Command::Attach(args)) => cli::run(|| workerhub::client::attach::attach(&args)),
        Some(Command::Approve(args)) => cli::run(|| cli::approve(&args)),
        Some(Command::Exec(args)) => cli::run(|| cli::exec(&args)),
        Some(Command::Tasks { command }) => cli::run(|| cli::tasks(&command)),
        Some(Command::Status(args)) => cli::run(|| cli::status(&args)),
        Some(Command::Token { command }) => cli::run(|| cli::token(&command)),
        Some(Command::Diff(args)) => cli::run(|| changes::diff(&args)),
        Some(Command::Merge(args)) => cli::run(|| changes::merge(&args)),
        Some(Command::Hosts(args)) => cli::run(|| hosts::hosts(&args)),
    }
}
