//! The `ferry` binary: command line, configuration, logging, then the daemon.

mod allocator;
mod api;
mod apps;
mod broker;
mod cli;
mod config;
mod daemon;
mod exports;
mod ingest_log;
mod logging;
mod service;
mod supervisor;
mod systemd;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::AgentConfig;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Ferry edge agent: MQTT into durable local streams, exported to the cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (built-in defaults when no configuration file is given).
    Run {
        /// TOML configuration file.
        #[arg(long, short, env = "FERRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Inspect and change streams through the running daemon's local API.
    Streams(cli::StreamsArgs),
    /// Deploy and inspect container apps (compose files) through the daemon's local API.
    Apps(apps::cli::AppsArgs),
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file (and FERRY_ variables) without starting.
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::Streams(args) => {
            let builder = tokio::runtime::Builder::new_current_thread();
            let Some(runtime) = runtime(builder) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(cli::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ferry: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Apps(args) => {
            let builder = tokio::runtime::Builder::new_current_thread();
            let Some(runtime) = runtime(builder) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(apps::cli::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ferry: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match AgentConfig::load(Some(&file), &env) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} streams, {} broker connections, {} routes, embedded broker {})",
                    file.display(),
                    cfg.streams.len(),
                    cfg.brokers.len(),
                    cfg.routes.len(),
                    if cfg.embedded_enabled() { "on" } else { "off" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferry: invalid configuration: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let cfg = match AgentConfig::load(config.as_deref(), &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ferry: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = logging::init(&cfg.log) {
                eprintln!("ferry: {e:#}");
                return ExitCode::from(2);
            }
            allocator::tune(); // before the runtime starts its threads
            let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(daemon::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("ferry: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            None
        }
    }
}
