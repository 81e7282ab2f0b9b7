//! `ferry streams ...`: the operator's CLI, a client of the local API. Tables for people,
//! `--json` for scripts (one JSON document, or one JSON object per line for `read`).

use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{json, Value};

#[derive(Args)]
pub struct StreamsArgs {
    /// The local API's address.
    #[arg(
        long,
        env = "FERRY_URL",
        default_value = "http://127.0.0.1:8470",
        global = true
    )]
    url: String,
    /// Bearer token, when the API requires one.
    #[arg(long, env = "FERRY_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: StreamsCommand,
}

#[derive(Subcommand)]
enum StreamsCommand {
    /// List streams with their storage status.
    List,
    /// Show a stream's definition and status.
    Describe { name: String },
    /// Create a stream.
    Create {
        name: String,
        #[arg(long, default_value = "file", value_parser = ["file", "memory"])]
        persistence: String,
        #[arg(long)]
        max_size_bytes: Option<u64>,
        #[arg(long)]
        segment_size_bytes: Option<u64>,
        #[arg(long)]
        time_to_live_ms: Option<u64>,
        #[arg(long, value_parser = ["reject_new_data", "overwrite_oldest_data"])]
        strategy_on_full: Option<String>,
        #[arg(long)]
        flush_on_write: bool,
    },
    /// Delete a stream and its data.
    Delete { name: String },
    /// Append records: each --data value is one record; without --data, each stdin line is one.
    Append {
        name: String,
        #[arg(long)]
        data: Vec<String>,
        /// Metadata for every record, as key=value.
        #[arg(long = "meta", value_parser = parse_kv)]
        meta: Vec<(String, String)>,
    },
    /// Read records from a sequence number (default: the oldest available).
    Read {
        name: String,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long, default_value_t = 100)]
        max_count: usize,
        /// Wait this long for a first record.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
        /// Keep printing records as they arrive.
        #[arg(long)]
        follow: bool,
    },
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
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
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
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("http_error");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or(""));
        bail!("{code}: {message} (HTTP {})", status.as_u16())
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        Ok(self.send(req).await?.json().await?)
    }
}

fn path_name(name: &str) -> String {
    // Stream names allow spaces and commas; everything else allowed is URL-safe.
    name.replace(' ', "%20").replace(',', "%2C")
}

pub async fn run(args: StreamsArgs) -> Result<()> {
    let c = Client {
        http: reqwest::Client::new(),
        url: args.url,
        token: args.token,
    };
    let out = &mut std::io::stdout().lock();
    use reqwest::Method;
    match args.command {
        StreamsCommand::List => {
            let v = c.json(c.request(Method::GET, "/v1/streams")).await?;
            if args.json {
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<11} {:>12} {:>14} {:>12} {:>12}",
                    "NAME", "PERSISTENCE", "RECORDS", "BYTES", "FIRST", "LAST"
                )?;
                for s in v["streams"].as_array().into_iter().flatten() {
                    let st = &s["status"];
                    writeln!(
                        out,
                        "{:<24} {:<11} {:>12} {:>14} {:>12} {:>12}",
                        s["name"].as_str().unwrap_or(""),
                        s["definition"]["persistence"].as_str().unwrap_or(""),
                        st["records"].to_string(),
                        st["total_bytes"].to_string(),
                        st["first_sequence_number"].to_string(),
                        if st["last_sequence_number"].is_null() {
                            "-".to_string()
                        } else {
                            st["last_sequence_number"].to_string()
                        }
                    )?;
                }
            }
        }
        StreamsCommand::Describe { name } => {
            let v = c
                .json(c.request(Method::GET, &format!("/v1/streams/{}", path_name(&name))))
                .await?;
            print_description(out, &v, args.json)?;
        }
        StreamsCommand::Create {
            name,
            persistence,
            max_size_bytes,
            segment_size_bytes,
            time_to_live_ms,
            strategy_on_full,
            flush_on_write,
        } => {
            let mut def =
                json!({"name": name, "persistence": persistence, "flush_on_write": flush_on_write});
            if let Some(v) = max_size_bytes {
                def["max_size_bytes"] = json!(v);
            }
            if let Some(v) = segment_size_bytes {
                def["segment_size_bytes"] = json!(v);
            }
            if let Some(v) = time_to_live_ms {
                def["time_to_live_ms"] = json!(v);
            }
            if let Some(v) = strategy_on_full {
                def["strategy_on_full"] = json!(v);
            }
            let v = c
                .json(c.request(Method::POST, "/v1/streams").json(&def))
                .await?;
            print_description(out, &v, args.json)?;
        }
        StreamsCommand::Delete { name } => {
            c.send(c.request(Method::DELETE, &format!("/v1/streams/{}", path_name(&name))))
                .await?;
            if args.json {
                writeln!(out, "{}", json!({"deleted": name}))?;
            } else {
                writeln!(out, "deleted stream {name}")?;
            }
        }
        StreamsCommand::Append { name, data, meta } => {
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
            let metadata: serde_json::Map<String, Value> =
                meta.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let records: Vec<Value> = payloads
                .iter()
                .map(|p| json!({"payload": p, "metadata": metadata}))
                .collect();
            let v = c
                .json(
                    c.request(
                        Method::POST,
                        &format!("/v1/streams/{}/records", path_name(&name)),
                    )
                    .json(&json!({"records": records})),
                )
                .await?;
            if args.json {
                writeln!(out, "{v}")?;
            } else {
                let first = v["first_sequence_number"].as_u64().unwrap_or(0);
                let count = v["count"].as_u64().unwrap_or(0);
                writeln!(
                    out,
                    "appended {count} record(s): sequence numbers {first}..={}",
                    first + count.saturating_sub(1)
                )?;
            }
        }
        StreamsCommand::Read {
            name,
            from,
            max_count,
            wait_ms,
            follow,
        } => {
            let mut q = vec![
                ("max_count", max_count.to_string()),
                ("wait_ms", wait_ms.to_string()),
            ];
            if let Some(f) = from {
                q.push(("from", f.to_string()));
            }
            let path = format!("/v1/streams/{}/records", path_name(&name));
            if follow {
                q.push(("follow", "true".into()));
                let resp = c.send(c.request(Method::GET, &path).query(&q)).await?;
                let mut body = resp.bytes_stream();
                let mut pending = Vec::new();
                while let Some(chunk) = body.next().await {
                    pending.extend_from_slice(&chunk?);
                    while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=i).collect();
                        let v: Value = serde_json::from_slice(&line)?;
                        if let Some(e) = v.get("error") {
                            bail!(
                                "{}: {}",
                                e["code"].as_str().unwrap_or(""),
                                e["message"].as_str().unwrap_or("")
                            );
                        }
                        print_record(out, &v, args.json)?;
                        out.flush()?;
                    }
                }
            } else {
                let v = c.json(c.request(Method::GET, &path).query(&q)).await?;
                for r in v["records"].as_array().into_iter().flatten() {
                    print_record(out, r, args.json)?;
                }
            }
        }
    }
    Ok(())
}

fn print_record(out: &mut impl Write, r: &Value, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{r}")?;
        return Ok(());
    }
    let payload = match r["payload"].as_str() {
        Some(text) => text.to_string(),
        None => format!("base64:{}", r["payload_base64"].as_str().unwrap_or("")),
    };
    let topic = r["metadata"]["topic"].as_str().unwrap_or("-");
    writeln!(
        out,
        "{:>10}  {:>13}  {:<24}  {payload}",
        r["sequence_number"].to_string(),
        r["timestamp_ms"].to_string(),
        topic
    )?;
    Ok(())
}

fn print_description(out: &mut impl Write, v: &Value, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let d = &v["definition"];
    let s = &v["status"];
    for (k, val) in [
        ("name", &v["name"]),
        ("persistence", &d["persistence"]),
        ("max_size_bytes", &d["max_size_bytes"]),
        ("segment_size_bytes", &d["segment_size_bytes"]),
        ("time_to_live_ms", &d["time_to_live_ms"]),
        ("strategy_on_full", &d["strategy_on_full"]),
        ("flush_on_write", &d["flush_on_write"]),
        (
            "exports",
            &json!(d["exports"].as_array().map_or(0, Vec::len)),
        ),
        ("first_sequence_number", &s["first_sequence_number"]),
        ("last_sequence_number", &s["last_sequence_number"]),
        ("records", &s["records"]),
        ("total_bytes", &s["total_bytes"]),
        ("segments", &s["segments"]),
        (
            "oldest_record_timestamp_ms",
            &s["oldest_record_timestamp_ms"],
        ),
    ] {
        let shown = match val {
            Value::String(t) => t.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        writeln!(out, "{k:<34} {shown}")?;
    }
    for e in v["exports"].as_array().into_iter().flatten() {
        let dropped = e["records_dropped_by_retention"].as_u64().unwrap_or(0)
            + e["records_skipped"].as_u64().unwrap_or(0);
        let error = e["last_error"]
            .as_str()
            .map_or(String::new(), |err| format!(", last error: {err}"));
        writeln!(
            out,
            "{:<34} {} ({}, priority {}): {}, checkpoint {}, lag {} records ({} bytes), sent {}, retries {}, dropped {dropped}{error}",
            "export",
            e["identifier"].as_str().unwrap_or(""),
            e["kind"].as_str().unwrap_or(""),
            e["priority"],
            e["state"].as_str().unwrap_or(""),
            e["checkpoint"],
            e["lag_records"],
            e["lag_bytes"],
            e["records_sent"],
            e["retries"],
        )?;
    }
    for (k, val) in s["counters"].as_object().into_iter().flatten() {
        writeln!(out, "{:<34} {val}", format!("counters.{k}"))?;
    }
    Ok(())
}
