use std::process::ExitCode;

use clap::Parser;
use workerhub::config::{self, Cli, Command};

fn init_logging(level: &str) {
    env_logger::Builder::new()
        .parse_filters(&std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string()))
        .format_timestamp_millis()
        .init();
}

fn main() -> ExitCode {
    config::load_environment();
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            init_logging(&cli.serve.log);
            workerhub::server::serve(cli.serve)
        }
        Some(Command::Serve(args)) => {
            init_logging(&args.log);
            workerhub::server::serve(args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workerhub: {message}");
            ExitCode::from(1)
        }
    }
}
