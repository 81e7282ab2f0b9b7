//! The local HTTP/JSON API on 127.0.0.1 for reader apps, the CLI and metrics scrapers.
//!
//! ```text
//! GET    /healthz                             liveness (never needs the token)
//! GET    /readyz                              readiness, with a reason for each problem (503)
//! GET    /metrics                             Prometheus text format
//! GET    /v1/streams                          list (with storage status)
//! POST   /v1/streams                          create (body: a stream definition)
//! GET    /v1/streams/{name}                   describe
//! PUT    /v1/streams/{name}                   update the fields the body names (PATCH too)
//! DELETE /v1/streams/{name}                   delete
//! POST   /v1/streams/{name}/exports/{id}      pause, resume, reset or skip an export
//! POST   /v1/streams/{name}/records           append one record or a batch
//! GET    /v1/streams/{name}/records?from=…    read (long poll with wait_ms; follow=true streams NDJSON)
//! GET|PUT|DELETE /v1/apps[/{name}[/logs]]     container apps (see `crate::apps::api`)
//! ```
//! Errors are `{"error": {"code": "...", "message": "..."}}` with a stable code (see
//! [`error::ApiError`]).

mod error;
mod metrics;
mod records;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub(crate) use streams::parse_json;

use crate::apps::api as apps;
use crate::service::Service;

/// What every handler gets: the service (all stream and export logic lives there), and the
/// API's own settings.
#[derive(Clone)]
pub struct ApiState {
    pub service: Arc<Service>,
    pub token: Option<Arc<str>>,
    pub max_body_bytes: usize,
    /// Container apps; `None` when `docker.enabled` is off.
    pub apps: Option<Arc<crate::apps::Apps>>,
}

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/metrics", get(metrics::render))
        .route("/readyz", get(readyz))
        .route("/v1/streams", get(streams::list).post(streams::create))
        .route(
            "/v1/streams/:name",
            get(streams::describe)
                .put(streams::update)
                .patch(streams::update)
                .delete(streams::delete),
        )
        .route(
            "/v1/streams/:name/exports/:id",
            axum::routing::post(streams::control_export),
        )
        .route(
            "/v1/streams/:name/records",
            get(records::read).post(records::append),
        )
        .route("/v1/apps", get(apps::list))
        .route(
            "/v1/apps/:name",
            get(apps::status).put(apps::deploy).delete(apps::remove),
        )
        .route("/v1/apps/:name/logs", get(apps::logs))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        // Bodies are limited by the handlers themselves, so the refusal is a JSON error.
        .layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(api)
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

/// Readiness: 200 with `{"status": "ready", "reasons": []}`, or 503 with `not_ready` and a
/// reason for each thing that is wrong.
async fn readyz(State(state): State<ApiState>) -> Response {
    let r = state.service.readiness();
    let status = if r.reasons.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r)).into_response()
}

/// The app API: what an app's containers may use with their token (`FERRY_TOKEN`): listing,
/// describing, reading and appending to streams, within the app's grants
/// (`crate::apps::access`).
pub fn app_router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/streams", get(streams::list))
        .route("/v1/streams/:name", get(streams::describe))
        .route(
            "/v1/streams/:name/records",
            get(records::read).post(records::append),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_app_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint",
            )
        })
        .with_state(state)
}

async fn require_app_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    use crate::apps::access::Denied;
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    let verdict = match &state.apps {
        Some(apps) => apps.authorize(given, req.method(), req.uri().path()),
        None => Err(Denied::UnknownToken),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(Denied::UnknownToken) => ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an app's 'Authorization: Bearer <FERRY_TOKEN>' header is required",
        )
        .into_response(),
        Err(Denied::Forbidden(why)) => {
            ApiError::new(axum::http::StatusCode::FORBIDDEN, "forbidden", why).into_response()
        }
    }
}

/// Binds the listener (so a taken port fails start-up) and returns the serving future, which
/// stops accepting and ends once in-flight requests are answered after `stop`.
pub async fn bind(
    addr: SocketAddr,
    state: ApiState,
    stop: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("the local API cannot listen on {addr} (set api.listen): {e}")
    })?;
    tracing::info!(listen = %addr, auth = state.token.is_some(), "local API listening");
    let app = router(state);
    Ok(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "local API stopped");
        }
    })
}

async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid 'Authorization: Bearer <token>' header is required",
    )
    .into_response();
    resp.headers_mut().insert(
        "www-authenticate",
        axum::http::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` works as well.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
