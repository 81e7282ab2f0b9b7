//! The local API's app endpoints, thin translations to [`Apps`]:
//!
//! ```text
//! GET    /v1/apps                         list, with each app's containers
//! GET    /v1/apps/{name}                  status
//! PUT    /v1/apps/{name}                  deploy (body: a DeployRequest); 202, progress in the status
//! DELETE /v1/apps/{name}?volumes=true     remove (volumes only when asked); 202
//! GET    /v1/apps/{name}/logs?service=&follow=true&tail=N   the containers' output, as text
//! ```

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;

use super::source::DeployRequest;
use super::views::{AppList, AppView};
use super::{AppError, Apps};
use crate::api::{ApiError, ApiState};

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status = match &e {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Invalid(_) => StatusCode::BAD_REQUEST,
            AppError::ManagedByConfig(_) => StatusCode::CONFLICT,
            AppError::Disabled | AppError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

fn apps(state: &ApiState) -> Result<&Apps, ApiError> {
    state
        .apps
        .as_deref()
        .ok_or_else(|| AppError::Disabled.into())
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<AppList>, ApiError> {
    Ok(Json(apps(&state)?.list().await?))
}

pub async fn status(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(apps(&state)?.status(&name).await?))
}

pub async fn deploy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let request: DeployRequest = crate::api::parse_json(&state, body).await?;
    let view = apps(&state)?.deploy(&name, request).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[derive(Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    volumes: bool,
}

pub async fn remove(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    let view = apps(&state)?.remove(&name, q.volumes)?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[derive(Deserialize)]
pub struct LogsQuery {
    service: Option<String>,
    #[serde(default)]
    follow: bool,
    tail: Option<u64>,
}

/// The output of the app's containers (or one service's). With several containers, each line
/// starts with `SERVICE | `, as docker-compose prints them.
pub async fn logs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (engine, containers) = apps(&state)?
        .log_sources(&name, q.service.as_deref())
        .await?;
    let prefix = containers.len() > 1;
    let streams = containers.into_iter().map(|(service, container)| {
        engine
            .logs(&container, q.follow, q.tail)
            .map(move |chunk| match chunk {
                Ok(c) if prefix => Ok(prefixed(&service, &c.bytes)),
                Ok(c) => Ok(c.bytes),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            })
            .boxed()
    });
    let merged = futures_util::stream::select_all(streams);
    // A follow ends with the daemon's shutdown, like the records' follow.
    let stop = apps(&state)?.stop_follow.clone();
    let body = merged.take_until(stop.cancelled_owned());
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        Body::from_stream(body),
    )
        .into_response())
}

fn prefixed(service: &str, bytes: &Bytes) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(service.as_bytes());
        out.extend_from_slice(b" | ");
        out.extend_from_slice(line);
    }
    Bytes::from(out)
}
