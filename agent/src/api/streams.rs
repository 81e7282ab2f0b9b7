//! Stream endpoints: list, create, describe, update, delete.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_stream_manager::export::ExportStatus;
use ferry_stream_manager::{StreamDefinition, StreamDescription};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{ApiError, ApiState};

/// Reads a request body up to the configured limit.
pub async fn body_bytes(state: &ApiState, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request bodies are limited to {} bytes (api.max_body_bytes)",
                    state.max_body_bytes
                ),
            )
        })
}

pub async fn parse_json<T: DeserializeOwned>(state: &ApiState, body: Body) -> Result<T, ApiError> {
    let bytes = body_bytes(state, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON for this request: {e}"),
        )
    })
}

/// Records stored but not yet exported, and their bytes, estimated from the stream's average
/// record size (exact per-record sizes would mean reading the backlog).
pub fn export_lag(d: &StreamDescription, e: &ExportStatus) -> (u64, u64) {
    let records = d
        .next_sequence_number
        .saturating_sub(e.checkpoint.max(d.first_sequence_number));
    let bytes = d
        .total_bytes
        .saturating_mul(records)
        .checked_div(d.records)
        .unwrap_or(0);
    (records, bytes)
}

/// A stream's definition and status, with the status of its exports (lag included).
pub fn description_json(state: &ApiState, d: &StreamDescription) -> Value {
    let c = &d.counters;
    let exports: Vec<Value> = state
        .exports
        .statuses(Some(&d.definition.name))
        .into_iter()
        .map(|e| {
            let (lag_records, lag_bytes) = export_lag(d, &e);
            let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
            v["lag_records"] = json!(lag_records);
            v["lag_bytes"] = json!(lag_bytes);
            v
        })
        .collect();
    json!({
        "exports": exports,
        "name": d.definition.name,
        "definition": d.definition,
        "status": {
            "first_sequence_number": d.first_sequence_number,
            "last_sequence_number": d.last_sequence_number,
            "next_sequence_number": d.next_sequence_number,
            "records": d.records,
            "total_bytes": d.total_bytes,
            "oldest_record_timestamp_ms": d.oldest_record_timestamp_ms,
            "segments": d.segments,
            "counters": {
                "appended_records": c.appended_records,
                "appended_bytes": c.appended_bytes,
                "rejected_full_records": c.rejected_full_records,
                "dropped_by_size_records": c.dropped_by_size_records,
                "dropped_by_ttl_records": c.dropped_by_ttl_records,
                "sync_rounds": c.sync_rounds,
                "damaged_ranges": c.damage.damaged_ranges,
                "damaged_bytes": c.damage.damaged_bytes,
            }
        }
    })
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for name in state.manager.list() {
        match state.manager.describe(&name) {
            Ok(d) => out.push(description_json(&state, &d)),
            // Deleted between list and describe: not part of the answer.
            Err(ferry_stream_manager::Error::StreamNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(json!({ "streams": out })))
}

pub async fn create(State(state): State<ApiState>, body: Body) -> Result<Response, ApiError> {
    let def: StreamDefinition = parse_json(&state, body).await?;
    let stream = state.manager.create_stream(def)?;
    state.exports.reconcile();
    Ok((
        StatusCode::CREATED,
        Json(description_json(&state, &stream.describe()?)),
    )
        .into_response())
}

pub async fn describe(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(description_json(
        &state,
        &state.manager.describe(&name)?,
    )))
}

pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let def: StreamDefinition = parse_json(&state, body).await?;
    if def.name != name {
        return Err(ApiError::bad_request(
            "invalid_definition",
            format!("the body names stream {:?} but the path names {name:?}; a stream cannot be renamed", def.name),
        ));
    }
    state.manager.update_stream(def)?;
    state.exports.reconcile();
    Ok(Json(description_json(
        &state,
        &state.manager.describe(&name)?,
    )))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.manager.delete_stream(&name)?;
    state.exports.reconcile();
    Ok(StatusCode::NO_CONTENT)
}
