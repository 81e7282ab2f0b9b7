//! `ferry streams ...`: the operator's CLI, a client of the local API. Tables for people,
//! `--json` for scripts (one JSON document, or one JSON object per line for `read`).

use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_stream_manager::{Persistence, StrategyOnFull, StreamDefinition};
use futures_util::StreamExt;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod exports;
mod print;

pub use exports::{run as run_exports, ExportsArgs};

use crate::service::views::{
    AppendRequest, Appended, ErrorAnswer, FollowLine, RecordIn, RecordsRead, StreamList,
    StreamPatch, StreamView,
};
use print::{persistence_name, print_description, print_record};

/// How the CLI reaches the daemon; shared by `ferry streams` and `ferry exports`.
#[derive(Args)]
pub struct ConnectionArgs {
    /// The local API's address (default: from --config, else http://127.0.0.1:8470).
    #[arg(long, env = "FERRY_URL", global = true)]
    url: Option<String>,
    /// Bearer token, when the API requires one (default: from --config).
    #[arg(long, env = "FERRY_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The daemon's configuration file: its api.listen and token are used.
    #[arg(long, env = "FERRY_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
}

const DEFAULT_URL: &str = "http://127.0.0.1:8470";

#[derive(Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: StreamsCommand,
}

/// The definition fields `ferry streams create` takes.
#[derive(Args)]
struct CreateArgs {
    /// The stream's name: 1-255 ASCII letters, digits, space, '_', '-', ',' and '.'.
    name: String,
    /// Where records live: on disk (`file`) or only in memory (`memory`).
    #[arg(long, default_value = "file", value_parser = parse_persistence)]
    persistence: Persistence,
    /// Most bytes the stream holds (default 256 MiB); what happens then is --strategy-on-full.
    #[arg(long)]
    max_size_bytes: Option<u64>,
    /// Size of one segment file (default 16 MiB, or a quarter of a smaller stream).
    #[arg(long)]
    segment_size_bytes: Option<u64>,
    /// Remove records older than this many milliseconds (default: keep them).
    #[arg(long)]
    time_to_live_ms: Option<u64>,
    /// When full: refuse new records (`reject_new_data`, default) or drop the oldest
    /// (`overwrite_oldest_data`).
    #[arg(long, value_parser = parse_strategy)]
    strategy_on_full: Option<StrategyOnFull>,
    /// Fsync every append on its own instead of sharing fsyncs (group commit).
    #[arg(long)]
    flush_on_write: bool,
}

/// What `ferry streams update` may change; what is not given stays as it is.
#[derive(Args)]
struct UpdateArgs {
    /// The stream to change.
    name: String,
    /// New size limit in bytes.
    #[arg(long)]
    max_size_bytes: Option<u64>,
    /// New segment size in bytes (applies to segments opened from now on).
    #[arg(long)]
    segment_size_bytes: Option<u64>,
    /// New time to live in milliseconds.
    #[arg(long, conflicts_with = "no_time_to_live")]
    time_to_live_ms: Option<u64>,
    /// Keep records until size retention removes them (no time to live).
    #[arg(long)]
    no_time_to_live: bool,
    /// `reject_new_data` or `overwrite_oldest_data`.
    #[arg(long, value_parser = parse_strategy)]
    strategy_on_full: Option<StrategyOnFull>,
    /// `true`: fsync every append on its own; `false`: group commit.
    #[arg(long)]
    flush_on_write: Option<bool>,
}

#[derive(Args)]
struct ReadArgs {
    /// The stream to read.
    name: String,
    /// First sequence number to read (default: the oldest still available).
    #[arg(long)]
    from: Option<u64>,
    /// Most records to print (at most 10,000 per request).
    #[arg(long, default_value_t = 100)]
    max_count: usize,
    /// Wait this long for a first record.
    #[arg(long, default_value_t = 0)]
    wait_ms: u64,
    /// Keep printing records as they arrive, until Ctrl-C.
    #[arg(long)]
    follow: bool,
}

#[derive(Subcommand)]
enum StreamsCommand {
    /// List streams with their storage status.
    List,
    /// Show a stream's definition and status.
    Describe {
        /// The stream to show.
        name: String,
    },
    /// Create a stream.
    Create(CreateArgs),
    /// Change some of a stream's settings; the others stay as they are.
    Update(UpdateArgs),
    /// Delete a stream and its data.
    Delete {
        /// The stream to delete.
        name: String,
    },
    /// Append records: each --data value is one record; without --data, each stdin line is one.
    Append {
        /// The stream to append to.
        name: String,
        /// A record's payload (text); repeat for several records.
        #[arg(long)]
        data: Vec<String>,
        /// Metadata for every record, as key=value.
        #[arg(long = "meta", value_parser = parse_kv)]
        meta: Vec<(String, String)>,
    },
    /// Read records from a sequence number (default: the oldest available).
    Read(ReadArgs),
}

fn parse_persistence(s: &str) -> Result<Persistence, String> {
    match s {
        "file" => Ok(Persistence::File),
        "memory" => Ok(Persistence::Memory),
        _ => Err(format!("{s:?} is not file or memory")),
    }
}

fn parse_strategy(s: &str) -> Result<StrategyOnFull, String> {
    match s {
        "reject_new_data" => Ok(StrategyOnFull::RejectNewData),
        "overwrite_oldest_data" => Ok(StrategyOnFull::OverwriteOldestData),
        _ => Err(format!(
            "{s:?} is not reject_new_data or overwrite_oldest_data"
        )),
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    json: bool,
}

impl Client {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach Ferry's API at {}", self.url))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        match resp.json::<ErrorAnswer>().await {
            Ok(a) => bail!(
                "{}: {} (HTTP {})",
                a.error.code,
                a.error.message,
                status.as_u16()
            ),
            Err(_) => bail!(
                "http_error: {} (HTTP {})",
                status.canonical_reason().unwrap_or(""),
                status.as_u16()
            ),
        }
    }

    /// Sends and parses the answer as the service's typed view.
    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = self.send(req).await?;
        resp.json()
            .await
            .context("Ferry's API answered something this CLI cannot read")
    }
}

fn stream_path(name: &str) -> String {
    // Stream names allow spaces and commas; everything else allowed is URL-safe.
    format!(
        "/v1/streams/{}",
        name.replace(' ', "%20").replace(',', "%2C")
    )
}

impl Client {
    /// `--url` and `--token` win; what they leave open comes from the configuration file.
    fn new(c: ConnectionArgs) -> Result<Client> {
        let (mut url, mut token) = (c.url, c.token);
        if let Some(path) = &c.config {
            let env: std::collections::HashMap<String, String> = std::env::vars().collect();
            let cfg = crate::config::AgentConfig::load(Some(path), &env)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            if url.is_none() {
                let l = cfg.api.listen;
                // A daemon listening on every address is reached on loopback.
                let ip = match l.ip() {
                    std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                        std::net::Ipv4Addr::LOCALHOST.into()
                    }
                    std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    }
                    ip => ip,
                };
                url = Some(format!(
                    "http://{}",
                    std::net::SocketAddr::new(ip, l.port())
                ));
            }
            if token.is_none() {
                token = cfg
                    .api
                    .resolved_token()
                    .map_err(|e| anyhow::anyhow!("api.token: {e}"))?;
            }
        }
        Ok(Client {
            http: reqwest::Client::new(),
            url: url.unwrap_or_else(|| DEFAULT_URL.to_string()),
            token,
            json: c.json,
        })
    }
}

pub async fn run(args: StreamsArgs) -> Result<()> {
    let c = Client::new(args.connection)?;
    let out = &mut std::io::stdout().lock();
    match args.command {
        StreamsCommand::List => list(&c, out).await,
        StreamsCommand::Describe { name } => {
            let v: StreamView = c.call(c.request(Method::GET, &stream_path(&name))).await?;
            print_description(out, &v, c.json)
        }
        StreamsCommand::Create(a) => create(&c, out, a).await,
        StreamsCommand::Update(a) => update(&c, out, a).await,
        StreamsCommand::Delete { name } => {
            c.send(c.request(Method::DELETE, &stream_path(&name)))
                .await?;
            if c.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&Deleted { deleted: name })?
                )?;
            } else {
                writeln!(out, "deleted stream {name}")?;
            }
            Ok(())
        }
        StreamsCommand::Append { name, data, meta } => append(&c, out, &name, data, meta).await,
        StreamsCommand::Read(a) => read(&c, out, a).await,
    }
}

/// `delete --json`'s answer.
#[derive(Serialize)]
struct Deleted {
    deleted: String,
}

async fn list(c: &Client, out: &mut impl Write) -> Result<()> {
    let v: StreamList = c.call(c.request(Method::GET, "/v1/streams")).await?;
    if c.json {
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<11} {:>12} {:>14} {:>12} {:>12}",
        "NAME", "PERSISTENCE", "RECORDS", "BYTES", "FIRST", "LAST"
    )?;
    for s in &v.streams {
        let st = &s.status;
        writeln!(
            out,
            "{:<24} {:<11} {:>12} {:>14} {:>12} {:>12}",
            s.name,
            persistence_name(s.definition.persistence),
            st.records,
            st.total_bytes,
            st.first_sequence_number,
            st.last_sequence_number
                .map_or_else(|| "-".to_string(), |n| n.to_string())
        )?;
    }
    Ok(())
}

async fn create(c: &Client, out: &mut impl Write, a: CreateArgs) -> Result<()> {
    let mut def = StreamDefinition::new(a.name);
    def.persistence = a.persistence;
    def.flush_on_write = a.flush_on_write;
    def.time_to_live_ms = a.time_to_live_ms;
    if let Some(v) = a.max_size_bytes {
        def.max_size_bytes = v;
    }
    if let Some(v) = a.segment_size_bytes {
        def.segment_size_bytes = v;
    }
    if let Some(v) = a.strategy_on_full {
        def.strategy_on_full = v;
    }
    let v: StreamView = c
        .call(c.request(Method::POST, "/v1/streams").json(&def))
        .await?;
    print_description(out, &v, c.json)
}

async fn update(c: &Client, out: &mut impl Write, a: UpdateArgs) -> Result<()> {
    let patch = StreamPatch {
        max_size_bytes: a.max_size_bytes,
        segment_size_bytes: a.segment_size_bytes,
        time_to_live_ms: if a.no_time_to_live {
            Some(None)
        } else {
            a.time_to_live_ms.map(Some)
        },
        strategy_on_full: a.strategy_on_full,
        flush_on_write: a.flush_on_write,
        ..StreamPatch::default()
    };
    let v: StreamView = c
        .call(c.request(Method::PATCH, &stream_path(&a.name)).json(&patch))
        .await?;
    print_description(out, &v, c.json)
}

async fn append(
    c: &Client,
    out: &mut impl Write,
    name: &str,
    data: Vec<String>,
    meta: Vec<(String, String)>,
) -> Result<()> {
    let payloads: Vec<String> = if data.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()?
    } else {
        data
    };
    if payloads.is_empty() {
        bail!("nothing to append: give --data or lines on stdin");
    }
    let metadata: std::collections::BTreeMap<String, String> = meta.into_iter().collect();
    let request = AppendRequest {
        records: payloads
            .into_iter()
            .map(|p| RecordIn {
                payload: Some(p),
                payload_base64: None,
                metadata: metadata.clone(),
            })
            .collect(),
    };
    let path = format!("{}/records", stream_path(name));
    let v: Appended = c
        .call(c.request(Method::POST, &path).json(&request))
        .await?;
    if c.json {
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else if v.count == 1 {
        writeln!(
            out,
            "appended 1 record: sequence number {}",
            v.first_sequence_number
        )?;
    } else {
        writeln!(
            out,
            "appended {} records: sequence numbers {} to {}",
            v.count,
            v.first_sequence_number,
            v.first_sequence_number + v.count.saturating_sub(1)
        )?;
    }
    Ok(())
}

async fn read(c: &Client, out: &mut impl Write, a: ReadArgs) -> Result<()> {
    let mut q = vec![
        ("max_count", a.max_count.to_string()),
        ("wait_ms", a.wait_ms.to_string()),
    ];
    if let Some(f) = a.from {
        q.push(("from", f.to_string()));
    }
    let path = format!("{}/records", stream_path(&a.name));
    if !a.follow {
        let v: RecordsRead = c.call(c.request(Method::GET, &path).query(&q)).await?;
        for r in &v.records {
            print_record(out, r, c.json)?;
        }
        return Ok(());
    }
    q.push(("follow", "true".into()));
    let resp = c.send(c.request(Method::GET, &path).query(&q)).await?;
    let mut body = resp.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk?);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            match serde_json::from_slice::<FollowLine>(&line)? {
                FollowLine::Error(a) => bail!("{}: {}", a.error.code, a.error.message),
                FollowLine::Record(r) => print_record(out, &r, c.json)?,
            }
            out.flush()?;
        }
    }
    bail!("the daemon ended the follow (it is stopping, or the connection was lost)")
}
