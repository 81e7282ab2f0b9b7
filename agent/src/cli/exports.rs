//! `ferry exports ...`: pause, resume, reset or skip one export of a stream through the local
//! API, and show the stream's exports afterwards.

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;

use super::print::print_description;
use super::{stream_path, Client, ConnectionArgs};
use crate::service::views::StreamView;
use crate::service::ExportControl;

#[derive(Args)]
pub struct ExportsArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: ExportsCommand,
}

/// Names one export.
#[derive(Args)]
struct Target {
    /// The stream that carries the export.
    stream: String,
    /// The export's identifier.
    export: String,
}

#[derive(Subcommand)]
enum ExportsCommand {
    /// Stop sending (stays paused across restarts until resumed).
    Pause(Target),
    /// Send again: after a pause, or after a permanent error paused the export.
    Resume(Target),
    /// Go on from a sequence number (older records are sent again, newer ones skipped).
    Reset {
        #[command(flatten)]
        target: Target,
        /// The sequence number to send next.
        #[arg(long)]
        to: u64,
    },
    /// Skip records from the checkpoint on (e.g. a batch the sink refuses for good).
    Skip {
        #[command(flatten)]
        target: Target,
        /// How many records to skip.
        #[arg(long)]
        records: u64,
    },
}

pub async fn run(args: ExportsArgs) -> Result<()> {
    let c = Client::new(args.connection)?;
    let (target, action) = match args.command {
        ExportsCommand::Pause(t) => (t, ExportControl::Pause),
        ExportsCommand::Resume(t) => (t, ExportControl::Resume),
        ExportsCommand::Reset { target, to } => (target, ExportControl::Reset { to }),
        ExportsCommand::Skip { target, records } => (target, ExportControl::Skip { records }),
    };
    let path = format!(
        "{}/exports/{}",
        stream_path(&target.stream),
        target.export.replace(' ', "%20").replace(',', "%2C")
    );
    let v: StreamView = c.call(c.request(Method::POST, &path).json(&action)).await?;
    print_description(&mut std::io::stdout().lock(), &v, c.json)
}
