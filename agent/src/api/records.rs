//! Record endpoints: append (JSON batch or a raw body) and read (long poll, or follow mode that
//! streams newline-delimited JSON as records arrive).
//!
//! A record in JSON: `{"sequence_number", "timestamp_ms", "metadata": {..}, "payload_base64",
//! "payload"}` where `payload` (text) is present only when the payload is valid UTF-8. Appends
//! take `payload` (text) or `payload_base64`, and optional `metadata`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use ferry_connectors::json::record_json;
use ferry_stream_manager::{NewRecord, ReadOptions, Stream};
use serde::Deserialize;
use serde_json::json;

use super::streams::{body_bytes, parse_json};
use super::{ApiError, ApiState};

use ferry_connectors::json::BASE64 as B64;
/// Longest a single read may wait; longer waits are a client's loop.
const MAX_WAIT_MS: u64 = 300_000;
const MAX_READ_COUNT: usize = 10_000;
/// Follow mode re-arms its wait this often, so a vanished client is noticed.
const FOLLOW_POLL: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBody {
    records: Vec<InRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InRecord {
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

pub async fn append(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let stream = state.manager.stream(&name)?;
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/octet-stream"));
    let records = if raw {
        vec![NewRecord::new(body_bytes(&state, body).await?)]
    } else {
        let body: AppendBody = parse_json(&state, body).await?;
        if body.records.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_record",
                "records must hold at least one record",
            ));
        }
        body.records
            .into_iter()
            .enumerate()
            .map(|(i, r)| to_record(i, r))
            .collect::<Result<_, _>>()?
    };
    let count = records.len() as u64;
    let range = stream.append(records).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"first_sequence_number": range.start, "count": count})),
    )
        .into_response())
}

fn to_record(i: usize, r: InRecord) -> Result<NewRecord, ApiError> {
    let payload = match (r.payload, r.payload_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b)) => B64.decode(b.as_bytes()).map_err(|e| {
            ApiError::bad_request(
                "invalid_record",
                format!("records[{i}].payload_base64: {e}"),
            )
        })?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_record",
                format!("records[{i}] needs exactly one of payload (text) and payload_base64"),
            ))
        }
    };
    Ok(NewRecord {
        payload: payload.into(),
        metadata: r.metadata,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    from: Option<u64>,
    #[serde(default)]
    min_count: Option<usize>,
    #[serde(default)]
    max_count: Option<usize>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    follow: Option<bool>,
}

pub async fn read(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_read", e.body_text()))?;
    let stream = state.manager.stream(&name)?;
    let from = match q.from {
        Some(f) => f,
        None => stream.describe()?.first_sequence_number,
    };
    let max_count = q.max_count.unwrap_or(100).clamp(1, MAX_READ_COUNT);
    let opts = ReadOptions {
        from,
        min_count: q.min_count.unwrap_or(1).min(max_count),
        max_count,
        max_bytes: q.max_bytes.unwrap_or(0),
        timeout: Duration::from_millis(q.wait_ms.unwrap_or(0).min(MAX_WAIT_MS)),
    };
    if q.follow.unwrap_or(false) {
        // Fail fast (e.g. a trimmed position) before committing to a streaming 200.
        stream.read_now(from, 0, 0)?;
        return Ok(follow(stream, opts, state.shutdown.clone()));
    }
    // A long poll ends early at shutdown with what is there, so it never delays the exit.
    let records = tokio::select! {
        r = stream.read(opts.clone()) => r?,
        _ = state.shutdown.cancelled() => stream.read_now(from, max_count, opts.max_bytes)?,
    };
    let next = records.last().map_or(from, |r| r.sequence_number + 1);
    Ok(Json(json!({"records": records.iter().map(record_json).collect::<Vec<_>>(), "next_sequence_number": next})).into_response())
}

/// Streams records as NDJSON, one per line, until the client goes away, the stream is deleted
/// or Ferry shuts down. An error (e.g. the reader fell behind retention) ends the body with a
/// final `{"error": ...}` line.
fn follow(
    stream: Stream,
    opts: ReadOptions,
    shutdown: tokio_util::sync::CancellationToken,
) -> Response {
    let state = (stream, opts.from, false);
    let body = futures_util::stream::unfold(state, move |(stream, from, done)| {
        let shutdown = shutdown.clone();
        let opts = opts.clone();
        async move {
            if done {
                return None;
            }
            let read = ReadOptions {
                from,
                min_count: 1,
                timeout: FOLLOW_POLL,
                ..opts
            };
            let result = tokio::select! {
                r = stream.read(read) => r,
                _ = shutdown.cancelled() => return None,
            };
            match result {
                Ok(records) => {
                    let next = records.last().map_or(from, |r| r.sequence_number + 1);
                    let mut chunk = String::new();
                    for r in &records {
                        chunk.push_str(&record_json(r).to_string());
                        chunk.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), (stream, next, false)))
                }
                Err(e) => {
                    let err = ApiError::from(e);
                    let line = format!(
                        "{}\n",
                        json!({"error": {"code": err.code, "message": err.message, "oldest_sequence_number": err.oldest_sequence_number}})
                    );
                    Some((Ok(line), (stream, from, true)))
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}
