//! The `ferry` binary: command line, configuration, logging, then the daemon.

mod allocator;
mod api;
mod apps;
mod broker;
mod cli;
mod config;
mod daemon;
mod exports;
mod greengrass;
mod ingest_log;
mod logging;
mod reload;
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
    /// Pause, resume, reset or skip an export through the running daemon's local API.
    Exports(cli::ExportsArgs),
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
    /// Print the effective configuration (file, FERRY_ variables, defaults), secrets redacted.
    Show {
        /// The configuration file (default: none, built-in defaults and FERRY_ variables).
        #[arg(env = "FERRY_CONFIG")]
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::Streams(args) => client(cli::run(args)),
        Command::Exports(args) => client(cli::run_exports(args)),
        Command::Apps(args) => client(apps::cli::run(args)),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match AgentConfig::load(Some(&file), &env) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({}, {}, {}, embedded broker {})",
                    file.display(),
                    count(cfg.streams.len(), "stream", "streams"),
                    count(cfg.brokers.len(), "broker connection", "broker connections"),
                    count(cfg.routes.len(), "route", "routes"),
                    if cfg.embedded_enabled() { "on" } else { "off" }
                );
                if cfg.api.open_beyond_loopback() {
                    eprintln!("ferry: warning: {}", OPEN_API_WARNING);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferry: invalid configuration: {e}");
                ExitCode::from(2)
            }
        },
        Command::Config {
            command: ConfigCommand::Show { file },
        } => {
            let shown = AgentConfig::load(file.as_deref(), &env)
                .map_err(|e| format!("invalid configuration: {e}"))
                .and_then(|cfg| config::show::render(&cfg, file.as_deref(), &env));
            match shown {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ferry: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config } => {
            let cfg = match AgentConfig::load(config.as_deref(), &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ferry: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            let log_level = match logging::init(&cfg.log) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("ferry: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let source = reload::ConfigSource { file: config, env };
            allocator::tune(); // before the runtime starts its threads
            let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(daemon::run(cfg, source, log_level)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // The log goes to stderr already: one line, not two.
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

const OPEN_API_WARNING: &str = "the local API listens beyond loopback without a token: anyone \
who can reach it can read, write and delete streams; set api.token or api.token_file";

/// "1 route", "2 routes".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Runs a CLI command on a small runtime; errors go to stderr with exit code 1.
fn client(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        // `ferry streams read | head`: the reader went away, which is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
