//! API errors: an HTTP status, a stable machine-readable code and a message for people.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_stream_manager::Error;

use crate::service::views::{ErrorAnswer, ErrorView};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub oldest_sequence_number: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            oldest_sequence_number: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::StreamNotFound(_) | Error::StreamDeleted(_) | Error::ExportNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            Error::StreamExists(_) => StatusCode::CONFLICT,
            Error::InvalidDefinition(_) | Error::InvalidRecord(_) | Error::InvalidRead(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::RecordTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::StreamFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Error::SequenceTrimmed { .. } => StatusCode::GONE,
            Error::StorageFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Io { .. } if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let oldest = match &e {
            Error::SequenceTrimmed { oldest, .. } => Some(*oldest),
            _ => None,
        };
        ApiError {
            status,
            code: e.code(),
            message: e.to_string(),
            oldest_sequence_number: oldest,
        }
    }
}

impl ApiError {
    pub fn body(self) -> ErrorAnswer {
        ErrorAnswer {
            error: ErrorView {
                code: self.code.to_string(),
                message: self.message,
                oldest_sequence_number: self.oldest_sequence_number,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, Json(self.body())).into_response()
    }
}
