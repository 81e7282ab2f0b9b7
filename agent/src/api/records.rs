//! Record endpoints: append (JSON batch or a raw body) and read (long poll, or follow mode that
//! streams newline-delimited JSON as records arrive).
//!
//! A record in JSON: `{"sequence_number", "timestamp_ms", "metadata": {..}, "payload_base64",
//! "payload"}` where `payload` (text) is present only when the payload is valid UTF-8. Appends
//! take `payload` (text) or `payload_base64`, and optional `metadata`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use ferry_connectors::json::BASE64 as B64;
use ferry_stream_manager::NewRecord;
use serde::Deserialize;

use super::streams::{body_bytes, parse_json};
use super::{ApiError, ApiState};
use crate::service::views::{AppendRequest, RecordIn, RecordView, RecordsRead};
use crate::service::{Follower, ReadRequest};

pub async fn append(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/octet-stream"));
    // An unknown stream is named before the body is read (as it always was).
    state.service.check_stream(&name)?;
    let records = if raw {
        vec![NewRecord::new(body_bytes(&state, body).await?)]
    } else {
        let body: AppendRequest = parse_json(&state, body).await?;
        body.records
            .into_iter()
            .enumerate()
            .map(|(i, r)| to_record(i, r))
            .collect::<Result<_, _>>()?
    };
    let appended = state.service.append(&name, records).await?;
    Ok((StatusCode::CREATED, Json(appended)).into_response())
}

fn to_record(i: usize, r: RecordIn) -> Result<NewRecord, ApiError> {
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
    let req = ReadRequest {
        from: q.from,
        min_count: q.min_count,
        max_count: q.max_count,
        max_bytes: q.max_bytes,
        wait_ms: q.wait_ms,
    };
    if q.follow.unwrap_or(false) {
        return Ok(follow(state.service.follow(&name, &req)?));
    }
    let read: RecordsRead = state.service.read(&name, &req).await?;
    Ok(Json(read).into_response())
}

/// Streams records as NDJSON, one per line, until the client goes away, the stream is deleted
/// or Ferry stops taking data. An error (e.g. the reader fell behind retention) ends the body
/// with a final `{"error": ...}` line.
fn follow(follower: Follower) -> Response {
    let body = futures_util::stream::unfold(follower, |mut follower| async move {
        let chunk = match follower.next_batch().await? {
            Ok(records) => {
                let mut chunk = String::new();
                for r in &records {
                    chunk.push_str(&serde_json::to_string(&RecordView::from(r)).ok()?);
                    chunk.push('\n');
                }
                chunk
            }
            Err(e) => {
                let line = ApiError::from(e).body();
                format!("{}\n", serde_json::to_string(&line).ok()?)
            }
        };
        Some((Ok::<_, std::io::Error>(chunk), follower))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}
