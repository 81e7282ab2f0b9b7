//! Stream endpoints: list, create, describe, update, delete. Each is a thin translation between
//! HTTP and the service layer.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_stream_manager::StreamDefinition;
use serde::de::DeserializeOwned;

use super::{ApiError, ApiState};
use crate::service::views::{StreamList, StreamPatch, StreamView};
use crate::service::ExportControl;

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

/// A typed body (a definition or a patch): invalid JSON is `malformed_json`; valid JSON that
/// does not fit is `invalid_definition`, naming the field's path.
async fn parse_definition<T: DeserializeOwned>(
    state: &ApiState,
    body: Body,
) -> Result<T, ApiError> {
    let value: serde_json::Value = parse_json(state, body).await?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        ApiError::bad_request(
            "invalid_definition",
            format!("invalid stream definition: {at}{}", e.into_inner()),
        )
    })
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<StreamList>, ApiError> {
    Ok(Json(state.service.list()?))
}

pub async fn create(State(state): State<ApiState>, body: Body) -> Result<Response, ApiError> {
    let def: StreamDefinition = parse_definition(&state, body).await?;
    let view = state.service.create(def).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn describe(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    Ok(Json(state.service.describe(&name)?))
}

/// `PUT` and `PATCH`: change the fields the body names.
pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<StreamView>, ApiError> {
    let patch: StreamPatch = parse_definition(&state, body).await?;
    Ok(Json(state.service.update(&name, patch).await?))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/streams/{name}/exports/{id}` with `{"action": "pause" | "resume"}`,
/// `{"action": "reset", "to": N}` or `{"action": "skip", "records": N}`.
pub async fn control_export(
    State(state): State<ApiState>,
    Path((name, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<StreamView>, ApiError> {
    let action: ExportControl = parse_json(&state, body).await?;
    Ok(Json(
        state.service.control_export(&name, &id, action).await?,
    ))
}
